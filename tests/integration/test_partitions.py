"""Partition maintenance on a real database: creation, idempotence, replicas racing, routing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import httpx
import pytest

from datastorage.persistence import audit_events
from datastorage.persistence.partitions import (
    Month,
    ensure_partitions,
    existing_partitions,
    months_to_keep,
)
from tests.conftest import event_body


async def _drop_far_future(db: asyncpg.Connection, months: list[Month]) -> None:
    for month in months:
        await db.execute(f"DROP TABLE IF EXISTS {month.table_name}")


async def test_ensure_creates_missing_months_once(db: asyncpg.Connection) -> None:
    future = [Month(2031, 12), Month(2032, 1)]
    await _drop_far_future(db, future)
    try:
        assert await ensure_partitions(db, future) == [
            "audit_events_2031_12",
            "audit_events_2032_01",
        ]
        assert await ensure_partitions(db, future) == []
        bounds = await db.fetchval(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'audit_events_2031_12'"
        )
        assert bounds == "FOR VALUES FROM ('2031-12-01') TO ('2032-01-01')"
    finally:
        await _drop_far_future(db, future)


async def test_replicas_racing_create_each_partition_once(
    database_url: str, db: asyncpg.Connection
) -> None:
    future = [Month(2033, month) for month in range(1, 7)]
    await _drop_far_future(db, future)
    connections = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        created = await asyncio.gather(*(ensure_partitions(c, future) for c in connections))
        all_created = sorted(name for names in created for name in names)
        assert all_created == sorted(month.table_name for month in future)
    finally:
        for connection in connections:
            await connection.close()
        await _drop_far_future(db, future)


async def test_start_up_created_the_window_and_no_default_partition(db: asyncpg.Connection) -> None:
    present = await existing_partitions(db)
    today = dt.datetime.now(dt.UTC).date()
    wanted = {m.table_name for m in months_to_keep(today, backfill_days=7, months_ahead=3)}
    assert wanted <= present
    default = await db.fetchval(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_events'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'"
    )
    assert default == 0


@pytest.mark.usefixtures("clean")
async def test_events_land_in_the_partition_of_their_month(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/api/v1/audit/events", json=event_body())
    event_id = uuid.UUID(response.json()["event_id"])
    table = await db.fetchval(
        "SELECT tableoid::regclass::text FROM audit_events WHERE event_id = $1", event_id
    )
    assert table == Month.of(dt.datetime.now(dt.UTC).date()).table_name


async def test_time_filters_prune_partitions(app: object, db: asyncpg.Connection) -> None:
    from datastorage.domain import AuditEventFilter

    pool = app.state.services.database.pool  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC)
    narrow = AuditEventFilter(since=now - dt.timedelta(hours=1), until=now)
    plan = await audit_events.explain_list(pool, narrow, 50)
    current = Month.of(now.date()).table_name
    scanned = {name for name in await existing_partitions(db) if name in plan}
    assert scanned == {current}, plan
    everything = await audit_events.explain_list(pool, AuditEventFilter(), 50)
    assert len({name for name in await existing_partitions(db) if name in everything}) > 1
