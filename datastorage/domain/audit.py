"""Audit events: what is written, what is read back, and how pages are asked for."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


class EventOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"


class NewAuditEvent(NamedTuple):
    """A validated event, ready to be written; `event_id` is assigned before the first attempt.

    A NamedTuple (immutable, like the frozen dataclasses elsewhere) because one is built per
    ingested event and a tuple is several times cheaper to build.
    """

    event_id: uuid.UUID
    event_version: str
    event_type: str
    event_timestamp: dt.datetime
    event_category: str
    event_action: str
    event_outcome: str
    actor_type: str
    actor_id: str
    actor_ip: str | None
    resource_type: str
    resource_id: str
    resource_name: str | None
    correlation_id: str
    parent_event_id: uuid.UUID | None
    namespace: str | None
    cluster_name: str | None
    severity: str | None
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    retention_days: int
    is_sensitive: bool
    event_data_json: str
    trace_id: str | None
    span_id: str | None
    # False only for an id this process just generated: nothing can have stored it yet, so the
    # writer skips the duplicate lookup. Client-supplied and replayed ids may already be stored.
    may_exist: bool = True

    @property
    def event_date(self) -> dt.date:
        return self.event_timestamp.astimezone(dt.UTC).date()

    def canonical_content(self) -> dict[str, Any]:
        """The immutable content the hash chain covers (server-managed mutable columns excluded).

        Keys are written in sorted order so the JSON needs no sorting pass (it runs per event);
        orjson writes UUIDs in their canonical lowercase form and event_data is already sorted.
        """
        return {
            "actor_id": self.actor_id,
            "actor_ip": self.actor_ip,
            "actor_type": self.actor_type,
            "cluster_name": self.cluster_name,
            "correlation_id": self.correlation_id,
            "duration_ms": self.duration_ms,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "event_action": self.event_action,
            "event_category": self.event_category,
            "event_data": orjson.Fragment(self.event_data_json),
            "event_id": self.event_id,
            "event_outcome": self.event_outcome,
            "event_timestamp": format_timestamp(self.event_timestamp),
            "event_type": self.event_type,
            "event_version": self.event_version,
            "is_sensitive": self.is_sensitive,
            "namespace": self.namespace,
            "parent_event_id": self.parent_event_id,
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "resource_type": self.resource_type,
            "severity": self.severity,
            "span_id": self.span_id,
            "trace_id": self.trace_id,
        }


class AuditEventRecord(NamedTuple):
    """A stored event as read back, including the server-managed columns.

    A NamedTuple rather than a frozen dataclass: pages build thousands of these, and a tuple is
    built from a database row in about 0.2 µs where the 36-field frozen dataclass took 3.6 µs.
    It is just as immutable.
    """

    event_id: uuid.UUID
    event_date: dt.date
    event_timestamp: dt.datetime
    event_version: str
    event_type: str
    event_category: str
    event_action: str
    event_outcome: str
    actor_type: str
    actor_id: str
    actor_ip: str | None
    resource_type: str
    resource_id: str
    resource_name: str | None
    correlation_id: str
    parent_event_id: uuid.UUID | None
    namespace: str | None
    cluster_name: str | None
    severity: str | None
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    retention_days: int
    is_sensitive: bool
    event_data_json: str
    trace_id: str | None
    span_id: str | None
    chain_seq: int
    event_hash: str
    previous_event_hash: str
    hash_algorithm: str
    legal_hold: bool
    legal_hold_reason: str | None
    legal_hold_placed_by: str | None
    legal_hold_placed_at: dt.datetime | None
    ingested_at: dt.datetime

    @property
    def event_data(self) -> Any:
        return orjson.loads(self.event_data_json)


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEventFilter:
    """Every query filter; all combinable, all optional."""

    event_type: str | None = None
    event_category: str | None = None
    event_outcome: str | None = None
    severity: str | None = None
    correlation_id: str | None = None
    actor_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    namespace: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    detail_key: str | None = None
    detail_value: str | None = None


@dataclass(frozen=True, slots=True)
class Keyset:
    """Position after the last row of a page: order is (event_timestamp DESC, event_id DESC)."""

    event_timestamp: dt.datetime
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int = 0
    after: Keyset | None = None
    with_total: bool = False


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[AuditEventRecord]
    has_more: bool
    total: int | None
    next_keyset: Keyset | None


class StoredEvent(NamedTuple):
    """The answer for one written event: `duplicate` when its event_id was already stored."""

    event_id: uuid.UUID
    event_timestamp: dt.datetime
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What the write path did with one request's events (all of them share the fate)."""

    stored: list[StoredEvent] = field(default_factory=list)
    queued: bool = False


def format_timestamp(value: dt.datetime) -> str:
    """UTC RFC 3339 with microseconds and a `Z`, the canonical form used on the wire and in hashes."""
    # isoformat is several times faster than strftime; the offset of a UTC time is always +00:00.
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"
