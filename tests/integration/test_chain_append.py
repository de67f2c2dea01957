"""The one-statement append: used when the cached heads are right, refused (and harmless) when not."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from datastorage.domain import NewAuditEvent
from datastorage.persistence.audit_events import ChainHasher, store_events
from datastorage.persistence.chain_heads import GENESIS, ChainHeadCache
from datastorage.resolvers.validation import EventRules, validate_event
from tests.conftest import event_body

RULES = EventRules(frozenset({"gateway"}), dt.timedelta(days=7), dt.timedelta(minutes=60))
HASHER = ChainHasher()

pytestmark = pytest.mark.usefixtures("clean")


def events(correlation: str, count: int, **overrides: object) -> list[NewAuditEvent]:
    return [
        validate_event(event_body(correlation_id=correlation, **overrides), RULES)
        for _ in range(count)
    ]


async def chain(db: asyncpg.Connection, correlation: str) -> list[tuple[int, str, str]]:
    rows = await db.fetch(
        "SELECT chain_seq, previous_event_hash, event_hash FROM audit_events "
        "WHERE correlation_id = $1 ORDER BY chain_seq",
        correlation,
    )
    return [(row[0], row[1], row[2]) for row in rows]


def assert_linked(links: list[tuple[int, str, str]], count: int) -> None:
    assert [seq for seq, _, _ in links] == list(range(1, count + 1))
    previous = ""
    for _, prev_hash, digest in links:
        assert prev_hash == previous
        previous = digest


async def test_cached_heads_chain_across_flushes(db: asyncpg.Connection) -> None:
    cache = ChainHeadCache()
    for _ in range(3):
        await store_events(db, events("c-1", 4), HASHER, cache)
    assert_linked(await chain(db, "c-1"), 12)
    seq, digest = cache.get("c-1")
    head = await db.fetchrow("SELECT last_seq, last_hash FROM audit_chain_heads")
    assert (head["last_seq"], head["last_hash"]) == (seq, digest) == (12, digest)


async def test_a_stale_cache_falls_back_and_keeps_the_chain(db: asyncpg.Connection) -> None:
    # Another replica (no cache) writes first; ours still believes the chain is empty.
    await store_events(db, events("c-2", 3), HASHER)
    stale = ChainHeadCache()
    assert stale.get("c-2") == GENESIS
    await store_events(db, events("c-2", 2), HASHER, stale)
    # And a cache that is behind by a few events, not at the genesis.
    behind = ChainHeadCache()
    behind.remember([("c-2", (1, (await chain(db, "c-2"))[0][2]))])
    await store_events(db, events("c-2", 2), HASHER, behind)
    assert_linked(await chain(db, "c-2"), 7)
    assert behind.get("c-2")[0] == 7


async def test_a_refused_append_changes_nothing(db: asyncpg.Connection) -> None:
    await store_events(db, events("c-3", 1), HASHER)
    with pytest.raises(asyncpg.PostgresError) as refused:
        # Claims the chain is new although it has a head: nothing may be written.
        await db.execute(
            "SELECT audit_append(ARRAY[]::audit_event_row[], $1, $2, $3, $4, $5, $6)",
            ["c-3"],
            [0],
            [""],
            [1],
            ["f" * 64],
            [],
        )
    assert refused.value.sqlstate == "DSC01"
    assert await db.fetchval("SELECT last_seq FROM audit_chain_heads") == 1
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


async def test_a_resent_event_id_is_a_duplicate_not_a_new_link(db: asyncpg.Connection) -> None:
    cache = ChainHeadCache()
    event_id = str(uuid.uuid4())
    first = await store_events(db, events("c-4", 1, event_id=event_id), HASHER, cache)
    again = await store_events(db, events("c-4", 1, event_id=event_id), HASHER, cache)
    assert [r.duplicate for r in first + again] == [False, True]
    assert_linked(await chain(db, "c-4"), 1)
    assert cache.get("c-4")[0] == 1


async def test_server_ids_resent_after_a_lost_answer_are_not_stored_twice(
    db: asyncpg.Connection,
) -> None:
    # The commit happened but its answer was lost: the writer retries the same events.
    batch = events("c-5", 3)
    await store_events(db, batch, HASHER, ChainHeadCache())
    retried = await store_events(db, batch, HASHER, ChainHeadCache())
    assert all(result.duplicate for result in retried)
    assert_linked(await chain(db, "c-5"), 3)


def test_the_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = ChainHeadCache(capacity=3)
    cache.remember([(f"c{i}", (i, "h")) for i in range(3)])
    cache.remember([("c0", (9, "h"))])  # written again: now the most recent
    cache.remember([("c3", (3, "h"))])
    assert len(cache) == 3
    assert cache.get("c1") == GENESIS
    assert cache.get("c0") == (9, "h")
