"""Legacy audit-event routes: HTTP in, resolver call, HTTP out."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastorage.domain import PageRequest
from datastorage.resolvers import audit
from datastorage.resolvers.audit_queries import (
    build_filter,
    check_page_size,
    decode_cursor,
    encode_cursor,
)
from datastorage.resolvers.context import Context, Services, hints_from_traceparent
from datastorage.resolvers.errors import DomainError, ValidationFailed
from datastorage.rest_compat.encoding import json_response, legacy_event, read_json
from datastorage.rest_compat.problems import from_error

QUERY_LIMIT_MAX = 1000
QUERY_LIMIT_DEFAULT = 50
# PostgreSQL's OFFSET is a bigint; past it the query fails instead of returning nothing.
QUERY_OFFSET_MAX = 2**63 - 1

Handler = Callable[[Request], Awaitable[Response]]


def context_from(request: Request) -> Context:
    """The resolver context of a REST request."""
    services: Services = request.app.state.services
    return Context(
        services=services, hints=hints_from_traceparent(request.headers.get("traceparent"))
    )


def maps_errors(handler: Handler) -> Handler:
    """Turn domain errors into problem+json responses (the one place REST does it)."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except DomainError as error:
            services: Services = request.app.state.services
            if isinstance(error, ValidationFailed):
                for field in error.field_errors:
                    services.metrics.validation_failures.labels(_field_label(field)).inc()
            return from_error(
                services.settings.service.problem_base_uri, error, instance=request.url.path
            )

    return wrapper


def _field_label(field: str) -> str:
    # "[3].event_type" → "event_type": bounded label values for the metric.
    return field.rsplit(".", 1)[-1] if "]" in field else field


@maps_errors
async def post_event(request: Request) -> Response:
    ctx = context_from(request)
    accepted = await audit.create_event(
        ctx, await read_json(request, ctx.services.settings.service.max_body_bytes)
    )
    stored = accepted.events[0]
    if accepted.queued:
        body = {
            "status": "accepted",
            "message": "audit event queued for asynchronous persistence",
            "event_id": stored.event_id,
        }
        return json_response(body, status=202)
    message = "audit event already stored" if stored.duplicate else "audit event created"
    return json_response(
        {
            "event_id": stored.event_id,
            "event_timestamp": stored.event_timestamp,
            "message": message,
        },
        status=201,
    )


@maps_errors
async def post_batch(request: Request) -> Response:
    ctx = context_from(request)
    accepted = await audit.create_events(
        ctx, await read_json(request, ctx.services.settings.service.max_body_bytes)
    )
    event_ids = [stored.event_id for stored in accepted.events]
    if accepted.queued:
        body = {
            "status": "accepted",
            "message": "audit events queued for asynchronous persistence",
            "count": len(event_ids),
            "event_ids": event_ids,
        }
        return json_response(body, status=202)
    return json_response(
        {"event_ids": event_ids, "message": f"{len(event_ids)} audit events created"}, status=201
    )


@maps_errors
async def list_events(request: Request) -> Response:
    ctx = context_from(request)
    params = request.query_params
    filters = build_filter({name: params.get(name) for name in _FILTER_PARAMS})
    limit = check_page_size(
        _int_param(params.get("limit"), "limit", QUERY_LIMIT_DEFAULT), "limit", QUERY_LIMIT_MAX
    )
    offset = _int_param(params.get("offset"), "offset", 0)
    if not 0 <= offset <= QUERY_OFFSET_MAX:
        raise ValidationFailed(
            {"offset": f"must be between 0 and {QUERY_OFFSET_MAX}, got {offset}"}
        )
    cursor = params.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    page = await audit.list_events(
        ctx,
        filters,
        PageRequest(limit=limit, offset=0 if after else offset, after=after, with_total=True),
    )
    body = {
        "data": [legacy_event(record) for record in page.events],
        "pagination": {
            "limit": limit,
            "offset": 0 if after else offset,
            "total": page.total,
            "has_more": page.has_more,
        },
        "next_cursor": encode_cursor(page.next_keyset) if page.next_keyset else None,
    }
    return json_response(body)


_FILTER_PARAMS = (
    "event_type", "event_category", "event_outcome", "severity", "correlation_id", "actor_id",
    "resource_type", "resource_id", "namespace", "since", "until", "detail_key", "detail_value",
)  # fmt: skip


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed({name: f"must be an integer, got {raw[:40]!r}"}) from None


def routes() -> list[Route]:
    """The legacy audit-event routes."""
    return [
        Route("/api/v1/audit/events", post_event, methods=["POST"]),
        Route("/api/v1/audit/events", list_events, methods=["GET"]),
        Route("/api/v1/audit/events/batch", post_batch, methods=["POST"]),
    ]
