"""Probes and the metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, running


async def test_health_reports_components(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    components = body["components"]
    assert components["postgresql"]["status"] == "up"
    assert components["postgresql"]["pool_size"] == 10
    assert components["redis"]["status"] == "up"
    assert components["redis"]["dlq_max"] == 10_000
    assert components["writer"] == {"queued": 0}
    assert body["uptime_seconds"] >= 0


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/healthz"):
        assert (await client.get(path)).json() == {"status": "alive"}
    for path in ("/health/ready", "/readyz"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_redis_down_is_degraded_but_ready(make_settings: Callable[..., Settings]) -> None:
    # Nothing listens on port 1: Redis is unreachable, PostgreSQL is fine.
    settings = make_settings(redis={"url": "redis://127.0.0.1:1/0"})
    async with running(create_app(settings)) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["components"]["redis"]["status"] == "down"
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/api/v1/audit/events", json=event_body())).status_code == 201


async def test_database_down_is_not_ready(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    app = create_app(settings)
    async with running(app) as client:
        await app.state.services.database.pool.close()
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "reason": "database_unreachable"}
        assert (await client.get("/health")).status_code == 503


async def test_metrics_expose_the_documented_series(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/audit/events", json=event_body(event_category="notification"))
    await client.post(
        "/graphql", json={"query": "query Probe { auditEvents(first: 1) { totalCount } }"}
    )
    await client.post("/graphql", json={"query": "query Probe2 { __typename }"})
    text = (await client.get("/metrics")).text
    for series in (
        'datastorage_http_requests_total{method="POST",route="/api/v1/audit/events",status="201"}',
        'datastorage_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/audit/events"}',
        'datastorage_graphql_operations_total{operation="Probe",outcome="success"}',
        'datastorage_graphql_operations_total{operation="Probe2",outcome="success"}',
        'datastorage_audit_events_written_total{category="notification",outcome="success"}',
        "datastorage_audit_batch_size_bucket",
        "datastorage_writer_queue_depth 0.0",
        "datastorage_audit_events_dropped_total 0.0",
        "datastorage_db_pool_size 10.0",
        "datastorage_db_pool_in_use",
        "datastorage_partitions_ahead 3.0",
    ):
        assert series in text, series


async def test_request_id_is_echoed_or_assigned(client: httpx.AsyncClient) -> None:
    given = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assigned = await client.get("/health/live")
    assert len(assigned.headers["x-request-id"]) == 16
