"""The plain baseline for ingest_single: Starlette + orjson, no validation, no database.

Served by uvicorn with the same loop/http/worker settings as the service:
    python -m uvicorn bench.baseline_app:app --loop uvloop --http httptools ...
"""

from __future__ import annotations

import uuid

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON = "application/json"


async def post_event(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not isinstance(body, dict):
        return Response(b'{"detail":"expected an object"}', status_code=400, media_type=JSON)
    answer = {"event_id": str(uuid.uuid4()), "message": "audit event created"}
    return Response(orjson.dumps(answer), status_code=201, media_type=JSON)


async def ready(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type=JSON)


app = Starlette(
    routes=[
        Route("/api/v1/audit/events", post_event, methods=["POST"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]
)
