"""Routes served straight on ASGI, without Starlette's request and response machinery.

Used for the hottest routes of the service: the audit writes (every producer posts there, one
small event per request), the workflow search and GraphQL POSTs. Measured on 2 cores, Starlette's router, its
two exception middlewares and its Request/Response objects cost a fifth of such a request. A direct route reads the body
from `receive`, calls the same resolver function as the Starlette route and sends its answer
itself; both are built from one `Answer` function, so they cannot drift apart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datastorage.observability.http import DirectHandler
from datastorage.resolvers.context import Context, Services, hints_from_traceparent
from datastorage.resolvers.errors import BodyTooLarge, DomainError, ValidationFailed
from datastorage.rest_compat.encoding import (
    check_json_headers,
    dump_json,
    json_response,
    parse_json,
    read_json,
)
from datastorage.rest_compat.problems import from_error, problem

log = logging.getLogger(__name__)

Headers = Sequence[tuple[bytes, bytes]]
# The use case of a JSON route: the request's context and parsed body in, (status, JSON) out.
Answer = Callable[[Context, Any], Awaitable[tuple[int, Any]]]

# The status recorded when the client left before its body arrived (nothing is sent).
CLIENT_GONE = 499
_JSON_HEADER = (b"content-type", b"application/json")


class _ClientGone(Exception):
    """The client disconnected before its body was read; nothing is answered."""


def json_route(answer: Answer) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of `answer`, for the requests the direct route does not take."""

    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        ctx = Context(
            services=services, hints=hints_from_traceparent(request.headers.get("traceparent"))
        )
        try:
            body = await read_json(request, services.settings.service.max_body_bytes)
            status, content = await answer(ctx, body)
        except ClientDisconnect:
            # As the direct route: counted as 499, not an error; the server drops the answer.
            return Response(status_code=CLIENT_GONE)
        except DomainError as error:
            return problem_for(services, error, request.url.path)
        return json_response(content, status=status)

    functools.update_wrapper(endpoint, answer)
    return endpoint


def direct_route(state: State, answer: Answer) -> DirectHandler:
    """The direct ASGI handler of `answer`; `state.services` is read per request (set at start)."""

    async def handler(scope: Scope, receive: Receive, send: Send, extra_headers: Headers) -> int:
        services: Services = state.services
        traceparent, content_type, content_length = _request_headers(scope["headers"])
        ctx = Context(services=services, hints=hints_from_traceparent(traceparent))
        try:
            limit = services.settings.service.max_body_bytes
            check_json_headers(content_type, content_length, limit)
            body = await _read_body(receive, limit)
            status, content = await answer(ctx, parse_json(body))
        except _ClientGone:
            return CLIENT_GONE
        except DomainError as error:
            response = problem_for(services, error, scope["path"])
        except Exception:
            # Never driver text or a stack trace in a response; the log has the details.
            log.exception("unhandled error on %s", scope["path"])
            response = problem(
                services.settings.service.problem_base_uri,
                "internal-error",
                "an internal error occurred",
                instance=scope["path"],
            )
        else:
            payload = dump_json(content)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        _JSON_HEADER,
                        (b"content-length", str(len(payload)).encode()),
                        *extra_headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return status
        response.raw_headers.extend(extra_headers)
        await response(scope, receive, send)
        return response.status_code

    return handler


def asgi_route(state: State, app: ASGIApp) -> DirectHandler:
    """An ASGI app (the GraphQL endpoint) as a direct route: the extra headers added to its
    answer, and an error escaping it answered with a 500 problem, as Starlette would."""

    async def handler(scope: Scope, receive: Receive, send: Send, extra_headers: Headers) -> int:
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise  # too late to answer; the server closes the connection
            log.exception("unhandled error on %s", scope["path"])
            services: Services = state.services
            response = problem(
                services.settings.service.problem_base_uri,
                "internal-error",
                "an internal error occurred",
                instance=scope["path"],
            )
            response.raw_headers.extend(extra_headers)
            await response(scope, receive, send)
            return response.status_code
        return status

    return handler


def problem_for(services: Services, error: DomainError, path: str) -> Response:
    """The problem response of a domain error, counting each field a validation refused."""
    if isinstance(error, ValidationFailed):
        for field in error.field_errors:
            services.metrics.validation_failures.labels(_field_label(field)).inc()
    return from_error(services.settings.service.problem_base_uri, error, instance=path)


def _field_label(field: str) -> str:
    # "[3].event_type" → "event_type": bounded label values for the metric.
    return field.rsplit(".", 1)[-1] if "]" in field else field


def _request_headers(headers: Headers) -> tuple[str | None, str, str | None]:
    """traceparent, content-type and content-length, in one pass over the raw headers."""
    traceparent = None
    content_type = ""
    content_length = None
    for name, value in headers:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
        elif name == b"traceparent":
            traceparent = value.decode("latin-1")
    return traceparent, content_type, content_length


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
        return body  # the usual case: the whole body in one message
    chunks = bytearray(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunks += message.get("body", b"")
        if len(chunks) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return bytes(chunks)
