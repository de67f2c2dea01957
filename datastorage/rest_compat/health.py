"""Health, readiness, liveness and metrics endpoints (no auth)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastorage.resolvers import health
from datastorage.resolvers.context import Services
from datastorage.rest_compat.encoding import json_response


async def get_health(request: Request) -> Response:
    services: Services = request.app.state.services
    healthy, body = await health.health(services)
    return json_response(body, status=200 if healthy else 503)


async def get_ready(request: Request) -> Response:
    services: Services = request.app.state.services
    readiness = await health.readiness(services)
    if readiness.ready:
        return json_response({"status": "ready"})
    return json_response({"status": "not_ready", "reason": readiness.reason}, status=503)


async def get_live(request: Request) -> Response:
    return json_response({"status": "alive"})


async def get_metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    """Probe and scrape endpoints."""
    return [
        Route("/health", get_health, methods=["GET"]),
        Route("/health/ready", get_ready, methods=["GET"]),
        Route("/readyz", get_ready, methods=["GET"]),
        Route("/health/live", get_live, methods=["GET"]),
        Route("/healthz", get_live, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
    ]
