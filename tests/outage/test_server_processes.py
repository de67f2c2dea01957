"""Real server processes: SIGTERM and SIGKILL mid-burst, and three replicas draining one DLQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import event_body, metric
from tests.outage.conftest import PrivatePostgres, PrivateRedis, free_port

pytestmark = pytest.mark.slow
SINGLE = "/api/v1/audit/events"


class Server:
    def __init__(self, pg: PrivatePostgres, redis_server: PrivateRedis, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATASTORAGE_DATABASE_URL": pg.url("outage"),
            "DATASTORAGE_REDIS_URL": redis_server.url,
            "DATASTORAGE_WRITER_BREAKER_OPEN_S": "0.5",
            "DATASTORAGE_SHUTDOWN_DELAY_S": "0",
            "DATASTORAGE_LOG_FORMAT": "json",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "datastorage.cli", "serve", "--port", str(self.port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError("the server never came up")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def metric(self, name: str) -> float:
        return metric(httpx.get(f"{self.base}/metrics", timeout=5).text, name)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


async def burst(bases: list[str], count: int, concurrency: int, statuses: dict[str, int]) -> None:
    """POST `count` events with known ids, spread over `bases`; records each answer's status."""
    bodies = [event_body(event_id=str(uuid.uuid4())) for _ in range(count)]
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(timeout=30) as http:

        async def writer(index: int) -> None:
            while queue:
                body = queue.pop()
                base = bases[(len(queue) + index) % len(bases)]
                try:
                    answer = await http.post(base + SINGLE, json=body)
                    statuses[body["event_id"]] = answer.status_code
                except httpx.TransportError:
                    statuses[body["event_id"]] = 0  # no answer: not acknowledged

        await asyncio.gather(*(writer(i) for i in range(concurrency)))


def stored(pg: PrivatePostgres) -> list[str]:
    text = pg.psql("outage", "SELECT event_id FROM audit_events")
    return text.split() if text else []


def wait_until_drained(pg: PrivatePostgres, redis_server: PrivateRedis, acked: set[str]) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if acked <= set(stored(pg)) and client.xlen("audit:dlq:events") == 0:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"{len(acked - set(stored(pg)))} acknowledged events missing, "
            f"{client.xlen('audit:dlq:events')} entries left in the DLQ"
        )
    finally:
        client.close()


def acknowledged(statuses: dict[str, int]) -> set[str]:
    return {event_id for event_id, status in statuses.items() if status in (201, 202)}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
async def test_a_stopped_server_loses_no_acknowledged_event(
    pg: PrivatePostgres, redis_server: PrivateRedis, servers: list[Server], stop_signal: int
) -> None:
    first = Server(pg, redis_server, DATASTORAGE_SHUTDOWN_DELAY_S="0.5")
    servers.append(first)
    statuses: dict[str, int] = {}

    async def stop_midway() -> None:
        while len(statuses) < 300:
            await asyncio.sleep(0.01)
        first.process.send_signal(stop_signal)
        if stop_signal == signal.SIGTERM:
            # Readiness fails at once, while requests are still served during the delay.
            ready = await asyncio.to_thread(httpx.get, f"{first.base}/health/ready", timeout=2)
            assert ready.status_code == 503

    await asyncio.gather(stop_midway(), burst([first.base], 1500, 20, statuses))
    await asyncio.to_thread(first.process.wait, 30)
    acked = acknowledged(statuses)
    assert acked, "nothing was acknowledged before the stop"
    assert set(statuses.values()) <= {0, 201, 202, 503}
    # A new process replays whatever the old one had queued.
    servers.append(Server(pg, redis_server))
    await asyncio.to_thread(wait_until_drained, pg, redis_server, acked)
    ids = stored(pg)
    assert len(ids) == len(set(ids))
    assert acked <= set(ids)


async def test_three_replicas_drain_the_dlq_exactly_once_while_postgres_flaps(
    pg: PrivatePostgres, redis_server: PrivateRedis, servers: list[Server]
) -> None:
    servers.extend(Server(pg, redis_server) for _ in range(3))
    statuses: dict[str, int] = {}

    async def flap() -> None:
        for threshold in (200, 700):
            while len(statuses) < threshold:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(0.7)
            await asyncio.to_thread(pg.start)

    await asyncio.gather(flap(), burst([s.base for s in servers], 1500, 30, statuses))
    acked = acknowledged(statuses)
    assert 202 in statuses.values(), "the outage never reached the DLQ"
    await asyncio.to_thread(wait_until_drained, pg, redis_server, acked)
    ids = stored(pg)
    assert len(ids) == len(set(ids))
    assert acked <= set(ids)
    enqueued = sum(s.metric("datastorage_dlq_enqueued_total") for s in servers)
    replayed = sum(s.metric("datastorage_dlq_replayed_total") for s in servers)
    duplicates = sum(s.metric("datastorage_audit_events_duplicate_total") for s in servers)
    assert replayed == enqueued > 0
    assert duplicates == 0  # no entry was replayed twice
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.xlen("audit:dead-letter:events") == 0
        assert client.xpending("audit:dlq:events", "data-storage-retry-workers")["pending"] == 0
    finally:
        client.close()
