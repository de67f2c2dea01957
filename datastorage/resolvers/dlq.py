"""DLQ status for operators (GraphQL `dlq`); the CLI reads the same streams directly."""

from __future__ import annotations

from dataclasses import dataclass

from datastorage.persistence.dlq import DlqUnavailable, StreamStatus
from datastorage.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class DlqReport:
    # False when Redis is not configured or does not answer; streams is then empty.
    available: bool
    circuit_breaker: str
    streams: list[StreamStatus]


async def dlq_status(ctx: Context) -> DlqReport:
    """Depth, capacity, oldest entry and dead letters of every DLQ stream, read now."""
    services = ctx.services
    breaker = services.writer.breaker.state.name.lower()
    if services.dlq_monitor is None:
        return DlqReport(False, breaker, [])
    try:
        streams = await services.dlq_monitor.refresh()
    except DlqUnavailable:
        return DlqReport(False, breaker, [])
    return DlqReport(True, breaker, list(streams.values()))
