"""Reading events: every REST filter, order, offset and cursor pages, GraphQL, partition pruning."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from datastorage.persistence import audit_events as store
from datastorage.resolvers.audit_queries import build_filter
from tests.conftest import event_body, now_utc

EVENTS = "/api/v1/audit/events"
BATCH = "/api/v1/audit/events/batch"


@dataclass(frozen=True)
class Seed:
    """A stored event as the filters see it (defaults applied)."""

    event_id: uuid.UUID
    timestamp: dt.datetime
    event_type: str
    event_category: str
    event_outcome: str
    severity: str | None
    correlation_id: str
    actor_id: str
    resource_type: str
    resource_id: str
    namespace: str | None
    data: dict[str, Any]


# Ages of the seeded events; repeated ages are ties broken by event_id. Chosen far from the
# 30m / 24h / 7d boundaries so the clock moving during a test changes nothing.
AGES = [
    dt.timedelta(minutes=2),
    dt.timedelta(minutes=2),
    dt.timedelta(minutes=2),
    dt.timedelta(minutes=10),
    dt.timedelta(minutes=45),
    dt.timedelta(hours=3),
    dt.timedelta(hours=3),
    dt.timedelta(hours=20),
    dt.timedelta(hours=26),
    dt.timedelta(days=2),
    dt.timedelta(days=2, hours=5),
    dt.timedelta(days=4),
    dt.timedelta(days=5, hours=12),
    dt.timedelta(days=6),
]
TYPES = ["gateway.signal.received", "workflow.step.started", "gateway.signal.dropped"]
CATEGORIES = ["gateway", "workflow", "notification"]
OUTCOMES = ["success", "failure", "pending", "success"]
SEVERITIES = ["critical", "warning", None]
CORRELATIONS = ["rr-a", "rr-b", "rr-c"]
ACTORS = [None, "alice", "bob"]
RESOURCES = [(None, None), ("pod", "api-1"), ("pod", "api-2"), ("node", "n1")]
NAMESPACES = ["prod", "staging", None]


async def seed_events(client: httpx.AsyncClient) -> list[Seed]:
    """Fourteen events with every filtered field varied, written in one batch."""
    now = now_utc().replace(microsecond=0)
    seeds: list[Seed] = []
    bodies: list[dict[str, Any]] = []
    for index, age in enumerate(AGES):
        category = CATEGORIES[index % 3]
        correlation = CORRELATIONS[index % 3 if index % 2 else (index + 1) % 3]
        actor = ACTORS[index % 3 if index % 4 else 0]
        resource_type, resource_id = RESOURCES[index % 4]
        seed = Seed(
            event_id=uuid.uuid4(),
            timestamp=now - age,
            event_type=TYPES[index % 3 if index % 5 else 0],
            event_category=category,
            event_outcome=OUTCOMES[index % 4],
            severity=SEVERITIES[index % 3],
            correlation_id=correlation,
            actor_id=actor or f"{category}-service",
            resource_type=resource_type or category,
            resource_id=resource_id or correlation,
            namespace=NAMESPACES[(index // 2) % 3],
            data={"pod": f"api-{index % 3}", "restarts": index % 4, "node": {"name": "n1"}},
        )
        seeds.append(seed)
        bodies.append(
            event_body(
                event_id=str(seed.event_id),
                event_timestamp=seed.timestamp.isoformat(),
                event_type=seed.event_type,
                event_category=category,
                event_outcome=seed.event_outcome,
                severity=seed.severity,
                correlation_id=correlation,
                actor_id=actor,
                resource_type=resource_type,
                resource_id=resource_id,
                namespace=seed.namespace,
                event_data=seed.data,
            )
        )
    response = await client.post(BATCH, json=bodies)
    assert response.status_code == 201, response.text
    assert response.json()["event_ids"] == [str(seed.event_id) for seed in seeds]
    return seeds


_SEEDED: dict[str, tuple[float, list[Seed]]] = {}
# Well inside the margins of AGES to the 30m / 24h / 7d boundaries.
SEEDS_FRESH_FOR_S = 300


@pytest.fixture
async def seeds(client: httpx.AsyncClient, db: asyncpg.Connection) -> list[Seed]:
    """The seeded table; written once and reused while it is untouched and fresh.

    Tests using it only read. Emptying a partitioned table costs far more than a query, so the
    table is re-seeded only when another test changed it (its ids differ) or time moved on.
    """
    cached = _SEEDED.get("seeds")
    if cached is not None and time.monotonic() - cached[0] < SEEDS_FRESH_FOR_S:
        stored = await db.fetchval("SELECT array_agg(event_id ORDER BY event_id) FROM audit_events")
        if stored == sorted(seed.event_id for seed in cached[1]):
            return cached[1]
    await db.execute("TRUNCATE audit_events, audit_chain_heads")
    fresh = await seed_events(client)
    _SEEDED["seeds"] = (time.monotonic(), fresh)
    return fresh


def newest_first(seeds: list[Seed], keep: Callable[[Seed], bool] = lambda _: True) -> list[str]:
    """The ids the service must answer: event_timestamp DESC, event_id DESC."""
    chosen = sorted(
        (seed for seed in seeds if keep(seed)),
        key=lambda seed: (seed.timestamp, seed.event_id),
        reverse=True,
    )
    return [str(seed.event_id) for seed in chosen]


async def rest_page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(EVENTS, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page: dict[str, Any] = response.json()
    return page


async def rest_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    page = await rest_page(client, limit=1000, **params)
    assert page["pagination"]["total"] == len(page["data"])
    return [event["event_id"] for event in page["data"]]


def _day(seed: Seed) -> dt.date:
    return seed.timestamp.astimezone(dt.UTC).date()


def single_filters(seeds: list[Seed]) -> dict[str, tuple[dict[str, str], Callable[[Seed], bool]]]:
    """Each REST filter alone: query parameters and the rule it stands for."""
    now = now_utc()
    old = seeds[9]  # two days back
    plus_two = dt.timezone(dt.timedelta(hours=2))
    return {
        "event_type": (
            {"event_type": "workflow.step.started"},
            lambda s: s.event_type == "workflow.step.started",
        ),
        "event_category": (
            {"event_category": "notification"},
            lambda s: s.event_category == "notification",
        ),
        "event_outcome failure": (
            {"event_outcome": "failure"},
            lambda s: s.event_outcome == "failure",
        ),
        "event_outcome pending": (
            {"event_outcome": "pending"},
            lambda s: s.event_outcome == "pending",
        ),
        "severity": ({"severity": "critical"}, lambda s: s.severity == "critical"),
        "correlation_id": ({"correlation_id": "rr-b"}, lambda s: s.correlation_id == "rr-b"),
        "actor_id given": ({"actor_id": "alice"}, lambda s: s.actor_id == "alice"),
        "actor_id default": (
            {"actor_id": "gateway-service"},
            lambda s: s.actor_id == "gateway-service",
        ),
        "resource_type given": ({"resource_type": "pod"}, lambda s: s.resource_type == "pod"),
        "resource_type default": (
            {"resource_type": "workflow"},
            lambda s: s.resource_type == "workflow",
        ),
        "resource_id given": ({"resource_id": "api-1"}, lambda s: s.resource_id == "api-1"),
        "resource_id default": ({"resource_id": "rr-a"}, lambda s: s.resource_id == "rr-a"),
        "namespace": ({"namespace": "staging"}, lambda s: s.namespace == "staging"),
        "since 30m": ({"since": "30m"}, lambda s: s.timestamp >= now - dt.timedelta(minutes=30)),
        "since 24h": ({"since": "24h"}, lambda s: s.timestamp >= now - dt.timedelta(hours=24)),
        "since 7d": ({"since": "7d"}, lambda s: True),
        "since RFC 3339 with offset": (
            {"since": old.timestamp.astimezone(plus_two).isoformat()},
            lambda s: s.timestamp >= old.timestamp,
        ),
        "since YYYY-MM-DD": ({"since": _day(old).isoformat()}, lambda s: _day(s) >= _day(old)),
        "until RFC 3339": (
            {"until": old.timestamp.isoformat()},
            lambda s: s.timestamp <= old.timestamp,
        ),
        "until YYYY-MM-DD is the whole day": (
            {"until": _day(old).isoformat()},
            lambda s: _day(s) <= _day(old),
        ),
        "until 24h": ({"until": "24h"}, lambda s: s.timestamp <= now - dt.timedelta(hours=24)),
        "detail string": (
            {"detail_key": "pod", "detail_value": "api-1"},
            lambda s: s.data["pod"] == "api-1",
        ),
        "detail number as text": (
            {"detail_key": "restarts", "detail_value": "3"},
            lambda s: s.data["restarts"] == 3,
        ),
        "detail absent key": (
            {"detail_key": "missing", "detail_value": "x"},
            lambda s: False,
        ),
        "matches nothing": ({"correlation_id": "rr-none"}, lambda s: False),
    }


async def test_each_rest_filter_alone(client: httpx.AsyncClient, seeds: list[Seed]) -> None:
    assert await rest_ids(client) == newest_first(seeds)
    for case, (params, keep) in single_filters(seeds).items():
        expected = newest_first(seeds, keep)
        assert await rest_ids(client, **params) == expected, case
    # The dataset is varied enough that every filter above removes something.
    for case, (_, keep) in single_filters(seeds).items():
        if case != "since 7d":
            assert len(newest_first(seeds, keep)) < len(seeds), case


async def test_rest_filters_combined(client: httpx.AsyncClient, seeds: list[Seed]) -> None:
    now = now_utc()
    combos: list[tuple[dict[str, str], Callable[[Seed], bool]]] = [
        (
            {"event_category": "gateway", "event_outcome": "success"},
            lambda s: s.event_category == "gateway" and s.event_outcome == "success",
        ),
        (
            {"resource_type": "pod", "resource_id": "api-2", "since": "7d"},
            lambda s: s.resource_type == "pod" and s.resource_id == "api-2",
        ),
        (
            {"namespace": "prod", "since": "24h", "detail_key": "pod", "detail_value": "api-0"},
            lambda s: (
                s.namespace == "prod"
                and s.timestamp >= now - dt.timedelta(hours=24)
                and s.data["pod"] == "api-0"
            ),
        ),
        (
            {"correlation_id": "rr-a", "actor_id": "gateway-service", "until": "30m"},
            lambda s: (
                s.correlation_id == "rr-a"
                and s.actor_id == "gateway-service"
                and s.timestamp <= now - dt.timedelta(minutes=30)
            ),
        ),
        (
            {"since": "24h", "until": "30m", "severity": "warning"},
            lambda s: (
                now - dt.timedelta(hours=24) <= s.timestamp <= now - dt.timedelta(minutes=30)
                and s.severity == "warning"
            ),
        ),
        (
            {
                "event_type": "gateway.signal.received",
                "event_category": "gateway",
                "event_outcome": "success",
                "correlation_id": "rr-a",
            },
            lambda s: (
                s.event_type == "gateway.signal.received"
                and s.event_category == "gateway"
                and s.event_outcome == "success"
                and s.correlation_id == "rr-a"
            ),
        ),
    ]
    non_empty = 0
    for params, keep in combos:
        expected = newest_first(seeds, keep)
        non_empty += bool(expected)
        assert await rest_ids(client, **params) == expected, params
    assert non_empty >= 4  # the combinations are not all trivially empty


async def test_order_is_timestamp_desc_then_event_id_desc(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    page = await rest_page(client, limit=1000)
    keys = [(event["event_timestamp"], event["event_id"]) for event in page["data"]]
    parsed = [(dt.datetime.fromisoformat(stamp), uuid.UUID(event_id)) for stamp, event_id in keys]
    assert parsed == sorted(parsed, reverse=True)
    # Three events share the newest timestamp: their order comes from event_id alone.
    tied = sorted((seed.event_id for seed in seeds[:3]), reverse=True)
    assert [event_id for _, event_id in parsed[:3]] == tied


async def test_offset_pages_walk_every_event_once(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    expected = newest_first(seeds)
    seen: list[str] = []
    offset = 0
    while True:
        page = await rest_page(client, limit=4, offset=offset)
        assert page["pagination"]["limit"] == 4
        assert page["pagination"]["offset"] == offset
        assert page["pagination"]["total"] == len(seeds)
        seen += [event["event_id"] for event in page["data"]]
        assert page["pagination"]["has_more"] == (len(seen) < len(seeds))
        if not page["pagination"]["has_more"]:
            break
        offset += 4
    assert seen == expected
    past_the_end = await rest_page(client, limit=4, offset=len(seeds))
    assert past_the_end["data"] == []
    assert past_the_end["pagination"] == {
        "limit": 4,
        "offset": len(seeds),
        "total": len(seeds),
        "has_more": False,
    }
    assert past_the_end["next_cursor"] is None


async def test_default_limit_is_50(client: httpx.AsyncClient, seeds: list[Seed]) -> None:
    page = await rest_page(client)
    assert page["pagination"] == {"limit": 50, "offset": 0, "total": len(seeds), "has_more": False}
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_cursor_pages_walk_every_event_once(
    client: httpx.AsyncClient, seeds: list[Seed], limit: int
) -> None:
    expected = newest_first(seeds)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await rest_page(client, **params)
        pages += 1
        assert set(page) == {"data", "pagination", "next_cursor"}
        assert page["pagination"]["total"] == len(seeds)
        seen += [event["event_id"] for event in page["data"]]
        cursor = page["next_cursor"]
        assert page["pagination"]["has_more"] == (cursor is not None)
        if cursor is None:
            break
        assert pages <= len(seeds)
    assert seen == expected  # no gap, no duplicate, same order
    assert pages == -(-len(seeds) // limit)


async def test_cursor_pages_respect_the_filters(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    params: dict[str, Any] = {"event_category": "gateway", "since": "7d", "limit": 2}
    seen: list[str] = []
    while True:
        page = await rest_page(client, **params)
        seen += [event["event_id"] for event in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == newest_first(seeds, lambda s: s.event_category == "gateway")


async def test_cursor_wins_over_offset(client: httpx.AsyncClient, seeds: list[Seed]) -> None:
    first = await rest_page(client, limit=3)
    cursor = first["next_cursor"]
    assert cursor is not None
    with_cursor = await rest_page(client, limit=3, cursor=cursor)
    with_both = await rest_page(client, limit=3, cursor=cursor, offset=5)
    assert with_both["data"] == with_cursor["data"]
    assert [event["event_id"] for event in with_both["data"]] == newest_first(seeds)[3:6]
    assert with_both["pagination"]["offset"] == 0


LEGACY_FIELDS = {
    "event_id",
    "event_date",
    "version",
    "event_type",
    "event_timestamp",
    "event_category",
    "event_action",
    "event_outcome",
    "actor_type",
    "actor_id",
    "resource_type",
    "resource_id",
    "correlation_id",
    "parent_event_id",
    "namespace",
    "cluster_name",
    "cluster_id",
    "severity",
    "duration_ms",
    "event_data",
}


async def test_events_are_returned_with_the_legacy_field_names(
    client: httpx.AsyncClient,
) -> None:
    correlation = f"rr-legacy-{uuid.uuid4().hex[:8]}"
    # 02:00 UTC yesterday, sent as 21:00 the day before at -05:00: event_date is the UTC date.
    utc = (now_utc() - dt.timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    local = utc.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert local.date() != utc.date()
    sent_as_id = event_body(
        correlation_id=correlation,
        cluster_id="prod-eu",
        event_timestamp=local.isoformat(),
        duration_ms=1500,
        version="2.1",
    )
    sent_as_name = event_body(correlation_id=correlation, cluster_name="prod-us")
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traceparent = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    for body in (sent_as_id, sent_as_name):
        assert (await client.post(EVENTS, json=body, headers=traceparent)).status_code == 201
    page = await rest_page(client, correlation_id=correlation)
    by_cluster = {event["cluster_name"]: event for event in page["data"]}
    assert set(by_cluster) == {"prod-eu", "prod-us"}
    for cluster, event in by_cluster.items():
        assert set(event) >= LEGACY_FIELDS
        assert "event_version" not in event
        assert event["cluster_id"] == event["cluster_name"] == cluster
    event = by_cluster["prod-eu"]
    assert event["version"] == "2.1"
    assert dt.datetime.fromisoformat(event["event_timestamp"]) == utc
    assert event["event_date"] == utc.date().isoformat()
    assert event["duration_ms"] == 1500
    assert event["event_data"] == sent_as_id["event_data"]
    assert event["actor_id"] == "gateway-service"
    assert event["chain_seq"] in (1, 2)
    # Trace ids absent from the body come from the request's W3C traceparent.
    assert (event["trace_id"], event["span_id"]) == (trace_id, span_id)


# --- GraphQL -----------------------------------------------------------------------------------

CONNECTION_QUERY = """
query Events($filter: AuditEventFilter, $first: Int!, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    edges { cursor node { eventId eventTimestamp correlationId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    assert "Traceback" not in response.text
    answer: dict[str, Any] = response.json()
    return answer


def graphql_filter(params: dict[str, str]) -> dict[str, str]:
    """REST query parameters as a GraphQL AuditEventFilter."""
    result: dict[str, str] = {}
    for name, value in params.items():
        head, *rest = name.split("_")
        key = head + "".join(word.capitalize() for word in rest)
        result[key] = value.upper() if name == "event_outcome" else value
    return result


async def graphql_walk(
    client: httpx.AsyncClient, filters: dict[str, str] | None, first: int
) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    for _ in range(100):
        answer = await graphql(client, CONNECTION_QUERY, filter=filters, first=first, after=after)
        assert "errors" not in answer, answer
        connection = answer["data"]["auditEvents"]
        edges = connection["edges"]
        assert len(edges) <= first
        seen += [edge["node"]["eventId"] for edge in edges]
        info = connection["pageInfo"]
        if edges:
            assert info["endCursor"] == edges[-1]["cursor"]
        if not info["hasNextPage"]:
            return seen
        after = info["endCursor"]
    raise AssertionError("pagination does not end")


async def test_graphql_filters_and_pages_match_the_rules(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    assert await graphql_walk(client, None, 4) == newest_first(seeds)
    for case, (params, keep) in single_filters(seeds).items():
        expected = newest_first(seeds, keep)
        assert await graphql_walk(client, graphql_filter(params), 3) == expected, case


async def test_graphql_total_count_is_counted_only_when_selected(
    client: httpx.AsyncClient, seeds: list[Seed], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real_count = store.count_events

    async def counting(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        return await real_count(*args, **kwargs)

    monkeypatch.setattr(store, "count_events", counting)
    answer = await graphql(client, CONNECTION_QUERY, first=2)
    assert len(answer["data"]["auditEvents"]["edges"]) == 2
    assert calls == []
    with_total = """
      query($filter: AuditEventFilter) {
        auditEvents(filter: $filter, first: 2) { totalCount edges { node { eventId } } }
      }
    """
    answer = await graphql(client, with_total, filter={"eventOutcome": "SUCCESS"})
    connection = answer["data"]["auditEvents"]
    assert connection["totalCount"] == len(
        newest_first(seeds, lambda s: s.event_outcome == "success")
    )
    assert len(connection["edges"]) == 2
    assert len(calls) == 1


async def test_graphql_first_above_500_is_an_error_naming_500(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    answer = await graphql(client, CONNECTION_QUERY, first=501)
    assert answer.get("data") is None
    assert "500" in answer["errors"][0]["message"]
    for bad in (0, -1):
        answer = await graphql(client, CONNECTION_QUERY, first=bad)
        assert answer["errors"], bad
    answer = await graphql(client, CONNECTION_QUERY, first=500)
    assert "errors" not in answer
    assert len(answer["data"]["auditEvents"]["edges"]) == len(seeds)


async def test_graphql_bad_filter_or_cursor_is_an_error_naming_the_argument(
    client: httpx.AsyncClient, seeds: list[Seed]
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"filter": {"since": "yesterday"}}, "since"),
        ({"filter": {"detailKey": "pod"}}, "detail_value"),
        ({"filter": {"eventType": "a\u0000b"}}, "event_type"),
        ({"after": "garbage"}, "after"),
    ]
    for variables, name in cases:
        answer = await graphql(client, CONNECTION_QUERY, first=5, **variables)
        assert answer.get("data") is None, variables
        message = answer["errors"][0]["message"]
        # The REST name or its GraphQL (camelCase) spelling.
        head, *rest = name.split("_")
        camel = head + "".join(word.capitalize() for word in rest)
        assert name in message or camel in message, (variables, message)


async def test_graphql_audit_event_by_id(client: httpx.AsyncClient, seeds: list[Seed]) -> None:
    query = """
      query($id: ID!) {
        auditEvent(eventId: $id) { eventId eventType correlationId eventData actorId eventTimestamp }
      }
    """
    seed = seeds[4]
    answer = await graphql(client, query, id=str(seed.event_id))
    event = answer["data"]["auditEvent"]
    assert event["eventId"] == str(seed.event_id)
    assert event["eventType"] == seed.event_type
    assert event["correlationId"] == seed.correlation_id
    assert event["eventData"] == seed.data
    assert event["actorId"] == seed.actor_id
    assert dt.datetime.fromisoformat(event["eventTimestamp"]) == seed.timestamp
    missing = await graphql(client, query, id=str(uuid.uuid4()))
    assert missing == {"data": {"auditEvent": None}}
    bad = await graphql(client, query, id="not-a-uuid")
    assert bad["data"]["auditEvent"] is None
    assert "eventId" in bad["errors"][0]["message"]


TIMELINE_QUERY = """
query($correlation: String!) {
  auditTimeline(correlationId: $correlation) { eventId chainSeq eventAction previousEventHash eventHash }
}
"""


async def test_graphql_timeline_is_in_chain_order(client: httpx.AsyncClient) -> None:
    correlation = f"rr-timeline-{uuid.uuid4().hex[:8]}"
    now = now_utc()
    # Chain order is commit order, not timestamp order: the second event is the oldest.
    ages = [1, 10, 5]
    first_batch = [
        event_body(
            correlation_id=correlation,
            event_action=f"step{i}",
            event_timestamp=(now - dt.timedelta(minutes=age)).isoformat(),
        )
        for i, age in enumerate(ages)
    ]
    other = event_body(correlation_id=f"{correlation}-other")
    response = await client.post(BATCH, json=[*first_batch, other])
    assert response.status_code == 201
    late = event_body(
        correlation_id=correlation,
        event_action="step3",
        event_timestamp=(now - dt.timedelta(hours=2)).isoformat(),
    )
    assert (await client.post(EVENTS, json=late)).status_code == 201

    answer = await graphql(client, TIMELINE_QUERY, correlation=correlation)
    timeline = answer["data"]["auditTimeline"]
    assert [event["eventAction"] for event in timeline] == ["step0", "step1", "step2", "step3"]
    assert [event["chainSeq"] for event in timeline] == [1, 2, 3, 4]
    assert timeline[0]["previousEventHash"] == ""
    for previous, current in itertools.pairwise(timeline):
        assert current["previousEventHash"] == previous["eventHash"]
    # REST lists the same correlation newest first.
    rest = await rest_page(client, correlation_id=correlation)
    assert [event["event_action"] for event in rest["data"]] == ["step0", "step2", "step1", "step3"]
    empty = await graphql(client, TIMELINE_QUERY, correlation=f"{correlation}-unknown")
    assert empty == {"data": {"auditTimeline": []}}


async def test_graphql_timeline_with_a_nul_character_is_an_error_naming_the_argument(
    app: Starlette,
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://datastorage.test") as http:
        response = await http.post(
            "/graphql",
            json={"query": TIMELINE_QUERY, "variables": {"correlation": "rr-\u0000"}},
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["data"] is None
    assert "correlation" in answer["errors"][0]["message"].lower()


# --- partition pruning -------------------------------------------------------------------------

PARTITION = re.compile(r"\baudit_events_(\d{4})_(\d{2})\b")


def _month_start(day: dt.date, shift: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + shift
    return dt.date(index // 12, index % 12 + 1, 1)


async def _partitions(db: asyncpg.Connection) -> set[str]:
    rows = await db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_events'::regclass"
    )
    return {row[0] for row in rows}


async def _plan_partitions(app: Starlette, params: dict[str, str]) -> set[str]:
    pool = app.state.services.database.read_pool
    plan = await store.explain_list(pool, build_filter(params), 50)
    return {f"audit_events_{year}_{month}" for year, month in PARTITION.findall(plan)}


async def test_time_range_queries_touch_only_the_partitions_of_those_months(
    app: Starlette, db: asyncpg.Connection
) -> None:
    today = now_utc().date()
    next_month, month_after = _month_start(today, 1), _month_start(today, 2)
    existing = await _partitions(db)
    wanted = {f"audit_events_{m:%Y_%m}" for m in (next_month, month_after)}
    assert wanted <= existing, existing  # the maintainer keeps three months ahead
    assert len(existing) >= 3

    # Without a time range every partition is scanned: the check below can see them all.
    assert await _plan_partitions(app, {}) == existing

    one_month = {
        "since": f"{next_month:%Y-%m-%d}T00:00:00Z",
        "until": (month_after - dt.timedelta(days=1)).isoformat(),
    }
    assert await _plan_partitions(app, one_month) == {f"audit_events_{next_month:%Y_%m}"}

    two_months = {
        "since": (next_month - dt.timedelta(days=1)).isoformat(),
        "until": f"{next_month:%Y-%m}-05T12:00:00+00:00",
    }
    assert await _plan_partitions(app, two_months) == {
        f"audit_events_{_month_start(today, 0):%Y_%m}",
        f"audit_events_{next_month:%Y_%m}",
    }
    # An open-ended since prunes the months before it.
    since_only = {"since": f"{month_after:%Y-%m-%d}"}
    pruned = await _plan_partitions(app, since_only)
    assert f"audit_events_{today:%Y_%m}" not in pruned
    assert f"audit_events_{month_after:%Y_%m}" in pruned
