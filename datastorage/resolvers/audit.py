"""Audit-event use cases shared by REST and GraphQL: write one, write a batch, query, timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datastorage.domain import (
    AuditEventFilter,
    AuditEventRecord,
    EventPage,
    NewAuditEvent,
    PageRequest,
    StoredEvent,
)
from datastorage.observability.logging import correlation_id_var
from datastorage.persistence import audit_events as store
from datastorage.persistence.errors import WriteRejected, WriteUnavailable
from datastorage.resolvers.audit_queries import text_problem
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import ServiceUnavailable, ValidationFailed
from datastorage.resolvers.validation import validate_batch, validate_event

TIMELINE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Accepted:
    """Events the write path took: committed (`queued` False) or durably queued for replay."""

    events: list[StoredEvent]
    queued: bool


async def create_event(ctx: Context, body: Any) -> Accepted:
    """Validate and write one event; returns after it is committed (or queued)."""
    event = validate_event(body, ctx.services.rules, ctx.hints)
    # Joins this request's log lines to the remediation they belong to.
    correlation_id_var.set(event.correlation_id)
    await _check_parents(ctx, [event], batch=False)
    return await _write(ctx, [event])


async def create_events(ctx: Context, body: Any) -> Accepted:
    """Validate and write a batch, all or nothing, answering ids in input order."""
    settings = ctx.services.settings
    events = validate_batch(
        body, ctx.services.rules, ctx.hints, max_size=settings.service.max_batch_size
    )
    await _check_parents(ctx, events, batch=True)
    return await _write(ctx, events)


async def _check_parents(ctx: Context, events: Sequence[NewAuditEvent], *, batch: bool) -> None:
    # A parent may be another event of the same batch; others must already be stored.
    in_batch = {event.event_id for event in events}
    wanted = {
        event.parent_event_id
        for event in events
        if event.parent_event_id and event.parent_event_id not in in_batch
    }
    if not wanted:
        return
    found = await store.find_existing_ids(ctx.services.database.pool, list(wanted))
    errors: dict[str, str] = {}
    for index, event in enumerate(events):
        parent = event.parent_event_id
        if parent is not None and parent not in in_batch and parent not in found:
            key = f"[{index}].parent_event_id" if batch else "parent_event_id"
            errors[key] = f"must reference an existing event; {parent} is not stored"
    if errors:
        raise ValidationFailed(errors)


async def _write(ctx: Context, events: list[NewAuditEvent]) -> Accepted:
    metrics = ctx.services.metrics
    try:
        result = await ctx.services.writer.submit(events)
    except WriteRejected as exc:
        metrics.write_result("rejected").inc()
        raise ValidationFailed({"body": exc.reason}, detail=exc.reason) from None
    except WriteUnavailable as exc:
        metrics.write_result("unavailable").inc()
        raise ServiceUnavailable(exc.reason, exc.retry_after) from None
    if result.queued:
        metrics.write_result("queued").inc()
        return Accepted(
            [StoredEvent(event.event_id, event.event_timestamp) for event in events], queued=True
        )
    metrics.write_result("stored").inc()
    duplicates = sum(1 for stored in result.stored if stored.duplicate)
    if duplicates:
        metrics.events_duplicate.inc(duplicates)
    return Accepted(result.stored, queued=False)


async def list_events(ctx: Context, filters: AuditEventFilter, page: PageRequest) -> EventPage:
    """A page of events, newest first."""
    return await store.list_events(ctx.services.database.read_pool, filters, page)


async def count_events(ctx: Context, filters: AuditEventFilter) -> int:
    """How many events match."""
    return await store.count_events(ctx.services.database.read_pool, filters)


async def get_event(ctx: Context, event_id: uuid.UUID) -> AuditEventRecord | None:
    """One event by id, or None."""
    found = await store.get_events(ctx.services.database.read_pool, [event_id])
    return found.get(event_id)


async def get_events(ctx: Context, event_ids: Sequence[uuid.UUID]) -> list[AuditEventRecord | None]:
    """Events by id in the order asked (None where missing): one statement for the whole list."""
    found = await store.get_events(ctx.services.database.read_pool, list(set(event_ids)))
    return [found.get(event_id) for event_id in event_ids]


async def timeline(ctx: Context, correlation_id: str) -> list[AuditEventRecord]:
    """Every event of a correlation, in chain order."""
    if not correlation_id or len(correlation_id) > 255:
        raise ValidationFailed({"correlation_id": "must be 1 to 255 characters"})
    problem = text_problem(correlation_id)
    if problem:
        raise ValidationFailed({"correlation_id": problem})
    return await store.correlation_timeline(
        ctx.services.database.read_pool, correlation_id, TIMELINE_LIMIT
    )
