"""The compiled GraphQL path answers exactly what Strawberry answers, for every shape it takes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.resolvers.context import Context
from tests.conftest import event_body

pytestmark = pytest.mark.usefixtures("clean")

EVENT_FIELDS = """
  eventId version eventType eventTimestamp eventDate eventCategory eventAction eventOutcome actorType
  actorId actorIp resourceType resourceId resourceName correlationId parentEventId namespace clusterName
  clusterId severity durationMs errorCode errorMessage retentionDays isSensitive eventData traceId spanId
  chainSeq eventHash previousEventHash hashAlgorithm legalHold legalHoldReason legalHoldPlacedBy
  legalHoldPlacedAt ingestedAt __typename
"""

QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        f"query Page($f: AuditEventFilter, $first: Int!) {{ auditEvents(filter: $f, first: $first) {{"
        f" totalCount edges {{ cursor node {{ {EVENT_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}",
        {"f": {"correlationId": "rr-contract"}, "first": 3},
    ),
    (
        "{ a: auditEvents(first: 2, filter: {eventOutcome: FAILURE}) { edges { node { id: eventId eventOutcome"
        ' ...Parent } } __typename } b: auditTimeline(correlationId: "rr-contract") { chainSeq eventData } }'
        " fragment Parent on AuditEvent { parentEvent { eventId eventType } }",
        {},
    ),
    (
        "query One($id: ID!) { auditEvent(eventId: $id) { ... on AuditEvent { eventId durationMs } eventData } __typename }",
        {"id": "PARENT"},
    ),
    ('{ auditEvent(eventId: "00000000-0000-0000-0000-000000000000") { eventId } }', {}),
    ('{ auditEvents(first: 2, after: "AFTER") { edges { cursor } pageInfo { hasNextPage } } }', {}),
]


async def _seed(client: httpx.AsyncClient) -> str:
    parent = event_body(correlation_id="rr-contract", actor_ip="2001:db8::1", duration_ms=12)
    answer = await client.post("/api/v1/audit/events", json=parent)
    parent_id = answer.json()["event_id"]
    later = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    batch = [
        event_body(
            correlation_id="rr-contract",
            parent_event_id=parent_id,
            event_outcome="failure" if i % 2 else "success",
            event_timestamp=(later + dt.timedelta(milliseconds=i)).isoformat(),
            cluster_name="c1",
            event_data={"i": i, "nested": {"x": [1, 2.5, "y"]}, "unicode": "é✓"},
        )
        for i in range(5)
    ]
    assert (await client.post("/api/v1/audit/events/batch", json=batch)).status_code == 201
    return str(parent_id)


async def _strawberry(app: Starlette, query: str, variables: dict[str, Any]) -> Any:
    services = app.state.services
    schema = app.state.schema
    result = await schema.execute(
        query, variable_values=variables, context_value=Context(services=services)
    )
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return orjson.loads(orjson.dumps(body))


async def test_compiled_answers_equal_strawberry_answers(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    parent_id = await _seed(client)
    first_page = await client.post(
        "/graphql", json={"query": "{ auditEvents(first: 1) { pageInfo { endCursor } } }"}
    )
    after = first_page.json()["data"]["auditEvents"]["pageInfo"]["endCursor"]
    fast_path = app.state.fast_path
    for query, variables in QUERIES:
        query = query.replace("AFTER", after)
        variables = {
            key: (parent_id if value == "PARENT" else value) for key, value in variables.items()
        }
        compiled = await fast_path.execute(
            {"query": query, "variables": variables}, Context(services=app.state.services)
        )
        assert compiled is not None, f"not compiled: {query}"
        expected = await _strawberry(app, query, variables)
        assert "errors" not in expected, expected
        assert orjson.loads(compiled) == expected, query
        over_http = await client.post("/graphql", json={"query": query, "variables": variables})
        assert over_http.json() == expected


@pytest.mark.parametrize(
    "query",
    [
        "{ auditEvents(first: 501) { totalCount } }",  # an error: Strawberry renders it
        "{ auditEvents { edges { node { eventId @include(if: true) } } } }",  # directives
        "{ __schema { queryType { name } } }",  # introspection
        "mutation { createAuditEvents(inputs: []) { __typename } }",  # not a query
        '{ auditEvent(eventId: "not-a-uuid") { eventId } }',
        "{ auditEvents(first: 1) { edges { node { parentEvent { parentEvent { eventId } } } } } }",
    ],
)
async def test_other_shapes_fall_back_to_strawberry(app: Starlette, query: str) -> None:
    ctx = Context(services=app.state.services)
    assert await app.state.fast_path.execute({"query": query}, ctx) is None


async def test_first_above_cap_is_an_error_naming_the_cap(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ auditEvents(first: 501) { totalCount } }"}
    )
    body = response.json()
    assert body["data"] is None
    assert "500" in body["errors"][0]["message"]


async def test_unknown_event_id_is_null(client: httpx.AsyncClient) -> None:
    query = "query($id: ID!) { auditEvent(eventId: $id) { eventId } }"
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"id": str(uuid.uuid4())}}
    )
    assert response.json() == {"data": {"auditEvent": None}}
