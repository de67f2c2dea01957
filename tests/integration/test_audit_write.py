"""Writing events through REST and GraphQL: stored rows, idempotency, batches, bursts."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import event_body

pytestmark = pytest.mark.usefixtures("clean")


async def test_single_event_is_committed_before_201(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = event_body(actor_ip="10.1.2.3", cluster_id="prod-eu", duration_ms=1500)
    response = await client.post("/api/v1/audit/events", json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["message"] == "audit event created"
    row = await db.fetchrow(
        "SELECT * FROM audit_events WHERE event_id = $1", uuid.UUID(answer["event_id"])
    )
    assert row is not None
    assert row["event_type"] == "gateway.signal.received"
    assert row["actor_id"] == "gateway-service"  # default: <category>-service
    assert row["actor_type"] == "service"
    assert row["resource_type"] == "gateway"
    assert row["resource_id"] == body["correlation_id"]
    assert str(row["actor_ip"]) == "10.1.2.3"
    assert row["cluster_name"] == "prod-eu"
    assert row["duration_ms"] == 1500
    assert row["retention_days"] == 2555
    assert (
        row["chain_seq"] == 1 and row["previous_event_hash"] == "" and len(row["event_hash"]) == 64
    )


async def test_same_event_id_twice_answers_201_and_stores_one_row(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    event_id = str(uuid.uuid4())
    body = event_body(event_id=event_id)
    first = await client.post("/api/v1/audit/events", json=body)
    second = await client.post("/api/v1/audit/events", json=body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["event_id"] == second.json()["event_id"] == event_id
    assert second.json()["message"] == "audit event already stored"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM audit_events WHERE event_id = $1", uuid.UUID(event_id)
        )
        == 1
    )
    # The retry did not advance the hash chain either.
    head = await db.fetchval(
        "SELECT last_seq FROM audit_chain_heads WHERE correlation_id = $1", body["correlation_id"]
    )
    assert head == 1


async def test_concurrent_retries_of_one_event_store_one_row(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = event_body(event_id=str(uuid.uuid4()))
    answers = await asyncio.gather(
        *(client.post("/api/v1/audit/events", json=body) for _ in range(20))
    )
    assert {answer.status_code for answer in answers} == {201}
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


async def test_batch_is_stored_in_order_with_chain(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    correlation = "rr-batch-1"
    bodies = [event_body(correlation_id=correlation, event_action=f"step{i}") for i in range(5)]
    response = await client.post("/api/v1/audit/events/batch", json=bodies)
    assert response.status_code == 201, response.text
    ids = [uuid.UUID(value) for value in response.json()["event_ids"]]
    assert len(ids) == 5
    rows = await db.fetch(
        "SELECT event_id, event_action, chain_seq, event_hash, previous_event_hash FROM audit_events "
        "WHERE correlation_id = $1 ORDER BY chain_seq",
        correlation,
    )
    assert [row["event_id"] for row in rows] == ids
    assert [row["event_action"] for row in rows] == [f"step{i}" for i in range(5)]
    assert [row["chain_seq"] for row in rows] == [1, 2, 3, 4, 5]
    for previous, current in itertools.pairwise(rows):
        assert current["previous_event_hash"] == previous["event_hash"]


async def test_batch_with_one_invalid_item_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(), event_body(event_outcome="maybe"), event_body()]
    response = await client.post("/api/v1/audit/events/batch", json=bodies)
    assert response.status_code == 400
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert "[1].event_outcome" in problem["field_errors"]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_batch_parent_may_be_an_earlier_item(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    parent_id = str(uuid.uuid4())
    bodies = [event_body(event_id=parent_id), event_body(parent_event_id=parent_id)]
    response = await client.post("/api/v1/audit/events/batch", json=bodies)
    assert response.status_code == 201, response.text
    assert (
        await db.fetchval(
            "SELECT count(*) FROM audit_events WHERE parent_event_id = $1", uuid.UUID(parent_id)
        )
        == 1
    )


async def test_parent_must_exist(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    stored = await client.post("/api/v1/audit/events", json=event_body())
    parent = stored.json()["event_id"]
    ok = await client.post("/api/v1/audit/events", json=event_body(parent_event_id=parent))
    assert ok.status_code == 201
    missing = await client.post(
        "/api/v1/audit/events", json=event_body(parent_event_id=str(uuid.uuid4()))
    )
    assert missing.status_code == 400
    assert "parent_event_id" in missing.json()["field_errors"]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2


async def test_burst_of_150_concurrent_writes_all_stored(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(correlation_id=f"pod-{i % 50}") for i in range(150)]
    answers = await asyncio.gather(
        *(client.post("/api/v1/audit/events", json=body) for body in bodies)
    )
    assert [answer.status_code for answer in answers] == [201] * 150
    ids = {uuid.UUID(answer.json()["event_id"]) for answer in answers}
    stored = {row[0] for row in await db.fetch("SELECT event_id FROM audit_events")}
    assert stored == ids
    metrics = (await client.get("/metrics")).text
    assert "datastorage_audit_events_dropped_total 0.0" in metrics
    # Group commit: far fewer flushes than events.
    assert _metric(metrics, "datastorage_audit_batch_size_count") < _metric(
        metrics, "datastorage_audit_batch_size_sum"
    )


async def test_graphql_create_event_returns_the_stored_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = event_body()
    mutation = """
      mutation Create($input: AuditEventInput!) {
        createAuditEvent(input: $input) {
          __typename
          ... on AuditEventStored { duplicate event { eventId version eventType chainSeq eventData actorId } }
          ... on ValidationFailed { message fieldErrors { field message } }
        }
      }
    """
    variables = {
        "input": {
            "version": body["version"],
            "eventType": body["event_type"],
            "eventTimestamp": body["event_timestamp"],
            "eventCategory": body["event_category"],
            "eventAction": body["event_action"],
            "eventOutcome": "SUCCESS",
            "correlationId": body["correlation_id"],
            "eventData": body["event_data"],
        }
    }
    response = await client.post("/graphql", json={"query": mutation, "variables": variables})
    result = response.json()["data"]["createAuditEvent"]
    assert result["__typename"] == "AuditEventStored", result
    assert result["event"]["version"] == "1.0"
    assert result["event"]["eventData"] == body["event_data"]
    assert result["event"]["actorId"] == "gateway-service"
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


async def test_graphql_validation_failed_names_the_field(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    mutation = """
      mutation { createAuditEvent(input: {version: "1", eventType: "Bad Type", eventTimestamp: "yesterday",
        eventCategory: "gateway", eventAction: "x", eventOutcome: SUCCESS, correlationId: "c", eventData: {}}) {
          __typename ... on ValidationFailed { fieldErrors { field message } } } }
    """
    response = await client.post("/graphql", json={"query": mutation})
    result = response.json()["data"]["createAuditEvent"]
    assert result["__typename"] == "ValidationFailed"
    fields = {error["field"] for error in result["fieldErrors"]}
    assert fields == {"eventType", "eventTimestamp"}
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_graphql_batch_is_all_or_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    def item(action: str, outcome: str = "SUCCESS") -> str:
        return (
            f'{{version: "1", eventType: "gateway.signal.received", eventTimestamp: "{event_body()["event_timestamp"]}",'
            f' eventCategory: "gateway", eventAction: "{action}", eventOutcome: {outcome}, correlationId: "c1",'
            f" eventData: {{}}}}"
        )

    good = f"mutation {{ createAuditEvents(inputs: [{item('a')}, {item('b')}]) {{ __typename ... on AuditEventsStored {{ count eventIds }} }} }}"
    response = await client.post("/graphql", json={"query": good})
    assert response.json()["data"]["createAuditEvents"]["count"] == 2
    bad_category = item("c").replace('"gateway", eventAction', '"nope", eventAction')
    bad = f"mutation {{ createAuditEvents(inputs: [{item('d')}, {bad_category}]) {{ __typename ... on ValidationFailed {{ fieldErrors {{ field }} }} }} }}"
    response = await client.post("/graphql", json={"query": bad})
    result = response.json()["data"]["createAuditEvents"]
    assert result["__typename"] == "ValidationFailed"
    assert result["fieldErrors"] == [{"field": "[1].eventCategory"}]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")
