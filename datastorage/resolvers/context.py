"""The typed context every resolver takes: app-wide services plus what the request tells."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from datastorage.observability.metrics import Metrics
from datastorage.persistence.catalog_changes import CatalogListener
from datastorage.persistence.database import Database
from datastorage.persistence.dlq import DeadLetterQueue
from datastorage.persistence.dlq_monitor import DlqMonitor
from datastorage.persistence.dlq_replay import DlqDrainer
from datastorage.persistence.redis_store import Redis
from datastorage.persistence.writer import GroupCommitWriter
from datastorage.resolvers.event_schemas import load_event_schemas
from datastorage.resolvers.self_audit import SelfAudit
from datastorage.resolvers.validation import EventRules, RequestHints
from datastorage.resolvers.workflow_index import WorkflowIndex
from datastorage.settings import Settings


@dataclass(slots=True)
class Services:
    """Built once by create_app and shared by every request."""

    settings: Settings
    database: Database
    writer: GroupCommitWriter
    metrics: Metrics
    rules: EventRules
    started_at: float
    redis: Redis | None = None
    dlq: DeadLetterQueue | None = None
    dlq_monitor: DlqMonitor | None = None
    drainers: list[DlqDrainer] = field(default_factory=list)
    workflow_index: WorkflowIndex | None = None
    catalog_listener: CatalogListener | None = None
    self_audit: SelfAudit | None = None
    shutting_down: bool = False
    migrations_pending: bool = False
    # Queues a notification audit record (its JSON-ready payload, the reason PostgreSQL failed)
    # on the Redis DLQ; True when queued durably. None when no DLQ is configured.
    notification_fallback: Callable[[dict[str, Any], str], Awaitable[bool]] | None = None


@dataclass(slots=True)
class Context:
    """One request's view: the services, its trace hints, and its per-request loaders."""

    services: Services
    hints: RequestHints = field(default_factory=RequestHints)
    loaders: dict[str, Any] = field(default_factory=dict)


def rules_from(settings: Settings) -> EventRules:
    """The configurable validation rules."""
    return EventRules(
        categories=frozenset(settings.audit.categories),
        backfill=dt.timedelta(days=settings.audit.backfill_days),
        future_skew=dt.timedelta(minutes=settings.audit.future_skew_minutes),
        schemas=load_event_schemas(settings.audit.event_schemas_dir),
    )


def hints_from_traceparent(traceparent: str | None) -> RequestHints:
    """Trace and span ids from a W3C `traceparent` header (version-traceid-spanid-flags)."""
    if not traceparent:
        return RequestHints()
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return RequestHints()
    version, trace_id, span_id = parts[0].lower(), parts[1].lower(), parts[2].lower()
    # W3C Trace Context: version ff and all-zero ids are invalid.
    if len(version) != 2 or not _is_hex(version) or version == "ff":
        return RequestHints()
    if (
        not _is_hex(trace_id)
        or not _is_hex(span_id)
        or set(trace_id) == {"0"}
        or set(span_id) == {"0"}
    ):
        return RequestHints()
    return RequestHints(trace_id=trace_id, span_id=span_id)


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)
