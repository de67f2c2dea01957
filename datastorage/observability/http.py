"""One plain ASGI middleware for every request: its id and trace context for logs, and metrics.

A single wrapper (rather than one per concern) because each middleware layer wraps `send` again,
and on the ingest path those layers cost more than the work they do. It is the outermost layer
and also dispatches the few routes served directly on ASGI (audit writes, workflow search,
GraphQL POSTs), so those skip the whole framework stack and the `send` wrapper.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datastorage.observability.logging import request_id_var, trace_id_var
from datastorage.observability.metrics import Metrics

# Answers a request itself, adding the given headers (the request id); returns the status sent.
DirectHandler = Callable[[Scope, Receive, Send, Sequence[tuple[bytes, bytes]]], Awaitable[int]]
# (method, exact path) → (route template for the metrics, handler)
DirectRoutes = Mapping[tuple[str, str], tuple[str, DirectHandler]]


class ObservabilityMiddleware:
    """Labels by route template (never the raw path, so label values stay bounded)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        routes: Sequence[BaseRoute],
        direct: DirectRoutes | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.direct = direct or {}
        self.templates: dict[Any, str] = {}
        self.series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        for route in routes:
            if isinstance(route, Route | WebSocketRoute):
                self.templates.setdefault(route.endpoint, route.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, trace_id = _request_ids(scope["headers"])
        request_token = request_id_var.set(request_id)
        trace_token = trace_id_var.set(trace_id)
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500
        # Behind a root path, Starlette's router strips it; the exact match here would not.
        direct = (
            None if scope.get("root_path") else self.direct.get((scope["method"], scope["path"]))
        )
        if direct is not None:
            template, handler = direct
            try:
                status = await handler(scope, receive, send, (id_header,))
            finally:
                request_id_var.reset(request_token)
                trace_id_var.reset(trace_token)
                self._observe(template, scope["method"], status, started)
            return

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            request_id_var.reset(request_token)
            trace_id_var.reset(trace_token)
            template = self.templates.get(scope.get("endpoint"), "unmatched")
            self._observe(template, scope["method"], status, started)

    def _observe(self, route: str, method: str, status: int, started: float) -> None:
        key = (route, method, status)
        series = self.series.get(key)
        if series is None:
            series = self._series(*key)
        series[0].inc()
        series[1].observe(time.perf_counter() - started)

    def _series(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        # labels() hashes and locks on every call; the few distinct label sets are kept here.
        series = (
            self.metrics.http_requests.labels(route, method, str(status)),
            self.metrics.http_latency.labels(route, method),
        )
        self.series[(route, method, status)] = series
        return series


def _request_ids(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """The caller's X-Request-ID (or a new one) and the trace id of its traceparent."""
    request_id = None
    trace_id = None
    for name, value in headers:
        if name == b"x-request-id":
            request_id = value.decode("latin-1")[:128]
        elif name == b"traceparent":
            parts = value.decode("latin-1").split("-")
            trace_id = parts[1] if len(parts) >= 4 else None
    # 64 random bits without a system call (secrets asks the kernel each time): an id to find a
    # request's log lines by, not a secret. `random` is reseeded in forked workers.
    return request_id or f"{random.getrandbits(64):016x}", trace_id
