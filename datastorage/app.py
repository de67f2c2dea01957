"""create_app(settings) → Starlette: routes of both surfaces, and a lifespan that wires the parts."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from datastorage.lifecycle import delay_exit_signals, event_rules, start_services, stop_services
from datastorage.observability.http import ObservabilityMiddleware
from datastorage.observability.metrics import Metrics
from datastorage.resolvers.context import Context, Services, hints_from_traceparent
from datastorage.resolvers.validation import EventRules
from datastorage.rest_compat import audit as rest_audit
from datastorage.rest_compat import health as rest_health
from datastorage.rest_compat import notifications as rest_notifications
from datastorage.rest_compat import openapi as rest_openapi
from datastorage.rest_compat import workflows as rest_workflows
from datastorage.rest_compat.direct import asgi_route
from datastorage.rest_compat.problems import problem
from datastorage.schema import build_schema
from datastorage.schema.allowlist import AllowListError, load_allowlist
from datastorage.schema.endpoint import GraphQLEndpoint
from datastorage.schema.fastpath import FastPath
from datastorage.settings import Settings, SettingsError

log = logging.getLogger(__name__)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with our typed per-request context."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services: Services = request.app.state.services
        return Context(
            services=services, hints=hints_from_traceparent(request.headers.get("traceparent"))
        )


def create_app(settings: Settings, *, handle_signals: bool = False) -> Starlette:
    """The service as an ASGI app; nothing connects until the lifespan starts.

    `handle_signals` (for `datastorage serve`): SIGTERM first turns readiness to 503 and only
    after `DATASTORAGE_SHUTDOWN_DELAY_S` lets the server stop taking requests.
    """
    if not settings.database.url:
        raise SettingsError(
            "DATASTORAGE_DATABASE_URL: required to create the app (serve starts an embedded one)"
        )
    rules = event_rules(settings)
    allowed = operation_allowlist(settings)
    metrics = Metrics()
    schema = build_schema(settings, allowed)
    view = GraphQLView(schema, graphql_ide="graphiql" if settings.graphiql_enabled else None)
    limits = settings.graphql
    fast_path = FastPath(
        schema._schema,
        cache_size=limits.cache_size,
        max_tokens=limits.max_tokens,
        max_aliases=limits.max_aliases,
        max_depth=limits.max_depth,
        allowed=allowed,
    )
    graphql = GraphQLEndpoint(view, fast_path, settings.service.max_body_bytes)
    routes: list[BaseRoute] = [
        *rest_audit.routes(),
        *rest_notifications.routes(),
        *rest_workflows.routes(),
        *rest_health.routes(),
        *rest_openapi.routes(),
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", view),
    ]
    app = DataStorageApp(
        metrics,
        graphql,
        routes=routes,
        lifespan=_lifespan(settings, metrics, rules, handle_signals=handle_signals),
        exception_handlers={404: _not_found, 405: _method_not_allowed, 500: _internal_error},
    )
    app.state.settings = settings
    app.state.schema = schema
    app.state.fast_path = fast_path
    return app


class DataStorageApp(Starlette):
    """Starlette with the observability middleware outermost, serving the direct routes.

    Starlette always puts its own error middleware first; the hot routes (audit writes, workflow
    search, GraphQL POSTs) are answered before it (they catch their own errors), so they pay for
    none of the framework's layers.
    """

    def __init__(self, metrics: Metrics, graphql: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.graphql = graphql

    def build_middleware_stack(self) -> ASGIApp:
        return ObservabilityMiddleware(
            super().build_middleware_stack(),
            metrics=self.metrics,
            routes=self.routes,
            direct={
                **rest_audit.direct_routes(self.state),
                **rest_workflows.direct_routes(self.state),
                ("POST", "/graphql"): ("/graphql", asgi_route(self.state, self.graphql)),
            },
        )


def operation_allowlist(settings: Settings) -> frozenset[str] | None:
    """The hashes of the persisted queries allowed to run, or None when every query may run."""
    path = settings.graphql.allowlist_file
    if path is None:
        return None
    try:
        return load_allowlist(path)
    except AllowListError as exc:
        raise SettingsError(f"DATASTORAGE_GRAPHQL_ALLOWLIST_FILE: {exc}") from None


def _lifespan(
    settings: Settings, metrics: Metrics, rules: EventRules, *, handle_signals: bool
) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services, maintainer = await start_services(settings, metrics, rules)
        app.state.services = services
        _tune_collector()
        if handle_signals:
            delay_exit_signals(services, settings.shutdown.delay_s)
        try:
            yield
        finally:
            await stop_services(services, maintainer)

    return lifespan


# Young-generation size before a collector pass. The default (700) is reached several times a
# second by the requests in flight alone (each holds dozens of objects until it is answered).
_YOUNG_GENERATION = 20_000


def _tune_collector() -> None:
    # Measured on the ingest path, collector passes took 7% of a request: freezing what start-up
    # built (schema, modules, pools, all living as long as the process) cut that to 5%, the
    # larger young generation to nearly nothing.
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_GENERATION, older, oldest)


def _base_uri(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.service.problem_base_uri


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(
        _base_uri(request),
        "not-found",
        f"no route for {request.url.path}",
        instance=request.url.path,
    )


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    allow = getattr(exc, "headers", None) or {}
    return problem(
        _base_uri(request),
        "method-not-allowed",
        f"{request.method} is not served on {request.url.path}",
        instance=request.url.path,
        headers=dict(allow),
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Never driver text or a stack trace in a response; the log has the details.
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return problem(
        _base_uri(request),
        "internal-error",
        "an internal error occurred",
        instance=request.url.path,
    )
