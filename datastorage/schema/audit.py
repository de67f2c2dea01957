"""GraphQL audit fields: thin adapters over the shared resolvers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError

from datastorage.domain import AuditEventFilter, AuditEventRecord, EventPage, Keyset, PageRequest
from datastorage.resolvers import audit
from datastorage.resolvers import errors as domain
from datastorage.resolvers.audit_queries import build_filter, decode_cursor, encode_cursor
from datastorage.resolvers.context import Context
from datastorage.schema.audit_types import (
    AuditEvent,
    AuditEventEdge,
    AuditEventFilterInput,
    AuditEventInput,
    AuditEventQueued,
    AuditEventsQueued,
    AuditEventsStored,
    AuditEventStored,
    CreateAuditEventResult,
    CreateAuditEventsResult,
    FieldError,
    PageInfo,
    ValidationFailed,
)


@strawberry.type(name="AuditEventConnection")
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo
    filters: strawberry.Private[AuditEventFilter]

    @strawberry.field(description="Matching events in all pages; counted only when selected.")
    async def total_count(self, info: strawberry.Info[Context]) -> int:
        return await audit.count_events(info.context, self.filters)


def page_size(first: int, cap: int) -> int:
    """`first` within 1..cap; above the cap is an error naming it, never a silent clamp."""
    if not 1 <= first <= cap:
        raise domain.ValidationFailed({"first": f"must be between 1 and {cap}, got {first}"})
    return first


def to_connection(page: EventPage, filters: AuditEventFilter) -> AuditEventConnection:
    edges = [
        AuditEventEdge(cursor=encode_cursor_of(record), node=record)  # type: ignore[arg-type]
        for record in page.events
    ]
    return AuditEventConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more, end_cursor=edges[-1].cursor if edges else None
        ),
        filters=filters,
    )


def encode_cursor_of(record: AuditEventRecord) -> str:
    return encode_cursor(Keyset(record.event_timestamp, record.event_id))


def to_validation_failed(error: domain.ValidationFailed) -> ValidationFailed:
    """The GraphQL member for a validation error; field paths use the GraphQL names."""
    return ValidationFailed(
        message=error.detail,
        field_errors=[
            FieldError(field=camel_path(path), message=rule)
            for path, rule in error.field_errors.items()
        ],
    )


def camel_path(path: str) -> str:
    """`[2].event_type` → `[2].eventType`: the names a GraphQL client sent."""
    return ".".join(_camel(part) for part in path.split("."))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


@contextlib.contextmanager
def graphql_names(prefix: str = "") -> Iterator[None]:
    """Re-raise a validation error with the argument names a GraphQL client used."""
    try:
        yield
    except domain.ValidationFailed as error:
        renamed = {prefix + camel_path(path): rule for path, rule in error.field_errors.items()}
        raise domain.ValidationFailed(renamed) from None


def unavailable(error: domain.ServiceUnavailable) -> GraphQLError:
    return GraphQLError(
        error.detail, extensions={"code": "SERVICE_UNAVAILABLE", "retryAfter": error.retry_after}
    )


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise domain.ValidationFailed({field: f"must be a UUID, got {value[:40]!r}"}) from None


async def load_audit_events(
    ctx: Context, filter: AuditEventFilterInput | None, first: int, after: str | None
) -> tuple[EventPage, AuditEventFilter]:
    """The page behind `auditEvents` (shared by the Strawberry field and the compiled path)."""
    limit = page_size(first, ctx.services.settings.graphql.max_first)
    with graphql_names(prefix="filter."):
        filters = build_filter(filter.to_arguments() if filter else {})
    keyset = decode_cursor(after, "after") if after else None
    page = await audit.list_events(ctx, filters, PageRequest(limit=limit, after=keyset))
    return page, filters


async def load_timeline(ctx: Context, correlation_id: str) -> list[AuditEventRecord]:
    """The events behind `auditTimeline`."""
    with graphql_names():
        return await audit.timeline(ctx, correlation_id)


@strawberry.type
class AuditQuery:
    @strawberry.field(description="Events newest first, with keyset cursors.")
    async def audit_events(
        self,
        info: strawberry.Info[Context],
        filter: AuditEventFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> AuditEventConnection:
        page, filters = await load_audit_events(info.context, filter, first, after)
        return to_connection(page, filters)

    @strawberry.field(description="One event by id.")
    async def audit_event(
        self, info: strawberry.Info[Context], event_id: strawberry.ID
    ) -> AuditEvent | None:
        return await audit.get_event(info.context, parse_id(event_id, "eventId"))  # type: ignore[return-value]

    @strawberry.field(description="Every event of one correlation, in chain order (oldest first).")
    async def audit_timeline(
        self, info: strawberry.Info[Context], correlation_id: str
    ) -> list[AuditEvent]:
        return await load_timeline(info.context, correlation_id)  # type: ignore[return-value]


@strawberry.type
class AuditMutation:
    @strawberry.mutation(description="Write one event; answers after it is committed or queued.")
    async def create_audit_event(
        self, info: strawberry.Info[Context], input: AuditEventInput
    ) -> CreateAuditEventResult:
        ctx = info.context
        try:
            accepted = await audit.create_event(ctx, input.to_body())
        except domain.ValidationFailed as error:
            return to_validation_failed(error)
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        stored = accepted.events[0]
        if accepted.queued:
            return AuditEventQueued(event_id=strawberry.ID(str(stored.event_id)))
        record = await audit.get_event(ctx, stored.event_id)
        return AuditEventStored(event=record, duplicate=stored.duplicate)  # type: ignore[arg-type]

    @strawberry.mutation(description="Write a batch, all or nothing, ids in input order.")
    async def create_audit_events(
        self, info: strawberry.Info[Context], inputs: list[AuditEventInput]
    ) -> CreateAuditEventsResult:
        try:
            accepted = await audit.create_events(info.context, [item.to_body() for item in inputs])
        except (domain.ValidationFailed, domain.InvalidRequest, domain.BatchTooLarge) as error:
            if isinstance(error, domain.ValidationFailed):
                return to_validation_failed(error)
            return ValidationFailed(
                message=error.detail,
                field_errors=[FieldError(field="inputs", message=error.detail)],
            )
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        ids = [strawberry.ID(str(stored.event_id)) for stored in accepted.events]
        if accepted.queued:
            return AuditEventsQueued(event_ids=ids, count=len(ids))
        return AuditEventsStored(event_ids=ids, count=len(ids))
