"""REST GET /api/v1/audit/events and GraphQL auditEvents answer the same events, same values."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import event_body, now_utc

pytestmark = pytest.mark.usefixtures("clean")

# Fields whose values are date-times: the two surfaces may spell the same instant differently
# (`Z` or `+00:00`, trailing zeros), so they are compared as instants.
DATETIME_FIELDS = {"event_timestamp", "legal_hold_placed_at", "ingested_at"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


async def seed(client: httpx.AsyncClient) -> None:
    """Events using every field, including the optional ones, in two correlations."""
    now = now_utc()
    parent = str(uuid.uuid4())
    bodies = [
        event_body(
            event_id=parent,
            correlation_id="rr-contract-1",
            event_timestamp=(now - dt.timedelta(minutes=1)).isoformat(),
            actor_type="user",
            actor_id="alice",
            actor_ip="2001:db8::7",
            resource_type="pod",
            resource_id="api-7d9",
            resource_name="api-7d9-xyz",
            namespace="prod",
            cluster_id="prod-eu",
            severity="critical",
            duration_ms=2**40,
            error_code="E42",
            error_message="boom ✓",
            retention_days=90,
            is_sensitive=True,
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            event_data={"pod": "api-7d9", "nested": {"list": [1, 2.5, None, True]}, "n": 10},
        ),
        event_body(
            correlation_id="rr-contract-1",
            parent_event_id=parent,
            event_type="workflow.step.started",
            event_category="workflow",
            event_outcome="failure",
            event_timestamp=(now - dt.timedelta(hours=2)).isoformat(),
            cluster_name="prod-us",
            event_data={"pod": "api-1"},
        ),
    ]
    for index in range(8):
        bodies.append(
            event_body(
                correlation_id=f"rr-contract-{index % 2 + 2}",
                event_outcome=("success", "pending")[index % 2],
                # Two pairs share a timestamp: their order comes from event_id.
                event_timestamp=(now - dt.timedelta(hours=index // 2 * 5)).isoformat(),
                namespace=("prod", "staging")[index % 2],
                event_data={"pod": f"api-{index % 3}", "i": index},
            )
        )
    response = await client.post("/api/v1/audit/events/batch", json=bodies)
    assert response.status_code == 201, response.text


async def rest_events(client: httpx.AsyncClient, params: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit/events", params={**params, "limit": 1000})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def graphql_events(
    client: httpx.AsyncClient, params: dict[str, str], fields: list[str]
) -> list[dict[str, Any]]:
    query = f"""
      query($filter: AuditEventFilter) {{
        auditEvents(filter: $filter, first: 500) {{ edges {{ node {{ {" ".join(fields)} }} }} }}
      }}
    """
    graph_filter = {
        camel(name): value.upper() if name == "event_outcome" else value
        for name, value in params.items()
    }
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"filter": graph_filter or None}}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "errors" not in answer, answer
    return [edge["node"] for edge in answer["data"]["auditEvents"]["edges"]]


def comparable(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in DATETIME_FIELDS:
        return dt.datetime.fromisoformat(value)
    if name == "event_outcome":
        return str(value).lower()  # a GraphQL enum would spell it in capitals
    return value


FILTERS: list[dict[str, str]] = [
    {},
    {"correlation_id": "rr-contract-1"},
    {"event_outcome": "pending"},
    {"event_category": "workflow", "event_outcome": "failure"},
    {"namespace": "prod", "since": "24h"},
    {"until": "3h"},
    {"detail_key": "pod", "detail_value": "api-1"},
    {"actor_id": "alice", "resource_type": "pod", "resource_id": "api-7d9", "severity": "critical"},
    {"event_type": "gateway.signal.received", "since": "7d", "until": "1h"},
    {"correlation_id": "rr-nothing"},
]


async def test_rest_and_graphql_return_the_same_events_with_the_same_values(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    everything = await rest_events(client, {})
    assert len(everything) == 10
    rest_names = sorted(everything[0])
    fields = [camel(name) for name in rest_names]
    non_empty = 0
    for params in FILTERS:
        rest = await rest_events(client, params)
        graph = await graphql_events(client, params, fields)
        non_empty += bool(rest)
        assert [event["event_id"] for event in rest] == [node["eventId"] for node in graph], params
        for rest_event, node in zip(rest, graph, strict=True):
            for name in rest_names:
                assert comparable(name, rest_event[name]) == comparable(name, node[camel(name)]), (
                    params,
                    name,
                )
    assert non_empty == len(FILTERS) - 1


async def test_optional_fields_survive_both_surfaces(client: httpx.AsyncClient) -> None:
    # Guards the comparison above against both sides losing a value in the same way.
    await seed(client)
    rest = await rest_events(client, {"actor_id": "alice"})
    assert len(rest) == 1
    event = rest[0]
    assert event["actor_ip"] == "2001:db8::7"
    assert event["cluster_name"] == event["cluster_id"] == "prod-eu"
    assert event["duration_ms"] == 2**40
    assert event["error_message"] == "boom ✓"
    assert event["retention_days"] == 90
    assert event["is_sensitive"] is True
    assert event["event_data"]["nested"] == {"list": [1, 2.5, None, True]}
    graph = await graphql_events(
        client,
        {"actor_id": "alice"},
        ["durationMs", "actorIp", "clusterId", "version", "eventData"],
    )
    assert graph == [
        {
            "durationMs": 2**40,
            "actorIp": "2001:db8::7",
            "clusterId": "prod-eu",
            "version": "1.0",
            "eventData": event["event_data"],
        }
    ]
