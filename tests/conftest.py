"""Fixtures over real PostgreSQL and Redis: a private database per test session, real app sessions."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from starlette.applications import Starlette

from datastorage.app import create_app
from datastorage.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "DATASTORAGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DATASTORAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"ds_test_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield _with_database(PG_ADMIN_URL, name)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="session", autouse=True)
async def empty_redis_db() -> AsyncIterator[None]:
    """The test Redis database starts and ends empty: DLQ entries left by an earlier session
    would otherwise be replayed by this session's drainer into this session's database."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
        yield
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings pointing at the test database and Redis, with per-section overrides."""

    def make(**sections: dict[str, Any]) -> Settings:
        merged: dict[str, dict[str, Any]] = {
            "database": {"url": database_url, "pool_size": 10},
            "redis": {"url": REDIS_URL},
        }
        for name, values in sections.items():
            merged[name] = {**merged.get(name, {}), **values}
        return load_settings(**merged)

    return make


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client speaking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://datastorage.test"
        ) as client:
            yield client


@pytest.fixture(scope="session")
async def app(make_settings: Callable[..., Settings]) -> AsyncIterator[Starlette]:
    """One app for the session (most tests need nothing special)."""
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://datastorage.test") as http:
        yield http


@pytest.fixture
async def db(database_url: str, app: Starlette) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for asserting on rows; the app fixture has migrated the schema."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def clean(db: asyncpg.Connection) -> None:
    """Empty audit tables before a test that counts rows."""
    await db.execute("TRUNCATE audit_events, audit_chain_heads")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event_body(**overrides: Any) -> dict[str, Any]:
    """A valid legacy event body; overrides replace fields (None removes one)."""
    body: dict[str, Any] = {
        "version": "1.0",
        "event_type": "gateway.signal.received",
        "event_timestamp": (now_utc() - dt.timedelta(seconds=5)).isoformat(),
        "event_category": "gateway",
        "event_action": "received",
        "event_outcome": "success",
        "correlation_id": f"rr-{uuid.uuid4().hex[:12]}",
        "event_data": {"signal": "KubePodCrashLooping", "pod": "api-7d9", "restarts": 5},
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def metric(text: str, sample: str) -> float:
    """The sum of the samples of `sample` in Prometheus text: a metric name (all its label sets)
    or one exact `name{labels}`; 0 when none is exported yet."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(sample + " ") or line.startswith(sample + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
