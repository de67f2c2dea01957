"""GraphQL types of audit events. Object fields are the camelCase of the REST names."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from enum import Enum
from typing import Annotated, Any, NewType

import strawberry
from strawberry.scalars import JSON

from datastorage.domain import AuditEventRecord
from datastorage.domain import EventOutcome as DomainOutcome

# GraphQL's Int is 32-bit; durations and chain sequences are 64-bit integers.
Long = NewType("Long", int)
LONG_SCALAR = strawberry.scalar(
    name="Long", description="A 64-bit integer", serialize=int, parse_value=int
)


@strawberry.enum(name="EventOutcome")
class EventOutcome(Enum):
    SUCCESS = DomainOutcome.SUCCESS.value
    FAILURE = DomainOutcome.FAILURE.value
    PENDING = DomainOutcome.PENDING.value


@strawberry.type(name="AuditEvent")
class AuditEvent:
    """A stored audit event. Resolved straight from the stored record (no copy per field)."""

    event_id: uuid.UUID
    event_type: str
    event_timestamp: dt.datetime
    event_date: dt.date
    event_category: str
    event_action: str
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
    duration_ms: Long | None
    error_code: str | None
    error_message: str | None
    retention_days: int
    is_sensitive: bool
    trace_id: str | None
    span_id: str | None
    chain_seq: Long
    event_hash: str
    previous_event_hash: str
    hash_algorithm: str
    legal_hold: bool
    legal_hold_reason: str | None
    legal_hold_placed_by: str | None
    legal_hold_placed_at: dt.datetime | None
    ingested_at: dt.datetime

    @strawberry.field
    def version(self, root: strawberry.Parent[AuditEventRecord]) -> str:
        return root.event_version

    @strawberry.field
    def event_outcome(self, root: strawberry.Parent[AuditEventRecord]) -> EventOutcome:
        return EventOutcome(root.event_outcome)

    @strawberry.field
    def cluster_id(self, root: strawberry.Parent[AuditEventRecord]) -> str | None:
        return root.cluster_name

    @strawberry.field
    def event_data(self, root: strawberry.Parent[AuditEventRecord]) -> JSON:
        return root.event_data  # type: ignore[no-any-return]

    @strawberry.field(
        description="The parent event, when this event has one (batched per request)."
    )
    async def parent_event(
        self, root: strawberry.Parent[AuditEventRecord], info: strawberry.Info
    ) -> Annotated[AuditEvent, strawberry.lazy("datastorage.schema.audit_types")] | None:
        if root.parent_event_id is None:
            return None
        from datastorage.schema.loaders import event_loader

        return await event_loader(info.context).load(root.parent_event_id)  # type: ignore[return-value]


@strawberry.type(name="PageInfo")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(name="AuditEventEdge")
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.input(name="AuditEventFilter")
class AuditEventFilterInput:
    event_type: str | None = None
    event_category: str | None = None
    event_outcome: EventOutcome | None = None
    severity: str | None = None
    correlation_id: str | None = None
    actor_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    namespace: str | None = None
    since: str | None = strawberry.field(
        default=None, description="24h, 7d, RFC 3339 or YYYY-MM-DD"
    )
    until: str | None = strawberry.field(
        default=None, description="RFC 3339 or YYYY-MM-DD (whole day)"
    )
    detail_key: str | None = None
    detail_value: str | None = None

    @classmethod
    def from_coerced(cls, value: dict[str, Any]) -> AuditEventFilterInput:
        """Build from graphql-core's coerced input (GraphQL names, enum values as strings)."""
        fields = {snake_case(name): item for name, item in value.items()}
        if fields.get("event_outcome") is not None:
            fields["event_outcome"] = EventOutcome(fields["event_outcome"])
        return cls(**fields)

    def to_arguments(self) -> dict[str, str | None]:
        """The filter in the legacy argument names, for the shared filter builder."""
        values: dict[str, Any] = {
            name: getattr(self, name) for name in _FILTER_NAMES if getattr(self, name) is not None
        }
        if self.event_outcome is not None:
            values["event_outcome"] = self.event_outcome.value
        return values


@functools.cache  # a few dozen schema names; converting them per request cost 7% of a search
def snake_case(name: str) -> str:
    """A GraphQL field name as its Python attribute: eventType → event_type."""
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


_FILTER_NAMES = (
    "event_type", "event_category", "severity", "correlation_id", "actor_id", "resource_type",
    "resource_id", "namespace", "since", "until", "detail_key", "detail_value",
)  # fmt: skip


@strawberry.input(name="AuditEventInput")
class AuditEventInput:
    version: str
    event_type: str
    event_timestamp: str = strawberry.field(description="RFC 3339 date-time with a timezone offset")
    event_category: str
    event_action: str
    event_outcome: EventOutcome
    correlation_id: str
    event_data: JSON
    event_id: strawberry.ID | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    actor_ip: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    parent_event_id: strawberry.ID | None = None
    namespace: str | None = None
    cluster_name: str | None = None
    cluster_id: str | None = None
    severity: str | None = None
    duration_ms: Long | None = None
    error_code: str | None = None
    error_message: str | None = None
    retention_days: int | None = None
    is_sensitive: bool | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The event as the legacy JSON body, so both surfaces share one validator."""
        body = {name: value for name, value in vars(self).items() if value is not None}
        body["event_outcome"] = self.event_outcome.value
        return body


@strawberry.type(name="FieldError")
class FieldError:
    field: str
    message: str


@strawberry.type(name="ValidationFailed")
class ValidationFailed:
    message: str
    field_errors: list[FieldError]


@strawberry.type(name="AuditEventStored")
class AuditEventStored:
    event: AuditEvent
    duplicate: bool


@strawberry.type(name="AuditEventQueued")
class AuditEventQueued:
    event_id: strawberry.ID


@strawberry.type(name="AuditEventsStored")
class AuditEventsStored:
    event_ids: list[strawberry.ID]
    count: int


@strawberry.type(name="AuditEventsQueued")
class AuditEventsQueued:
    event_ids: list[strawberry.ID]
    count: int


CreateAuditEventResult = Annotated[
    AuditEventStored | AuditEventQueued | ValidationFailed,
    strawberry.union("CreateAuditEventResult"),
]
CreateAuditEventsResult = Annotated[
    AuditEventsStored | AuditEventsQueued | ValidationFailed,
    strawberry.union("CreateAuditEventsResult"),
]
