"""The audit write routes served straight on ASGI: driven with hand-made scopes and messages.

Body reassembly, the size limit without a declared length, a client that leaves, a root path
(then Starlette's route answers), the headers of every answer and the internal-error answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.applications import Starlette
from starlette.types import Message

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, metric

SINGLE = "/api/v1/audit/events"
BATCH = "/api/v1/audit/events/batch"
PROBLEMS = "https://kubernaut.ai/problems/"
SMALL_BODY_LIMIT = 2048
JSON = (b"content-type", b"application/json")
HEX_ID = re.compile(r"[0-9a-f]{16}")

pytestmark = pytest.mark.usefixtures("clean")


@dataclass
class Exchange:
    """What the app sent back for one request, and how much of the body it asked for."""

    messages: list[Message] = field(default_factory=list)
    receive_calls: int = 0

    @property
    def status(self) -> int:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        status: int = starts[0]["status"]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return [(bytes(name), bytes(value)) for name, value in start.get("headers", ())]

    def header(self, name: str) -> str:
        """The one value of header `name` (a header sent twice fails here)."""
        values = [v.decode("latin-1") for n, v in self.headers if n.lower() == name.encode()]
        assert len(values) == 1, (name, self.headers)
        return values[0]

    @property
    def body(self) -> bytes:
        parts = [m for m in self.messages if m["type"] == "http.response.body"]
        assert parts and not parts[-1].get("more_body", False), self.messages
        return b"".join(m.get("body", b"") for m in parts)

    def json(self) -> Any:
        return orjson.loads(self.body)


def scope_for(
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    root_path: str = "",
    method: str = "POST",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": root_path,
        "headers": list(headers),
        "client": ("127.0.0.1", 50123),
        "server": ("datastorage.test", 80),
    }


async def call(
    app: Starlette,
    chunks: Sequence[bytes],
    *,
    path: str = SINGLE,
    headers: Sequence[tuple[bytes, bytes]] = (JSON,),
    root_path: str = "",
    disconnect_after: int | None = None,
) -> Exchange:
    """Send `chunks` as one body in as many `http.request` messages (the last without more_body).

    With `disconnect_after`, the client leaves after that many chunks: the next receive is an
    `http.disconnect`. Once the body is sent, receive waits for the answer, then disconnects.
    """
    exchange = Exchange()
    answered = asyncio.Event()
    pending = list(chunks)
    sent_chunks = 0

    async def receive() -> Message:
        nonlocal sent_chunks
        exchange.receive_calls += 1
        if disconnect_after is not None and sent_chunks >= disconnect_after:
            return {"type": "http.disconnect"}
        if pending:
            sent_chunks += 1
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        exchange.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    scope = scope_for(path, headers, root_path=root_path)
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return exchange


def split(raw: bytes, size: int) -> list[bytes]:
    return [raw[start : start + size] for start in range(0, len(raw), size)]


async def metrics_text(app: Starlette) -> str:
    exchange = Exchange()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        exchange.messages.append(message)

    await app(scope_for("/metrics", [], method="GET"), receive, send)
    assert exchange.status == 200
    return exchange.body.decode()


def requests_counted(route: str, status: int) -> str:
    return f'datastorage_http_requests_total{{method="POST",route="{route}",status="{status}"}}'


def assert_problem(exchange: Exchange, status: int, slug: str, path: str) -> dict[str, Any]:
    seen = (exchange.messages[:1], exchange.body[:500])
    assert exchange.status == status, seen
    assert exchange.header("content-type") == "application/problem+json", seen
    problem: dict[str, Any] = exchange.json()
    assert problem["type"] == PROBLEMS + slug, seen
    assert problem["status"] == status, seen
    assert problem["instance"] == path, seen
    return problem


def assert_framed(exchange: Exchange) -> None:
    """A request id, one content type and a content length that matches the body sent."""
    assert int(exchange.header("content-length")) == len(exchange.body)
    assert exchange.header("x-request-id")
    assert exchange.header("content-type") in {"application/json", "application/problem+json"}


def assert_secret_only_logged(exchange: Exchange, caplog: pytest.LogCaptureFixture) -> None:
    """The internal error's text reached the log, never the answer."""
    for leak in ("secret driver text", "Traceback", "RuntimeError"):
        assert leak.encode() not in exchange.body
    assert any(
        record.exc_info and "secret driver text" in str(record.exc_info[1])
        for record in caplog.records
    ), caplog.records


