"""Label search end to end: the legacy numbers over REST and GraphQL, filters, bad input,
self-audit, and an index that stays coherent across replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.app import create_app
from datastorage.resolvers import self_audit as self_audit_module
from datastorage.settings import Settings
from tests.conftest import metric, running
from tests.integration.test_openapi import check_answer
from tests.integration.test_workflows import SPEC, workflow_body

SEARCH = "/api/v1/workflows/search"
FAILED_AUDITS = 'datastorage_self_audit_events_total{result="failed"}'
WRITTEN_AUDITS = 'datastorage_self_audit_events_total{result="written"}'
GITOPS = {"gitOpsManaged": True, "gitOpsTool": "argocd", "pdbProtected": True}
GRAPHQL_SEARCH = """
query Search($input: WorkflowSearchInput!) {
  searchWorkflows(input: $input) {
    __typename
    ... on WorkflowSearchResponse {
      totalResults
      workflows { workflowId rank finalScore confidence labelBoost labelPenalty
                  scoreBreakdown { label kind weight source } }
    }
    ... on ValidationFailed { fieldErrors { field message } }
  }
}
"""


def signal() -> str:
    """A signal_type of its own, so each test searches only its own workflows."""
    return f"Signal{uuid.uuid4().hex[:10]}"


async def create(client: httpx.AsyncClient, signal_type: str, **overrides: Any) -> str:
    labels = {
        "signal_type": signal_type, "severity": "critical", "component": "pod",
        "environment": ["production"], "priority": "P0",
    }  # fmt: skip
    body = workflow_body(**{"labels": labels, **overrides})
    answer = await client.post("/api/v1/workflows", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflow_id"])


def filters(signal_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "signal_type": signal_type, "severity": "critical", "component": "pod",
        "environment": "production", "priority": "P0", **extra,
    }  # fmt: skip


async def search(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post(SEARCH, json=body)
    assert answer.status_code == 200, answer.text
    check_answer(SPEC, "POST", SEARCH, answer)
    return dict(answer.json())


async def test_the_worked_example_scores_and_ranks_as_the_legacy_service(
    client: httpx.AsyncClient,
) -> None:
    kind = signal()
    with_gitops = await create(client, kind, detected_labels=GITOPS)
    without = await create(client, kind)
    custom = await create(client, kind, custom_labels={"team": ["payments"]})
    found = await search(client, filters=filters(kind, detected_labels=GITOPS))
    scores = {r["workflow_id"]: (r["rank"], r["final_score"]) for r in found["workflows"]}
    assert scores[with_gitops] == (1, 0.525)
    assert scores[without][1] == 0.48
    assert scores[custom][1] == 0.48
    by_id = {r["workflow_id"]: r for r in found["workflows"]}
    assert (by_id[with_gitops]["label_boost"], by_id[with_gitops]["label_penalty"]) == (0.25, 0)
    assert (by_id[without]["label_boost"], by_id[without]["label_penalty"]) == (0, 0.2)
    assert found["total_results"] == 3
    # A custom label match adds 0.005 to the final score.
    found = await search(
        client, filters=filters(kind, detected_labels=GITOPS, custom_labels={"team": ["payments"]})
    )
    assert {r["workflow_id"]: r["final_score"] for r in found["workflows"]}[custom] == 0.485
    # Ties (without and custom score the same here) are broken by created_at DESC.
    order = [r["workflow_id"] for r in (await search(client, filters=filters(kind)))["workflows"]]
    assert order == [custom, without, with_gitops]


async def test_rest_and_graphql_return_the_same_ranking_with_a_breakdown(
    client: httpx.AsyncClient,
) -> None:
    kind = signal()
    for detected in (GITOPS, {"gitOpsManaged": False}, {"serviceMesh": "istio"}, {}):
        await create(client, kind, detected_labels=detected)
    wanted = filters(kind, detected_labels={**GITOPS, "serviceMesh": "*"})
    rest = (await search(client, filters=wanted, top_k=3))["workflows"]
    graphql_filters = {
        "signalType": kind, "severity": "CRITICAL", "component": "pod",
        "environment": "production", "priority": "P0",
        "detectedLabels": {"gitOpsManaged": True, "gitOpsTool": "argocd", "pdbProtected": True,
                           "serviceMesh": "*"},
    }  # fmt: skip
    answer = await client.post(
        "/graphql",
        json={
            "query": GRAPHQL_SEARCH,
            "variables": {"input": {"filters": graphql_filters, "topK": 3}},
        },
    )
    data = answer.json()["data"]["searchWorkflows"]
    assert data["__typename"] == "WorkflowSearchResponse"
    assert data["totalResults"] == 4
    gql = data["workflows"]
    assert [(r["workflowId"], r["rank"], r["finalScore"]) for r in gql] == [
        (r["workflow_id"], r["rank"], r["final_score"]) for r in rest
    ]
    first = gql[0]["scoreBreakdown"]
    assert sum(p["weight"] for p in first if p["kind"] == "boost") == pytest.approx(
        gql[0]["labelBoost"]
    )
    assert {p["label"] for p in first} >= {"gitOpsManaged", "gitOpsTool", "pdbProtected"}


async def test_identical_searches_give_identical_order(client: httpx.AsyncClient) -> None:
    kind = signal()
    for _ in range(6):
        await create(client, kind)
    orders = {
        tuple(r["workflow_id"] for r in (await search(client, filters=filters(kind)))["workflows"])
        for _ in range(5)
    }
    assert len(orders) == 1


async def test_filters_status_top_k_min_score_and_zero_matches(
    client: httpx.AsyncClient,
) -> None:
    kind = signal()
    active = await create(client, kind)
    disabled = await create(client, kind)
    answer = await client.patch(f"/api/v1/workflows/{disabled}/disable", json={"reason": "broken"})
    assert answer.status_code == 200, answer.text
    ids = [r["workflow_id"] for r in (await search(client, filters=filters(kind)))["workflows"]]
    assert ids == [active]
    ids = [
        r["workflow_id"]
        for r in (await search(client, filters=filters(kind), include_disabled=True))["workflows"]
    ]
    assert set(ids) == {active, disabled}
    assert (await search(client, filters=filters(kind), min_score=0.6))["workflows"] == []
    clamped = await search(client, filters=filters(kind), top_k=500)
    assert len(clamped["workflows"]) == 1
    empty = await search(client, filters=filters(signal()))
    assert empty == {
        "workflows": [],
        "total_results": 0,
        "filters": filters(empty["filters"]["signal_type"]),
    }
    # A wildcard environment on the workflow matches any searched environment.
    anywhere = await create(
        client,
        kind,
        labels={
            "signal_type": kind,
            "severity": "*",
            "component": "*",
            "environment": ["*"],
            "priority": "*",
        },
    )
    staging = filters(kind, environment="staging", severity="low", priority="P3", component="node")
    assert [r["workflow_id"] for r in (await search(client, filters=staging))["workflows"]] == [
        anywhere
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "filters"),
        ({"filters": {"severity": "critical"}}, "filters.signal_type"),
        ({"filters": filters("*")}, "filters.signal_type"),
        ({"filters": filters("X", severity="urgent")}, "filters.severity"),
        ({"filters": filters("X", environment=["production"])}, "filters.environment"),
        ({"filters": filters("X", priority="P9")}, "filters.priority"),
        ({"filters": filters("X"), "min_score": 1.5}, "min_score"),
        ({"filters": filters("X"), "top_k": 0}, "top_k"),
        (
            {"filters": filters("X", detected_labels={"gitOpsTool": "jenkins"})},
            "filters.detected_labels.gitOpsTool",
        ),
        (
            {"filters": filters("X", custom_labels={"team": "payments"})},
            "filters.custom_labels.team",
        ),
        ({"filters": filters("X", status=["gone"])}, "filters.status[0]"),
    ],
)
async def test_bad_searches_are_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.post(SEARCH, json=body)
    assert answer.status_code == 400, answer.text
    check_answer(SPEC, "POST", SEARCH, answer)
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.json()["field_errors"]


async def test_graphql_reports_bad_searches_as_validation_failed(client: httpx.AsyncClient) -> None:
    bad = {"signalType": "*", "severity": "CRITICAL", "component": "pod",
           "environment": "production", "priority": "P0"}  # fmt: skip
    answer = await client.post(
        "/graphql", json={"query": GRAPHQL_SEARCH, "variables": {"input": {"filters": bad}}}
    )
    data = answer.json()["data"]["searchWorkflows"]
    assert data["__typename"] == "ValidationFailed"
    assert data["fieldErrors"][0]["field"] == "input.filters.signalType"


async def test_searches_and_catalog_changes_are_audited(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    kind = signal()
    workflow_id = await create(client, kind)
    remediation = f"rr-{uuid.uuid4().hex[:8]}"
    await search(client, filters=filters(kind), remediation_id=remediation)

    async def audited(event_type: str, correlation: str) -> list[asyncpg.Record]:
        for _ in range(100):
            rows = await db.fetch(
                "SELECT event_category, event_data::text AS data FROM audit_events "
                "WHERE event_type = $1 AND correlation_id = $2",
                event_type,
                correlation,
            )
            if rows:
                return rows
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {event_type} event for {correlation}")

    (searched,) = await audited("workflow.catalog.search_completed", remediation)
    data = orjson.loads(searched["data"])
    assert searched["event_category"] == "workflow"
    assert data["results"] == [{"workflow_id": workflow_id, "rank": 1, "final_score": 0.5}]
    assert data["query"]["signal_type"] == kind
    created = await db.fetch(
        "SELECT event_type FROM audit_events WHERE resource_id = $1", workflow_id
    )
    for _ in range(100):
        if created:
            break
        await asyncio.sleep(0.05)
        created = await db.fetch(
            "SELECT event_type FROM audit_events WHERE resource_id = $1", workflow_id
        )
    assert [row[0] for row in created] == ["datastorage.workflow.created"]


async def test_a_burst_of_searches_writes_one_audit_event_each(
    app: Starlette, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    kind = signal()
    workflow_id = await create(client, kind)
    for _ in range(100):  # the index picks the new workflow up from its NOTIFY
        if (await search(client, filters=filters(kind)))["workflows"]:
            break
        await asyncio.sleep(0.02)
    await app.state.services.self_audit.drain(5)
    before = metric((await client.get("/metrics")).text, WRITTEN_AUDITS)
    remediations = [f"rr-burst-{uuid.uuid4().hex[:8]}" for _ in range(80)]
    answers = await asyncio.gather(
        *(search(client, filters=filters(kind), remediation_id=r) for r in remediations)
    )
    assert all(answer["workflows"][0]["workflow_id"] == workflow_id for answer in answers)
    await app.state.services.self_audit.drain(10)
    rows = await db.fetch(
        "SELECT correlation_id, count(*) FROM audit_events "
        "WHERE event_type = 'workflow.catalog.search_completed' AND correlation_id = ANY($1) "
        "GROUP BY correlation_id",
        remediations,
    )
    assert sorted((row[0], row[1]) for row in rows) == sorted((r, 1) for r in remediations)
    assert metric((await client.get("/metrics")).text, WRITTEN_AUDITS) == before + 80


async def test_self_audit_events_waiting_on_a_stalled_writer_are_bounded_and_counted(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = signal()
    await create(client, kind)
    self_audit = app.state.services.self_audit
    await self_audit.drain(5)
    writer = app.state.services.writer
    stalled = asyncio.Event()
    submit = writer.submit

    async def stalled_submit(*args: Any, **kwargs: Any) -> Any:
        await stalled.wait()  # PostgreSQL hangs: the writer does not answer
        return await submit(*args, **kwargs)

    monkeypatch.setattr(self_audit_module, "WAITING_MAX", 3)
    monkeypatch.setattr(writer, "submit", stalled_submit)
    text = (await client.get("/metrics")).text
    failed_before, written_before = metric(text, FAILED_AUDITS), metric(text, WRITTEN_AUDITS)
    try:
        for _ in range(10):
            await search(client, filters=filters(kind))  # every search is still answered
        failed = metric((await client.get("/metrics")).text, FAILED_AUDITS) - failed_before
    finally:
        stalled.set()
    # 3 wait, and the sender may already hold a ticket of up to 3 in the stalled writer: the
    # rest were refused, counted and logged rather than kept without bound.
    assert 4 <= failed <= 7
    await self_audit.drain(5)
    written = metric((await client.get("/metrics")).text, WRITTEN_AUDITS) - written_before
    assert written + failed == 10


async def test_a_failing_self_audit_never_fails_the_search(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = signal()
    await create(client, kind)
    writer = app.state.services.writer
    await app.state.services.self_audit.drain(5)  # the create's own event is written

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the writer is broken")

    before = metric((await client.get("/metrics")).text, FAILED_AUDITS)
    monkeypatch.setattr(writer, "submit", refuse)
    found = await search(client, filters=filters(kind))
    assert len(found["workflows"]) == 1
    for _ in range(50):
        await asyncio.sleep(0.02)
        if metric((await client.get("/metrics")).text, FAILED_AUDITS) > before:
            break
    assert metric((await client.get("/metrics")).text, FAILED_AUDITS) == before + 1


async def test_a_change_on_one_replica_is_searchable_on_another(
    make_settings: Callable[..., Settings], client: httpx.AsyncClient
) -> None:
    kind = signal()
    other = create_app(make_settings())
    async with running(other) as replica:
        assert (await search(replica, filters=filters(kind)))["workflows"] == []  # index loaded
        workflow_id = await create(client, kind)  # written through the session's app
        for _ in range(100):
            found = (await search(replica, filters=filters(kind)))["workflows"]
            if found:
                break
            await asyncio.sleep(0.02)
        assert [r["workflow_id"] for r in found] == [workflow_id]
        disabled = await client.patch(f"/api/v1/workflows/{workflow_id}/disable", json={})
        assert disabled.status_code == 200
        for _ in range(100):
            found = (await search(replica, filters=filters(kind)))["workflows"]
            if not found:
                break
            await asyncio.sleep(0.02)
        assert found == []
