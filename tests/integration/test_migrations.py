"""The migration runner: applies once, refuses edited history, and readiness reports pending work."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from datastorage.app import create_app
from datastorage.persistence import migrations
from datastorage.persistence.errors import MigrationError
from datastorage.settings import Settings
from tests.conftest import PG_ADMIN_URL, running


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    name = f"ds_migr_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def test_migrate_applies_everything_once(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        applied = await migrations.migrate(connection)
        assert [m.version for m in applied] == [m.version for m in migrations.load_migrations()]
        assert await migrations.migrate(connection) == []
        assert (
            await connection.fetchval("SELECT relkind FROM pg_class WHERE relname = 'audit_events'")
            == b"p"
        )
        assert await migrations.pending_migrations(connection) == []
    finally:
        await connection.close()


async def test_an_edited_applied_migration_is_refused(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        await migrations.migrate(connection)
        await connection.execute(
            "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1"
        )
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrations.pending_migrations(connection)
    finally:
        await connection.close()


async def test_rows_are_immutable_except_hold_and_retention(db: asyncpg.Connection) -> None:
    import datetime as dt
    import uuid

    event_id, today = uuid.uuid4(), dt.datetime.now(dt.UTC)
    await db.execute(
        """INSERT INTO audit_events (event_id, event_date, event_timestamp, event_version, event_type,
           event_category, event_action, event_outcome, actor_type, actor_id, resource_type, resource_id,
           correlation_id, event_data, chain_seq, event_hash, hash_algorithm)
           VALUES ($1, $2, $3, '1', 'a.b', 'gateway', 'x', 'success', 'service', 's', 'r', 'r', 'imm-1',
                   '{}', 1, 'h', 'sha256')""",
        event_id,
        today.date(),
        today,
    )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="immutable"):
        await db.execute("UPDATE audit_events SET event_action = 'y' WHERE event_id = $1", event_id)
    await db.execute(
        "UPDATE audit_events SET retention_days = 30, legal_hold = true WHERE event_id = $1",
        event_id,
    )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="legal hold"):
        await db.execute("DELETE FROM audit_events WHERE event_id = $1", event_id)
    await db.execute("UPDATE audit_events SET legal_hold = false WHERE event_id = $1", event_id)
    await db.execute("DELETE FROM audit_events WHERE event_id = $1", event_id)


async def test_readiness_reports_pending_migrations(
    empty_database: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database={"url": empty_database, "auto_migrate": False})
    async with running(create_app(settings)) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "not_ready", "reason": "migrations_pending"}
        # A migration job runs beside the server: the same process becomes ready.
        connection = await asyncpg.connect(empty_database)
        try:
            await migrations.migrate(connection)
        finally:
            await connection.close()
        assert (await client.get("/readyz")).json() == {"status": "ready"}
