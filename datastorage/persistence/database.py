"""Connection pools and the translation of driver errors at the persistence boundary."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import asyncpg.pool

from datastorage.persistence.errors import (
    MissingPartition,
    PermanentDataError,
    TransientDatabaseError,
)

APPLICATION_NAME = "datastorage"

# A connection as the rest of persistence sees it: a plain one, or one lent by a pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(slots=True)
class Database:
    """The primary pool (writes, and reads unless a replica is configured) and the read pool."""

    pool: asyncpg.Pool
    read_pool: asyncpg.Pool
    size: int

    @property
    def in_use(self) -> int:
        return self.pool.get_size() - self.pool.get_idle_size()

    async def close(self) -> None:
        await self.pool.close()
        if self.read_pool is not self.pool:
            await self.read_pool.close()


async def _no_reset(connection: asyncpg.Connection) -> None:
    # The pool's default reset query costs a round trip per release. Our connections keep no
    # session state (no LISTEN, no session advisory locks, no SET), and asyncpg still rolls
    # back an open transaction before calling this, so nothing leaks between requests.
    return None


async def create_pool(
    url: str, *, size: int, statement_timeout_ms: int, connect_timeout_s: float
) -> asyncpg.Pool:
    """A pool with the settings every DataStorage connection uses."""
    server_settings = {"application_name": APPLICATION_NAME, "timezone": "UTC"}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min(2, size),
            max_size=size,
            reset=_no_reset,
            timeout=connect_timeout_s,
            server_settings=server_settings,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise TransientDatabaseError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc
    assert pool is not None
    return pool


async def open_database(
    url: str,
    read_url: str | None,
    *,
    size: int,
    statement_timeout_ms: int,
    connect_timeout_s: float,
) -> Database:
    """Open the primary pool and, when configured, a separate pool on the read replica."""
    options: dict[str, Any] = {
        "size": size,
        "statement_timeout_ms": statement_timeout_ms,
        "connect_timeout_s": connect_timeout_s,
    }
    pool = await create_pool(url, **options)
    read_pool = await create_pool(read_url, **options) if read_url else pool
    return Database(pool=pool, read_pool=read_pool, size=size)


async def ping(db: Database, timeout_s: float = 2.0) -> bool:
    """True when the primary answers a trivial query within the timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            await db.pool.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


async def migrations_pending(db: Database) -> bool:
    """True while some shipped migration is not applied (or the database cannot say)."""
    from datastorage.persistence.migrations import pending_migrations  # imports this module

    try:
        async with db.pool.acquire() as connection:
            return bool(await pending_migrations(connection))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return True


# SQLSTATE classes whose cause is the data itself: retrying or queueing cannot help.
_PERMANENT_CLASSES = ("22", "23", "42")
# Conditions that pass when the server recovers: shutdown, connection limits, serialization,
# resources (53: disk full, out of memory), a standby that does not take writes yet after a
# failover (25006), lock timeouts. Queued on the DLQ, they are replayed once it passes.
_TRANSIENT_CLASSES = ("08", "53", "57")
_TRANSIENT_STATES = {
    "25006",
    "40001",
    "40P01",
    "53300",
    "57P01",
    "57P02",
    "57P03",
    "55P03",
    "08000",
    "08003",
    "08006",
}


def classify(exc: BaseException) -> TransientDatabaseError | PermanentDataError | None:
    """Translate a driver exception into the write path's two categories, or None if unknown."""
    if isinstance(exc, (TransientDatabaseError, PermanentDataError)):
        return exc
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, ConnectionError)):
        return TransientDatabaseError(f"database unavailable: {type(exc).__name__}")
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        message = str(getattr(exc, "message", "")) or type(exc).__name__
        if state == "23514" and "no partition" in message:
            return MissingPartition("no partition for the event date yet")
        if state in _TRANSIENT_STATES or state[:2] in _TRANSIENT_CLASSES:
            return TransientDatabaseError(f"database unavailable (SQLSTATE {state})")
        if state[:2] in _PERMANENT_CLASSES:
            return PermanentDataError(_safe_reason(exc, state), sqlstate=state)
    return None


def _safe_reason(exc: asyncpg.PostgresError, state: str) -> str:
    # Name the rule that was broken without echoing the server's message (which can quote data).
    parts = [f"SQLSTATE {state}"]
    for label, attribute in (("constraint", "constraint_name"), ("column", "column_name")):
        value = getattr(exc, attribute, None)
        if value:
            parts.append(f"{label} {value}")
    return ", ".join(parts)
