"""PostgreSQL stops: writes are acknowledged 202 into the Redis DLQ and replayed exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, metric, running
from tests.outage.conftest import PrivatePostgres, PrivateRedis

SINGLE = "/api/v1/audit/events"
BATCH = "/api/v1/audit/events/batch"


async def stored_ids(pg: PrivatePostgres) -> list[uuid.UUID]:
    connection = await asyncpg.connect(pg.url("outage"))
    try:
        return [row[0] for row in await connection.fetch("SELECT event_id FROM audit_events")]
    finally:
        await connection.close()


async def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def test_writes_during_an_outage_are_queued_then_stored_once(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    async with running(app) as client:
        before = await client.post(SINGLE, json=event_body())
        assert before.status_code == 201
        pg.stop()
        single = event_body(event_id=str(uuid.uuid4()))
        answer = await client.post(SINGLE, json=single)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"
        assert answer.json()["event_id"] == single["event_id"]
        batch = [event_body(event_id=str(uuid.uuid4())) for _ in range(3)]
        answer = await client.post(BATCH, json=batch)
        assert answer.status_code == 202, answer.text
        assert answer.json()["count"] == 3
        assert answer.json()["event_ids"] == [event["event_id"] for event in batch]

        health = (await client.get("/health")).json()
        assert health["components"]["redis"]["dlq_depth"] == 4
        assert health["components"]["postgresql"]["status"] == "down"
        assert (await client.get("/health/ready")).status_code == 503

        pg.start()
        expected = {uuid.UUID(e["event_id"]) for e in [single, *batch]}

        async def replayed() -> bool:
            return expected <= set(await stored_ids(pg))

        await wait_for(replayed, 20, "the DLQ replay")
        ids = await stored_ids(pg)
        assert len(ids) == len(set(ids)) == 5  # exactly once each, plus the first event
        client_redis = redis.Redis.from_url(redis_server.url)
        try:

            async def drained() -> bool:
                return int(await client_redis.xlen("audit:dlq:events")) == 0

            await wait_for(drained, 5, "the DLQ to be emptied")
        finally:
            await client_redis.aclose()
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "datastorage_dlq_enqueued_total") == 4
        assert metric(metrics, "datastorage_dlq_replayed_total") == 4
        assert metric(metrics, "datastorage_audit_events_dropped_total") == 0
        assert (await client.get("/health/ready")).status_code == 200


async def test_postgres_and_redis_down_answer_503_and_acknowledge_nothing(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    async with running(app) as client:
        pg.stop()
        redis_server.stop()
        for path, body in ((SINGLE, event_body()), (BATCH, [event_body(), event_body()])):
            answer = await client.post(path, json=body)
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.headers["content-type"].startswith("application/problem+json")
        pg.start()
        redis_server.start()
    assert await stored_ids(pg) == []


async def test_a_full_dlq_refuses_with_503_and_keeps_what_it_holds(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings(dlq={"max_len": 5}))
    async with running(app) as client:
        pg.stop()
        accepted = [event_body(event_id=str(uuid.uuid4())) for _ in range(5)]
        for body in accepted:
            assert (await client.post(SINGLE, json=body)).status_code == 202
        # A batch that does not fit is refused whole, and so is one more single event.
        refused = await client.post(BATCH, json=[event_body(), event_body()])
        assert refused.status_code == 503, refused.text
        assert "full" in refused.json()["detail"]
        assert (await client.post(SINGLE, json=event_body())).status_code == 503
        client_redis = redis.Redis.from_url(redis_server.url)
        try:
            entries = await client_redis.xrange("audit:dlq:events")
        finally:
            await client_redis.aclose()
        queued = [orjson.loads(fields[b"message"])["payload"]["event_id"] for _, fields in entries]
        assert queued == [body["event_id"] for body in accepted]
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, 'datastorage_dlq_refused_total{reason="full",stream="events"}') == 3
        assert metric(metrics, 'datastorage_dlq_capacity_ratio{stream="events"}') == 1.0
        pg.start()


async def test_redis_down_alone_keeps_writes_201_and_the_service_ready(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    async with running(app) as client:
        redis_server.stop()
        answer = await client.post(SINGLE, json=event_body())
        assert answer.status_code == 201, answer.text
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["components"]["redis"]["status"] == "down"
        assert (await client.get("/health/ready")).status_code == 200
    assert len(await stored_ids(pg)) == 1


async def test_a_burst_through_an_outage_stores_every_acknowledged_event_once(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    bodies = [event_body(event_id=str(uuid.uuid4())) for _ in range(2000)]
    statuses: dict[str, int] = {}
    async with running(app) as client:
        queue = list(reversed(bodies))

        async def writer(http: httpx.AsyncClient) -> None:
            while queue:
                body = queue.pop()
                answer = await http.post(SINGLE, json=body)
                statuses[body["event_id"]] = answer.status_code

        async def outage() -> None:
            while len(statuses) < 600:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(pg.stop)
            while len(statuses) < 1400:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(pg.start)

        await asyncio.gather(outage(), *(writer(client) for _ in range(50)))
        assert set(statuses.values()) <= {201, 202, 503}, set(statuses.values())
        assert 202 in statuses.values()
        acknowledged = {uuid.UUID(i) for i, status in statuses.items() if status in (201, 202)}

        async def all_stored() -> bool:
            return acknowledged <= set(await stored_ids(pg))

        await wait_for(all_stored, 30, "every acknowledged event to be stored")
        ids = await stored_ids(pg)
        assert len(ids) == len(set(ids)), "an event was stored twice"
        # Refused (503) events may or may not be stored; acknowledged ones are, exactly once.
        refused = {uuid.UUID(i) for i, status in statuses.items() if status == 503}
        assert set(ids) - acknowledged <= refused


async def test_capacity_warnings_are_logged_at_80_90_and_95_percent(
    outage_settings: Callable[..., Settings],
    pg: PrivatePostgres,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(outage_settings(dlq={"max_len": 20}))
    async with running(app) as client:
        pg.stop()
        seen: list[tuple[int, str]] = []
        for depth in range(1, 21):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="datastorage.persistence.dlq_monitor"):
                assert (await client.post(SINGLE, json=event_body())).status_code == 202
            seen += [(depth, r.levelname + " " + r.getMessage().rsplit(": ", 1)[1])
                     for r in caplog.records if "capacity" in r.getMessage()]  # fmt: skip
        pg.start()
    assert seen[0] == (16, "INFO warning")  # 16 of 20 = 80%
    assert (18, "ERROR critical") in seen  # 90%
    assert (19, "ERROR overflow imminent") in seen  # 95%
    assert all(depth >= 16 for depth, _ in seen)
