"""The plain baselines: Starlette + orjson, no validation, no database.

`POST /api/v1/audit/events` is the baseline of ingest_single (parses the body, answers 201);
`GET /api/v1/small` of the search workloads (answers a small fixed JSON document).

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


SMALL = orjson.dumps({"status": "ok", "items": [{"id": 1, "score": 0.5}], "total": 1})


async def small(request: Request) -> Response:
    return Response(SMALL, media_type=JSON)


async def ready(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type=JSON)


app = Starlette(
    routes=[
        Route("/api/v1/audit/events", post_event, methods=["POST"]),
        Route("/api/v1/small", small, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]
)
