"""One-shot administrative tasks run by the CLI on their own connection."""

from __future__ import annotations

import datetime as dt

import asyncpg

from datastorage.persistence import migrations, partitions


async def run_migrations(url: str) -> list[str]:
    """Apply pending migrations; returns their names."""
    connection = await asyncpg.connect(url)
    try:
        applied = await migrations.migrate(connection)
    finally:
        await connection.close()
    return [f"{m.version:04d}_{m.name}" for m in applied]


async def ensure_partitions_now(url: str, *, backfill_days: int, months_ahead: int) -> list[str]:
    """Create the partitions that should exist today; returns those created."""
    connection = await asyncpg.connect(url)
    try:
        today = dt.datetime.now(dt.UTC).date()
        months = partitions.months_to_keep(
            today, backfill_days=backfill_days, months_ahead=months_ahead
        )
        return await partitions.ensure_partitions(connection, months)
    finally:
        await connection.close()
