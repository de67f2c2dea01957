"""Flushes plan their chain-head statements for each call's arrays, never once for all calls.

PL/pgSQL and prepared statements cache a generic plan per connection after a few calls. Planned
while audit_chain_heads was small, that plan seq-scans it; a pooled connection keeps it while
the table grows, and every flush then reads the whole table. Both write paths are covered: the
one-statement append (audit_append, migration 0006) and the locking path of large flushes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from datastorage.domain import NewAuditEvent
from datastorage.persistence.audit_events import ChainHasher, store_events
from datastorage.persistence.chain_heads import ChainHeadCache
from datastorage.resolvers.validation import EventRules, validate_event
from tests.conftest import event_body

RULES = EventRules(frozenset({"gateway"}), dt.timedelta(days=7), dt.timedelta(minutes=60))
BULK_HEADS = 50_000
EARLY_FLUSHES = 8  # PL/pgSQL switches to a cached generic plan after five custom ones
LATE_FLUSHES = 4

pytestmark = pytest.mark.usefixtures("clean")


def events(correlations: list[str]) -> list[NewAuditEvent]:
    return [
        validate_event(event_body(correlation_id=c, event_data={}), RULES) for c in correlations
    ]


@pytest.fixture
async def writer(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """One connection for every flush, like a pooled connection of the writer."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
        # Leave no bulk heads behind for the tests that follow.
        await db.execute("TRUNCATE audit_events, audit_chain_heads")


async def heads_read(reader: asyncpg.Connection, writer: asyncpg.Connection) -> tuple[int, int]:
    """Rows audit_chain_heads has given sequential scans, and index scans on it, so far."""
    await writer.execute("SELECT pg_stat_force_next_flush()")
    await reader.execute("SELECT pg_stat_clear_snapshot()")
    row = await reader.fetchrow(
        "SELECT seq_tup_read, idx_scan FROM pg_stat_user_tables WHERE relname = 'audit_chain_heads'"
    )
    assert row is not None
    return row["seq_tup_read"], row["idx_scan"]


@pytest.mark.parametrize("path", ["append", "locking"])
async def test_flushes_after_the_heads_table_grew_probe_its_index(
    db: asyncpg.Connection, writer: asyncpg.Connection, path: str
) -> None:
    hasher = ChainHasher()
    # Without a cache of chain heads every flush takes the locking path (as above 256 events).
    cache = ChainHeadCache() if path == "append" else None
    # While the table is small, enough flushes for a generic plan to be cached.
    early: list[str] = []
    for flush in range(EARLY_FLUSHES):
        correlations = [f"early-{flush}-{i}" for i in range(3)]
        early += correlations
        await store_events(writer, events(correlations), hasher, cache)
    # The table grows (other replicas, or the service simply running for a while).
    await writer.execute(
        "INSERT INTO audit_chain_heads (correlation_id, last_seq, last_hash) "
        "SELECT 'bulk-' || g, 1, repeat('a', 64) FROM generate_series(1, $1::int) AS g",
        BULK_HEADS,
    )
    seq_read_before, index_scans_before = await heads_read(db, writer)
    # Each later flush advances two existing chains and starts two new ones.
    for flush in range(LATE_FLUSHES):
        correlations = [*early[3 * flush : 3 * flush + 2], f"late-{flush}-0", f"late-{flush}-1"]
        await store_events(writer, events(correlations), hasher, cache)
    seq_read_after, index_scans_after = await heads_read(db, writer)

    # The flushes were written and their chains advanced.
    advanced = await db.fetch(
        "SELECT correlation_id, last_seq FROM audit_chain_heads "
        "WHERE correlation_id LIKE 'early-%' AND last_seq = 2 ORDER BY correlation_id"
    )
    assert len(advanced) == 2 * LATE_FLUSHES
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 3 * EARLY_FLUSHES + 4 * (
        LATE_FLUSHES
    )
    assert (
        await db.fetchval("SELECT count(*) FROM audit_chain_heads")
        == BULK_HEADS + 3 * EARLY_FLUSHES + 2 * LATE_FLUSHES
    )
    # They found their heads through the primary key (the counters did move) and none of them
    # read the grown table sequentially: a cached generic plan reads all 50,000 rows per flush.
    assert index_scans_after > index_scans_before
    assert seq_read_after - seq_read_before < BULK_HEADS, (seq_read_before, seq_read_after)
