"""A page of events with their parents costs a bounded number of SQL statements on both paths."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from datastorage.persistence import audit_events
from tests.conftest import event_body

pytestmark = pytest.mark.usefixtures("clean")

# The compiled path takes the first query; the @include directive sends the second to Strawberry.
COMPILED = (
    "{ auditEvents(first: 500) { edges { node { eventId parentEvent { eventId eventType } } } } }"
)
STRAWBERRY = (
    "{ auditEvents(first: 500) { edges { node { eventId @include(if: true) "
    "parentEvent { eventId eventType } } } } }"
)


@pytest.mark.parametrize("query", [COMPILED, STRAWBERRY], ids=["compiled", "strawberry"])
async def test_500_events_with_parents_take_two_statements(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    parents = [event_body(correlation_id=f"p-{i}") for i in range(10)]
    answer = await client.post("/api/v1/audit/events/batch", json=parents)
    parent_ids = answer.json()["event_ids"]
    children = [event_body(parent_event_id=parent_ids[i % 10]) for i in range(490)]
    assert (await client.post("/api/v1/audit/events/batch", json=children)).status_code == 201

    calls: Counter[str] = Counter()
    for name in ("list_events", "get_events", "count_events", "find_existing_ids"):
        original = getattr(audit_events, name)

        def counting(
            *args: Any, _original: Any = original, _name: str = name, **kwargs: Any
        ) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(audit_events, name, counting)

    response = await client.post("/graphql", json={"query": query})
    body = response.json()
    assert "errors" not in body, body
    edges = body["data"]["auditEvents"]["edges"]
    assert len(edges) == 500
    with_parent = [edge["node"] for edge in edges if edge["node"]["parentEvent"] is not None]
    assert len(with_parent) == 490
    assert {node["parentEvent"]["eventId"] for node in with_parent} == set(parent_ids)
    # One statement for the page, one for every parent of the page: never one per event.
    assert calls == Counter({"list_events": 1, "get_events": 1})
