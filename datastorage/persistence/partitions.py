"""Monthly partitions of audit_events, created ahead of time by calendar month."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from datastorage.persistence.database import Connection

log = logging.getLogger(__name__)

# Shared by every replica so only one creates partitions at a time ("DS-PART").
PARTITION_LOCK_ID = 0x44_53_2D_50_41_52_54


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, day: dt.date) -> Month:
        return cls(day.year, day.month)

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def table_name(self) -> str:
        return f"audit_events_{self.year:04d}_{self.month:02d}"


def months_to_keep(today: dt.date, *, backfill_days: int, months_ahead: int) -> list[Month]:
    """From the month of the oldest accepted event to `months_ahead` calendar months after today."""
    first = Month.of(today - dt.timedelta(days=backfill_days))
    last = Month.of(today).shifted(months_ahead)
    months = []
    current = first
    while current <= last:
        months.append(current)
        current = current.shifted(1)
    return months


async def existing_partitions(connection: Connection) -> set[str]:
    """Names of the partitions attached to audit_events."""
    rows = await connection.fetch(
        """
        SELECT child.relname
        FROM pg_inherits
        JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
        JOIN pg_class child ON child.oid = pg_inherits.inhrelid
        WHERE parent.relname = 'audit_events'
        """
    )
    return {row["relname"] for row in rows}


async def ensure_partitions(connection: Connection, months: list[Month]) -> list[str]:
    """Create the missing partitions among `months`; returns the names created."""
    missing = [
        month for month in months if month.table_name not in await existing_partitions(connection)
    ]
    if not missing:
        return []
    created = []
    async with connection.transaction():
        # Transaction-scoped, so a crash can never leave the lock held.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_ID)
        present = await existing_partitions(connection)
        for month in missing:
            if month.table_name in present:
                continue  # another replica created it while we waited for the lock
            upper = month.shifted(1).first_day
            # Identifiers and bounds come from integers formatted above, never from input.
            await connection.execute(
                f"CREATE TABLE {month.table_name} PARTITION OF audit_events "
                f"FOR VALUES FROM ('{month.first_day.isoformat()}') TO ('{upper.isoformat()}')"
            )
            created.append(month.table_name)
    return created


async def partitions_ahead(connection: Connection, today: dt.date) -> int:
    """How many consecutive months after the current one already have a partition."""
    present = await existing_partitions(connection)
    count = 0
    month = Month.of(today).shifted(1)
    while month.table_name in present:
        count += 1
        month = month.shifted(1)
    return count


class PartitionMaintainer:
    """Keeps partitions from the backfill window to `months_ahead` created, now and periodically."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        backfill_days: int,
        months_ahead: int,
        interval_s: float,
        on_checked: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._backfill_days = backfill_days
        self._months_ahead = months_ahead
        self._interval_s = interval_s
        self._on_checked = on_checked
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, today: dt.date | None = None) -> list[str]:
        """Create what is missing; returns the partitions created."""
        today = today or dt.datetime.now(dt.UTC).date()
        months = months_to_keep(
            today, backfill_days=self._backfill_days, months_ahead=self._months_ahead
        )
        async with self._pool.acquire() as connection:
            created = await ensure_partitions(connection, months)
            ahead = await partitions_ahead(connection, today)
        if created:
            log.info("created partitions %s", ", ".join(created))
        if self._on_checked:
            self._on_checked(ahead)
        return created

    def start(self) -> None:
        """Run periodically in the background until `stop`."""
        self._task = asyncio.create_task(self._loop(), name="partition-maintainer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception:  # keep maintaining: the next run may succeed (database back up)
                log.exception("partition maintenance failed; will retry")
