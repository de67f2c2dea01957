"""Legacy audit-event routes: HTTP in, resolver call, HTTP out."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastorage.domain import PageRequest
from datastorage.observability.http import DirectHandler
from datastorage.resolvers import audit
from datastorage.resolvers.audit_queries import (
    build_filter,
    check_page_size,
    decode_cursor,
    encode_cursor,
)
from datastorage.resolvers.context import Context, Services, hints_from_traceparent
from datastorage.resolvers.errors import DomainError, ValidationFailed
from datastorage.rest_compat.direct import direct_route, json_route, problem_for
from datastorage.rest_compat.encoding import json_response, legacy_event

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
            return problem_for(request.app.state.services, error, request.url.path)

    return wrapper


async def answer_event(ctx: Context, body: Any) -> tuple[int, Any]:
    """POST /api/v1/audit/events: 201 once committed, 202 once queued for replay."""
    accepted = await audit.create_event(ctx, body)
    stored = accepted.events[0]
    if accepted.queued:
        return 202, {
            "status": "accepted",
            "message": "audit event queued for asynchronous persistence",
            "event_id": stored.event_id,
        }
    return 201, {
        "event_id": stored.event_id,
        "event_timestamp": stored.event_timestamp,
        "message": "audit event already stored" if stored.duplicate else "audit event created",
    }


async def answer_batch(ctx: Context, body: Any) -> tuple[int, Any]:
    """POST /api/v1/audit/events/batch: all or nothing, ids in input order."""
    accepted = await audit.create_events(ctx, body)
    event_ids = [stored.event_id for stored in accepted.events]
    if accepted.queued:
        return 202, {
            "status": "accepted",
            "message": "audit events queued for asynchronous persistence",
            "count": len(event_ids),
            "event_ids": event_ids,
        }
    return 201, {"event_ids": event_ids, "message": f"{len(event_ids)} audit events created"}


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


EVENTS_PATH = "/api/v1/audit/events"
BATCH_PATH = "/api/v1/audit/events/batch"


def routes() -> list[Route]:
    """The legacy audit-event routes."""
    return [
        Route(EVENTS_PATH, json_route(answer_event), methods=["POST"]),
        Route(EVENTS_PATH, list_events, methods=["GET"]),
        Route(BATCH_PATH, json_route(answer_batch), methods=["POST"]),
    ]


def direct_routes(state: State) -> dict[tuple[str, str], tuple[str, DirectHandler]]:
    """The write routes served straight on ASGI: (method, path) → (route template, handler)."""
    return {
        ("POST", EVENTS_PATH): (EVENTS_PATH, direct_route(state, answer_event)),
        ("POST", BATCH_PATH): (BATCH_PATH, direct_route(state, answer_batch)),
    }
