"""Health, readiness and liveness: what probes and operators see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from datastorage.persistence import database, redis_store
from datastorage.persistence.dlq import DlqUnavailable
from datastorage.resolvers.context import Services

VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str | None = None


async def readiness(services: Services) -> Readiness:
    """Ready unless shutting down, PostgreSQL is unreachable, or migrations are pending.

    Redis down alone keeps the service ready: PostgreSQL writes still work.
    """
    if services.shutting_down:
        return Readiness(False, "shutting_down")
    if services.migrations_pending:
        # Re-checked on every probe while pending, so a pod becomes ready once the
        # migration job has run, without a restart.
        services.migrations_pending = await database.migrations_pending(services.database)
        if services.migrations_pending:
            return Readiness(False, "migrations_pending")
    if not await database.ping(services.database):
        return Readiness(False, "database_unreachable")
    return Readiness(True)


async def health(services: Services) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): healthy when PostgreSQL answers; Redis down shows as degraded."""
    db = services.database
    postgres_up = await database.ping(db)
    redis_status = "not_configured"
    dlq_depth, dlq_ratio = 0, 0.0
    if services.redis is not None:
        redis_status = "up" if await redis_store.ping(services.redis) else "down"
    if redis_status == "up" and services.dlq_monitor is not None:
        try:
            streams = await services.dlq_monitor.refresh()
            dlq_depth = sum(status.depth for status in streams.values())
            dlq_ratio = max(status.ratio for status in streams.values())
        except DlqUnavailable:
            redis_status = "down"
    if not postgres_up or services.shutting_down:
        status = "unhealthy"
    elif redis_status == "down":
        status = "degraded"
    else:
        status = "healthy"
    body = {
        "status": status,
        "components": {
            "postgresql": {
                "status": "up" if postgres_up else "down",
                "pool_in_use": db.in_use,
                "pool_size": db.size,
                "circuit_breaker": services.writer.breaker.state.name.lower(),
            },
            "redis": {
                "status": redis_status,
                "dlq_depth": dlq_depth,
                "dlq_max": services.settings.dlq.max_len,
                "dlq_capacity_ratio": round(dlq_ratio, 4),
            },
            "writer": {"queued": services.writer.queued},
        },
        "version": VERSION,
        "uptime_seconds": round(time.monotonic() - services.started_at, 3),
    }
    return status != "unhealthy", body
