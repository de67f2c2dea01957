"""Concurrent flushes on shared correlations keep every hash chain gapless and linked."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools

import asyncpg
import orjson
import pytest

from datastorage.persistence.audit_events import ChainHasher, canonical_json, store_events
from datastorage.persistence.chain_heads import ChainHeadCache
from datastorage.resolvers.validation import EventRules, validate_event
from tests.conftest import event_body

RULES = EventRules(frozenset({"gateway"}), dt.timedelta(days=7), dt.timedelta(minutes=60))


# "none": the locking path only; "shared": one process's cache; "per_connection": each flusher
# is like another replica, with heads it did not see moved by the others.
@pytest.mark.parametrize("caches", ["none", "shared", "per_connection"])
@pytest.mark.usefixtures("clean")
async def test_racing_flushes_on_new_and_existing_correlations(
    database_url: str, db: asyncpg.Connection, caches: str
) -> None:
    correlations = [f"race-{i}" for i in range(5)]
    # Each flush touches every correlation, some new, some already started by another flush.
    batches = [
        [
            validate_event(event_body(correlation_id=c, event_action=f"f{flush}"), RULES)
            for c in correlations * 3
        ]
        for flush in range(8)
    ]
    connections = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        hasher = ChainHasher()
        queue = list(batches)
        shared = ChainHeadCache() if caches == "shared" else None

        async def flusher(connection: asyncpg.Connection) -> None:
            cache = ChainHeadCache() if caches == "per_connection" else shared
            while queue:
                await store_events(connection, queue.pop(), hasher, cache)

        await asyncio.gather(*(flusher(c) for c in connections))
    finally:
        for connection in connections:
            await connection.close()

    assert await db.fetchval("SELECT count(*) FROM audit_events") == 8 * 15
    by_id = {event.event_id: event for event in itertools.chain.from_iterable(batches)}
    for correlation in correlations:
        rows = await db.fetch(
            "SELECT event_id, chain_seq, event_hash, previous_event_hash FROM audit_events "
            "WHERE correlation_id = $1 ORDER BY chain_seq",
            correlation,
        )
        assert [row["chain_seq"] for row in rows] == list(range(1, 25))
        previous = ""
        for row in rows:
            assert row["previous_event_hash"] == previous
            content = previous.encode() + canonical_json(by_id[row["event_id"]])
            assert row["event_hash"] == hashlib.sha256(content).hexdigest()
            previous = row["event_hash"]
        head = await db.fetchrow(
            "SELECT last_seq, last_hash FROM audit_chain_heads WHERE correlation_id = $1",
            correlation,
        )
        assert (head["last_seq"], head["last_hash"]) == (24, previous)


def test_canonical_json_is_sorted_compact_and_utc() -> None:
    event = validate_event(
        event_body(
            event_timestamp="2026-11-26T10:00:00.5+02:00",
            event_data={"b": 1, "a": {"d": 2, "c": 3}},
        ),
        EventRules(frozenset({"gateway"}), dt.timedelta(days=3650), dt.timedelta(days=3650)),
    )
    text = canonical_json(event)
    assert b" " not in text.replace(b"signal received", b"")
    parsed = orjson.loads(text)
    assert list(parsed) == sorted(parsed)
    assert parsed["event_timestamp"] == "2026-11-26T08:00:00.500000Z"
    assert text.count(b'"event_data":{"a":{"c":3,"d":2},"b":1}') == 1