async def count_events(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM audit_events")
    return count


async def assert_nothing_written(db: asyncpg.Connection) -> None:
    assert await count_events(db) == 0
    assert await db.fetchval("SELECT count(*) FROM audit_chain_heads") == 0


@pytest.fixture(scope="module")
async def small_app(
    make_settings: Callable[..., Settings], app: Starlette
) -> AsyncIterator[Starlette]:
    """An app whose body limit is 2 KiB."""
    application = create_app(make_settings(service={"max_body_bytes": SMALL_BODY_LIMIT}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def own_app(
    make_settings: Callable[..., Settings], app: Starlette
) -> AsyncIterator[Starlette]:
    """An app of this module's own, for the requests the session app must not count.

    test_openapi checks that every status in the session app's request metrics is declared by
    the API document; 499 is never sent, so it is not declared there.
    """
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        yield application


# --- bodies in several messages ----------------------------------------------------------------


async def test_body_in_many_messages_is_reassembled_and_stored(
    app: Starlette, db: asyncpg.Connection
) -> None:
    body = event_body(event_data={"signal": "KubePodCrashLooping", "note": "é" * 200})
    raw = orjson.dumps(body)
    # 7-byte chunks split multi-byte characters too; an empty chunk in the middle is allowed.
    chunks = split(raw, 7)
    chunks.insert(3, b"")
    exchange = await call(app, chunks)
    assert exchange.status == 201, exchange.body
    answer = exchange.json()
    assert answer["message"] == "audit event created"
    row = await db.fetchrow(
        "SELECT correlation_id, event_data FROM audit_events WHERE event_id = $1",
        uuid.UUID(answer["event_id"]),
    )
    assert row is not None
    assert row["correlation_id"] == body["correlation_id"]
    assert orjson.loads(row["event_data"]) == body["event_data"]
    assert exchange.receive_calls >= len(chunks)


async def test_batch_in_many_messages_answers_ids_in_input_order(
    app: Starlette, db: asyncpg.Connection
) -> None:
    bodies = [event_body(correlation_id="rr-direct", event_action=f"step{i}") for i in range(4)]
    exchange = await call(app, split(orjson.dumps(bodies), 100), path=BATCH)
    assert exchange.status == 201, exchange.body
    assert exchange.header("content-type") == "application/json"
    answer = exchange.json()
    assert answer["message"] == "4 audit events created"
    rows = await db.fetch(
        "SELECT event_id, event_action FROM audit_events WHERE correlation_id = 'rr-direct' "
        "ORDER BY chain_seq"
    )
    assert [str(row["event_id"]) for row in rows] == answer["event_ids"]
    assert [row["event_action"] for row in rows] == [f"step{i}" for i in range(4)]


# --- the size limit without a declared length --------------------------------------------------


@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_chunks_over_the_limit_without_content_length_are_413(
    small_app: Starlette, db: asyncpg.Connection, path: str
) -> None:
    payload = event_body() if path == SINGLE else [event_body()]
    raw = orjson.dumps(payload)
    raw += b" " * (3 * SMALL_BODY_LIMIT - len(raw))  # still valid JSON
    chunks = split(raw, 500)
    exchange = await call(small_app, chunks, path=path)
    problem = assert_problem(exchange, 413, "request-too-large", path)
    assert str(SMALL_BODY_LIMIT) in problem["detail"]
    assert_framed(exchange)
    # It stopped reading at the chunk that went over (the 5th), not at the end of the body.
    assert exchange.receive_calls == SMALL_BODY_LIMIT // 500 + 1 < len(chunks)
    await assert_nothing_written(db)


async def test_one_message_over_the_limit_is_413(
    small_app: Starlette, db: asyncpg.Connection
) -> None:
    raw = orjson.dumps(event_body())
    exchange = await call(small_app, [raw + b" " * (SMALL_BODY_LIMIT + 1 - len(raw))])
    assert_problem(exchange, 413, "request-too-large", SINGLE)
    await assert_nothing_written(db)


async def test_chunks_exactly_at_the_limit_are_stored(
    small_app: Starlette, db: asyncpg.Connection
) -> None:
    raw = orjson.dumps(event_body())
    raw += b" " * (SMALL_BODY_LIMIT - len(raw))
    exchange = await call(small_app, split(raw, 500))
    assert exchange.status == 201, exchange.body
    assert await count_events(db) == 1


# --- a client that leaves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "disconnect_after"),
    [(SINGLE, 0), (SINGLE, 2), (BATCH, 0), (BATCH, 1)],
    ids=["single-before-any-body", "single-mid-body", "batch-before-any-body", "batch-mid-body"],
)
async def test_client_gone_before_its_body_gets_no_answer_and_is_counted_as_499(
    own_app: Starlette, db: asyncpg.Connection, path: str, disconnect_after: int
) -> None:
    app = own_app
    payload = event_body() if path == SINGLE else [event_body(), event_body()]
    series = requests_counted(path, 499)
    before = metric(await metrics_text(app), series)
    exchange = await call(
        app, split(orjson.dumps(payload), 64), path=path, disconnect_after=disconnect_after
    )
    assert exchange.messages == []  # not even http.response.start
    assert exchange.receive_calls == disconnect_after + 1  # no read after the disconnect
    await assert_nothing_written(db)
    assert metric(await metrics_text(app), series) == before + 1


# --- behind a root path: Starlette's route ----------------------------------------------------


@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_with_a_root_path_the_starlette_route_answers_and_stores(
    app: Starlette, db: asyncpg.Connection, path: str
) -> None:
    payload: Any = event_body() if path == SINGLE else [event_body(), event_body()]
    series = requests_counted(path, 201)
    before = metric(await metrics_text(app), series)
    exchange = await call(
        app,
        split(orjson.dumps(payload), 50),
        path="/ds" + path,
        root_path="/ds",
        headers=[JSON, (b"x-request-id", b"behind-a-proxy")],
    )
    assert exchange.status == 201, exchange.body
    assert exchange.header("content-type") == "application/json"
    assert exchange.header("x-request-id") == "behind-a-proxy"
    assert int(exchange.header("content-length")) == len(exchange.body)
    answer = exchange.json()
    ids = [answer["event_id"]] if path == SINGLE else answer["event_ids"]
    stored = await db.fetch("SELECT event_id FROM audit_events")
    assert sorted(str(row["event_id"]) for row in stored) == sorted(ids)
    assert len(ids) == (len(payload) if path == BATCH else 1)
    # Still counted under the route template, not the raw path.
    assert metric(await metrics_text(app), series) == before + 1


async def test_with_a_root_path_problems_match_the_direct_route(
    app: Starlette, db: asyncpg.Connection
) -> None:
    for root_path in ("", "/ds"):
        exchange = await call(app, [b"{not json"], path=root_path + SINGLE, root_path=root_path)
        problem = assert_problem(exchange, 400, "invalid-request", root_path + SINGLE)
        assert "not valid JSON" in problem["detail"]
        assert_framed(exchange)
    await assert_nothing_written(db)


# --- the headers of every answer ---------------------------------------------------------------


def _answers() -> list[tuple[str, str, list[bytes], list[tuple[bytes, bytes]], int]]:
    single = orjson.dumps(event_body())
    batch = orjson.dumps([event_body(), event_body()])
    return [
        ("created", SINGLE, [single], [JSON], 201),
        ("created in chunks", SINGLE, split(single, 40), [JSON], 201),
        ("batch created", BATCH, [batch], [JSON], 201),
        (
            "validation error",
            SINGLE,
            [orjson.dumps(event_body(event_outcome="maybe"))],
            [JSON],
            400,
        ),
        ("not JSON", BATCH, [b"[{"], [JSON], 400),
        ("not declared JSON", BATCH, [batch], [(b"content-type", b"text/plain")], 415),
        ("no content type", SINGLE, [single], [], 415),
        (
            "declared too large",
            SINGLE,
            [single],
            [JSON, (b"content-length", str(10 * 1024 * 1024).encode())],
            413,
        ),
    ]


ANSWERS = _answers()


@pytest.mark.parametrize(
    ("path", "chunks", "headers", "status"),
    [case[1:] for case in ANSWERS],
    ids=[case[0] for case in ANSWERS],
)
async def test_every_answer_has_a_request_id_type_and_length(
    app: Starlette,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    status: int,
) -> None:
    given = await call(app, chunks, path=path, headers=[*headers, (b"x-request-id", b"req-42")])
    generated = await call(app, chunks, path=path, headers=headers)
    for exchange in (given, generated):
        assert exchange.status == status, exchange.body
        assert_framed(exchange)
        expected = "application/json" if status < 400 else "application/problem+json"
        assert exchange.header("content-type") == expected
    assert given.header("x-request-id") == "req-42"
    assert HEX_ID.fullmatch(generated.header("x-request-id")), generated.headers
    other = await call(app, chunks, path=path, headers=headers)
    assert other.header("x-request-id") != generated.header("x-request-id")


async def test_a_long_request_id_is_cut_to_128_characters(app: Starlette) -> None:
    exchange = await call(app, [b"{"], headers=[JSON, (b"x-request-id", b"r" * 300)])
    assert exchange.status == 400
    assert exchange.header("x-request-id") == "r" * 128


# --- the batch route's refusals change nothing -------------------------------------------------


async def test_batch_refusals_on_the_direct_route_change_nothing(
    app: Starlette, db: asyncpg.Connection
) -> None:
    batch = orjson.dumps([event_body(), event_body()])
    refused = await call(app, [batch], path=BATCH, headers=[(b"content-type", b"text/plain")])
    problem = assert_problem(refused, 415, "unsupported-media-type", BATCH)
    assert "application/json" in problem["detail"]
    invalid = await call(app, split(batch[:-1], 30), path=BATCH)
    problem = assert_problem(invalid, 400, "invalid-request", BATCH)
    assert "not valid JSON" in problem["detail"]
    await assert_nothing_written(db)


# --- an unexpected error -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_an_unexpected_error_is_a_500_problem_without_its_text(
    app: Starlette,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret driver text")

    monkeypatch.setattr(app.state.services.writer, "submit", broken)
    payload = event_body() if path == SINGLE else [event_body()]
    series = requests_counted(path, 500)
    before = metric(await metrics_text(app), series)
    with caplog.at_level(logging.ERROR, logger="datastorage"):
        exchange = await call(
            app, [orjson.dumps(payload)], path=path, headers=[JSON, (b"x-request-id", b"r-500")]
        )
    problem = assert_problem(exchange, 500, "internal-error", path)
    assert problem["type"].endswith("internal-error")
    assert exchange.header("x-request-id") == "r-500"
    assert_framed(exchange)
    assert_secret_only_logged(exchange, caplog)
    await assert_nothing_written(db)
    assert metric(await metrics_text(app), series) == before + 1


async def test_client_gone_behind_a_root_path_is_also_a_silent_499(
    own_app: Starlette, db: asyncpg.Connection
) -> None:
    series = requests_counted(SINGLE, 499)
    before = metric(await metrics_text(own_app), series)
    chunks = split(orjson.dumps(event_body()), 64)
    exchange = await call(own_app, chunks, path="/ds" + SINGLE, root_path="/ds", disconnect_after=1)
    # Starlette cannot stay silent: it answers 499 to the gone client (the server drops it),
    # never a 500 that would page someone.
    assert [m.get("status") for m in exchange.messages if m["type"] == "http.response.start"] in (
        [],
        [499],
    )
    await assert_nothing_written(db)
    assert metric(await metrics_text(own_app), series) == before + 1


# --- GraphQL POSTs ----------------------------------------------------------------------------


async def test_graphql_posts_are_answered_directly_with_a_request_id(app: Starlette) -> None:
    series = requests_counted("/graphql", 200)
    before = metric(await metrics_text(app), series)
    query = orjson.dumps({"query": "{ auditEvents(first: 1) { totalCount } }"})
    exchange = await call(
        app, split(query, 10), path="/graphql", headers=[JSON, (b"x-request-id", b"gql-1")]
    )
    assert exchange.status == 200
    assert exchange.header("x-request-id") == "gql-1"
    assert_framed(exchange)
    assert orjson.loads(exchange.body)["data"]["auditEvents"]["totalCount"] >= 0
    assert metric(await metrics_text(app), series) == before + 1


async def test_an_error_escaping_the_graphql_endpoint_is_a_500_problem(
    app: Starlette, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret driver text")

    monkeypatch.setattr(app.state.fast_path, "execute", broken)
    query = orjson.dumps({"query": "{ auditEvents(first: 1) { totalCount } }"})
    with caplog.at_level(logging.ERROR, logger="datastorage"):
        exchange = await call(
            app, [query], path="/graphql", headers=[JSON, (b"x-request-id", b"gql-500")]
        )
    assert_problem(exchange, 500, "internal-error", "/graphql")
    assert exchange.header("x-request-id") == "gql-500"
    assert_framed(exchange)
    assert_secret_only_logged(exchange, caplog)
