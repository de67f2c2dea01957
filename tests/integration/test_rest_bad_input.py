"""Bad input over HTTP: the right problem+json answer, never a 500, and nothing written."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, now_utc

SINGLE = "/api/v1/audit/events"
BATCH = "/api/v1/audit/events/batch"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "field_errors"}
# Words that only appear in driver errors, SQL or stack traces.
LEAKS = (
    "Traceback",
    'File "',
    "SELECT ",
    "INSERT ",
    "COPY ",
    "asyncpg",
    "psycopg",
    "sqlalchemy",
    "audit_events",
    "PostgreSQL rejected",
    "Error:",
)
SMALL_BODY_LIMIT = 2048
SMALL_BATCH_LIMIT = 3


def _client(application: Starlette) -> httpx.AsyncClient:
    # raise_app_exceptions=False: a crash is seen as the 500 a caller would get, not as an
    # exception in the test, so the assertion shows what the answer was.
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://datastorage.test")


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as client:
        yield client


@pytest.fixture(scope="module")
async def small(
    make_settings: Callable[..., Settings], app: Starlette
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with a 2 KiB body limit and a batch limit of 3."""
    settings = make_settings(
        service={"max_body_bytes": SMALL_BODY_LIMIT, "max_batch_size": SMALL_BATCH_LIMIT}
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application), _client(application) as client:
        yield client


def assert_problem(
    response: httpx.Response,
    status: int,
    slug: str,
    fields: Iterable[str] | None = None,
    *,
    case: object = "",
) -> dict[str, Any]:
    """The answer is problem+json of `slug`; `fields` are exactly the fields blamed (if any)."""
    seen = f"{case!r}: {response.status_code} {response.text[:500]}"
    assert response.status_code == status, seen
    assert response.headers["content-type"] == "application/problem+json", seen
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(problem) <= PROBLEM_KEYS, seen
    assert problem["type"] == f"https://kubernaut.ai/problems/{slug}", seen
    assert problem["status"] == status, seen
    assert isinstance(problem["title"], str) and problem["title"], seen
    assert isinstance(problem["detail"], str) and problem["detail"], seen
    if "instance" in problem:
        assert problem["instance"] == response.request.url.path, seen
    if fields is None:
        assert "field_errors" not in problem, seen
    else:
        field_errors = problem["field_errors"]
        assert set(field_errors) == set(fields), seen
        assert all(isinstance(rule, str) and rule for rule in field_errors.values()), seen
    for leak in LEAKS:
        assert leak not in response.text, seen
    return problem


async def assert_nothing_written(db: asyncpg.Connection) -> None:
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_chain_heads WHERE last_seq > 0") == 0


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


JSON_HEADERS = {"content-type": "application/json"}


# --- 415 ---------------------------------------------------------------------------------------

NOT_JSON_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "json",
]


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_body_not_declared_json_is_415(
    http: httpx.AsyncClient, db: asyncpg.Connection, path: str
) -> None:
    payload = event_body() if path == SINGLE else [event_body()]
    for content_type in NOT_JSON_TYPES:
        headers = {"content-type": content_type} if content_type else {}
        response = await http.post(path, content=_json(payload), headers=headers)
        problem = assert_problem(response, 415, "unsupported-media-type", case=content_type)
        assert "application/json" in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_json_media_types_with_parameters_or_suffix_are_accepted(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    accepted = [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/cloudevents+json",
    ]
    for content_type in accepted:
        response = await http.post(
            SINGLE, content=_json(event_body()), headers={"content-type": content_type}
        )
        assert response.status_code == 201, (content_type, response.text)
    assert await db.fetchval("SELECT count(*) FROM audit_events") == len(accepted)


# --- 400 invalid-request -----------------------------------------------------------------------

NOT_JSON_BODIES = [
    b"",
    b"{not json",
    b'{"version": "1.0",}',
    b'{"version": "1.0"',
    b"[1, 2",
    b"NaN",
    b"\xff\xfe\x00\x01",
    b'{"version": "\xff"}',
    b"{} {}",
    b"[" * 2000 + b"]" * 2000,  # deeper than the parser allows
    # Bodies with integers beyond 64 bits take another parser: it must refuse the same things.
    b'{"n": 123456789012345678901234, "x": NaN}',
    b'{"n": 123456789012345678901234, "x": Infinity}',
    b'{"n": 123456789012345678901234, "x": -Infinity}',
    b'{"n": 123456789012345678901234, "x": 1e400}',
    b'{"n": 123456789012345678901234,}',
    b'{"n": 123456789012345678901234, "s": "\xff"}',
    b"[" * 2000 + b"123456789012345678901234" + b"]" * 2000,
]


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_invalid_json_is_invalid_request(
    http: httpx.AsyncClient, db: asyncpg.Connection, path: str
) -> None:
    for raw in NOT_JSON_BODIES:
        response = await http.post(path, content=raw, headers=JSON_HEADERS)
        problem = assert_problem(response, 400, "invalid-request", case=raw[:40])
        assert "not valid JSON" in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("path", [SINGLE, BATCH])
async def test_scalar_body_is_invalid_request(
    http: httpx.AsyncClient, db: asyncpg.Connection, path: str
) -> None:
    for raw in (b"42", b'"an event"', b"null", b"true", b"1.5"):
        response = await http.post(path, content=raw, headers=JSON_HEADERS)
        assert_problem(response, 400, "invalid-request", case=raw)
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_array_sent_to_the_single_endpoint_is_invalid_request(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for payload in ([event_body()], []):
        response = await http.post(SINGLE, json=payload)
        assert_problem(response, 400, "invalid-request", case=payload)
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_object_sent_to_the_batch_endpoint_is_invalid_request(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await http.post(BATCH, json=event_body())
    problem = assert_problem(response, 400, "invalid-request")
    assert "array" in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_empty_batch_is_invalid_request(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await http.post(BATCH, json=[])
    assert_problem(response, 400, "invalid-request")
    await assert_nothing_written(db)


# --- 400 batch-size-exceeded -------------------------------------------------------------------


@pytest.mark.usefixtures("clean")
async def test_batch_over_the_default_limit_of_1000_is_refused(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(correlation_id="rr-big") for _ in range(1001)]
    response = await http.post(BATCH, json=bodies)
    problem = assert_problem(response, 400, "batch-size-exceeded")
    assert "1000" in problem["detail"] and "1001" in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_batch_over_a_configured_limit_is_refused(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(event_data={}) for _ in range(SMALL_BATCH_LIMIT + 1)]
    response = await small.post(BATCH, json=bodies)
    problem = assert_problem(response, 400, "batch-size-exceeded")
    assert f"limit is {SMALL_BATCH_LIMIT}" in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_batch_at_a_configured_limit_is_taken(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(event_data={}) for _ in range(SMALL_BATCH_LIMIT)]
    response = await small.post(BATCH, json=bodies)
    assert response.status_code == 201, response.text
    assert await db.fetchval("SELECT count(*) FROM audit_events") == SMALL_BATCH_LIMIT


# --- 413 ---------------------------------------------------------------------------------------


def _padded(payload: Any, size: int) -> bytes:
    """`payload` as JSON followed by whitespace (still valid JSON) up to exactly `size` bytes."""
    raw = _json(payload)
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


@pytest.mark.usefixtures("clean")
async def test_body_over_the_limit_with_content_length_is_413(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for path, payload in ((SINGLE, event_body()), (BATCH, [event_body()])):
        response = await small.post(
            path, content=_padded(payload, SMALL_BODY_LIMIT + 1), headers=JSON_HEADERS
        )
        problem = assert_problem(response, 413, "request-too-large", case=path)
        assert str(SMALL_BODY_LIMIT) in problem["detail"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_body_exactly_at_the_limit_is_read(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await small.post(
        SINGLE, content=_padded(event_body(), SMALL_BODY_LIMIT), headers=JSON_HEADERS
    )
    assert response.status_code == 201, response.text
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


@pytest.mark.usefixtures("clean")
async def test_chunked_body_over_the_limit_without_content_length_is_413(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for path, payload in ((SINGLE, event_body()), (BATCH, [event_body()])):
        raw = _padded(payload, SMALL_BODY_LIMIT * 3)

        async def chunks(raw: bytes = raw) -> AsyncIterator[bytes]:
            for start in range(0, len(raw), 512):
                yield raw[start : start + 512]

        response = await small.post(path, content=chunks(), headers=JSON_HEADERS)
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, "request-too-large", case=path)
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_body_over_the_limit_with_a_lying_content_length_is_413(
    small: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    raw = _padded(event_body(), SMALL_BODY_LIMIT * 2)
    for declared in ("10", "0", "not-a-number"):
        response = await small.post(
            SINGLE, content=raw, headers={**JSON_HEADERS, "content-length": declared}
        )
        assert_problem(response, 413, "request-too-large", case=declared)
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_body_over_the_default_limit_of_5_mib_is_413(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    raw = _padded([event_body()], 5 * 1024 * 1024 + 1)
    response = await http.post(BATCH, content=raw, headers=JSON_HEADERS)
    assert_problem(response, 413, "request-too-large")
    await assert_nothing_written(db)


# --- 400 validation-error ----------------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def _stamp(delta: dt.timedelta) -> str:
    return (now_utc() + delta).isoformat()


INVALID_EVENTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "unknown outcome": ({"event_outcome": "maybe"}, {"event_outcome"}),
    "unknown category": ({"event_category": "billing"}, {"event_category"}),
    "event_type pattern": ({"event_type": "Gateway Signal"}, {"event_type"}),
    "oversized event_data": ({"event_data": {"k": "x" * 262_137}}, {"event_data"}),
    "too deep event_data": ({"event_data": _deep(11)}, {"event_data"}),
    "event_data array": ({"event_data": [1, 2]}, {"event_data"}),
    "event_data missing": ({"event_data": None}, {"event_data"}),
    "timestamp 2 h ahead": (
        {"event_timestamp": _stamp(dt.timedelta(hours=2))},
        {"event_timestamp"},
    ),
    "timestamp 8 days old": (
        {"event_timestamp": _stamp(-dt.timedelta(days=8))},
        {"event_timestamp"},
    ),
    "timestamp without offset": ({"event_timestamp": "2026-01-01T00:00:00"}, {"event_timestamp"}),
    "timestamp year 1": ({"event_timestamp": "0001-01-01T00:00:00+01:00"}, {"event_timestamp"}),
    "invalid actor_ip": ({"actor_ip": "999.1.1.1"}, {"actor_ip"}),
    "scoped actor_ip": ({"actor_ip": "fe80::1%eth0"}, {"actor_ip"}),
    "duration_ms string": ({"duration_ms": "abc"}, {"duration_ms"}),
    "duration_ms negative": ({"duration_ms": -1}, {"duration_ms"}),
    "duration_ms over int64": ({"duration_ms": 2**63}, {"duration_ms"}),
    "is_sensitive string": ({"is_sensitive": "yes"}, {"is_sensitive"}),
    "version number": ({"version": 1}, {"version"}),
    "retention_days 0": ({"retention_days": 0}, {"retention_days"}),
    "event_id not a UUID": ({"event_id": "42"}, {"event_id"}),
    "NUL in a string": ({"correlation_id": "rr-\u0000"}, {"correlation_id"}),
    "NUL in event_data": ({"event_data": {"k": "\u0000"}}, {"event_data"}),
    "conflicting cluster": ({"cluster_id": "a", "cluster_name": "b"}, {"cluster_id"}),
    "several at once": (
        {"event_outcome": "x", "actor_ip": "x", "version": None, "severity": "s" * 21},
        {"event_outcome", "actor_ip", "version", "severity"},
    ),
}


@pytest.mark.usefixtures("clean")
async def test_invalid_event_is_a_validation_error_naming_each_field(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for case, (overrides, fields) in INVALID_EVENTS.items():
        body = {**event_body(), **overrides}
        body = {key: value for key, value in body.items() if value is not None}
        response = await http.post(SINGLE, json=body)
        assert_problem(response, 400, "validation-error", fields, case=case)
        # The same event inside a batch is blamed by its index.
        response = await http.post(BATCH, json=[event_body(), body])
        assert_problem(
            response, 400, "validation-error", {f"[1].{field}" for field in fields}, case=case
        )
    await assert_nothing_written(db)


async def test_unknown_outcome_message_names_allowed_values_and_value_received(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(SINGLE, json=event_body(event_outcome="maybe"))
    problem = assert_problem(response, 400, "validation-error", {"event_outcome"})
    rule = problem["field_errors"]["event_outcome"]
    assert all(word in rule for word in ("success", "failure", "pending", "maybe"))
    assert problem["detail"] == f"event_outcome: {rule}"


@pytest.mark.usefixtures("clean")
async def test_unknown_parent_is_a_validation_error(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    missing = str(uuid.uuid4())
    response = await http.post(SINGLE, json=event_body(parent_event_id=missing))
    problem = assert_problem(response, 400, "validation-error", {"parent_event_id"})
    assert missing in problem["field_errors"]["parent_event_id"]
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_invalid_batch_items_are_keyed_by_index_and_nothing_is_written(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [
        event_body(),
        event_body(event_outcome="maybe", duration_ms=-5),
        "not an event",
        event_body(event_data=_deep(11)),
        event_body(),
    ]
    response = await http.post(BATCH, json=bodies)
    assert_problem(
        response,
        400,
        "validation-error",
        {"[1].event_outcome", "[1].duration_ms", "[2]", "[3].event_data"},
    )
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_unknown_parent_in_a_batch_is_keyed_by_index(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    bodies = [event_body(), event_body(parent_event_id=str(uuid.uuid4()))]
    response = await http.post(BATCH, json=bodies)
    assert_problem(response, 400, "validation-error", {"[1].parent_event_id"})
    await assert_nothing_written(db)


@pytest.mark.usefixtures("clean")
async def test_repeated_event_id_in_a_batch_is_refused(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    event_id = str(uuid.uuid4())
    response = await http.post(
        BATCH, json=[event_body(event_id=event_id), event_body(event_id=event_id)]
    )
    assert_problem(response, 400, "validation-error", {"[1].event_id"})
    await assert_nothing_written(db)


async def test_validation_failures_are_counted_by_field(http: httpx.AsyncClient) -> None:
    def count(text: str) -> float:
        prefix = 'datastorage_validation_failures_total{field="actor_ip"} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = count((await http.get("/metrics")).text)
    await http.post(SINGLE, json=event_body(actor_ip="nope"))
    await http.post(BATCH, json=[event_body(), event_body(actor_ip="nope")])
    assert count((await http.get("/metrics")).text) == before + 2


@pytest.mark.usefixtures("clean")
async def test_integer_beyond_64_bits_in_event_data_is_kept_exactly_or_refused(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    raw = b'{"n": ' + str(2**70).encode() + b"}"
    body = _json(event_body(event_data={})).replace(b'"event_data":{}', b'"event_data":' + raw)
    response = await http.post(SINGLE, content=body, headers=JSON_HEADERS)
    if response.status_code == 400:
        assert_problem(response, 400, "validation-error", {"event_data"})
        await assert_nothing_written(db)
        return
    assert response.status_code == 201, response.text
    stored = await db.fetchval("SELECT event_data->>'n' FROM audit_events")
    assert stored == str(2**70)


# --- GET query errors --------------------------------------------------------------------------


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


QUERY_ERRORS: list[tuple[dict[str, str], set[str]]] = [
    ({"limit": "0"}, {"limit"}),
    ({"limit": "1001"}, {"limit"}),
    ({"limit": "abc"}, {"limit"}),
    ({"limit": "-1"}, {"limit"}),
    ({"limit": "1.5"}, {"limit"}),
    ({"offset": "-1"}, {"offset"}),
    ({"offset": "abc"}, {"offset"}),
    ({"offset": str(2**63)}, {"offset"}),
    ({"since": "yesterday"}, {"since"}),
    ({"since": "999999d"}, {"since"}),
    ({"until": "2026-13-01"}, {"until"}),
    ({"since": "1h", "until": "2h"}, {"since"}),
    ({"detail_key": "pod"}, {"detail_value"}),
    ({"detail_value": "api"}, {"detail_key"}),
    ({"detail_key": "a-b", "detail_value": "x"}, {"detail_key"}),
    ({"cursor": "garbage"}, {"cursor"}),
    ({"cursor": _cursor(["2026-01-01T00:00:00+00:00", 5])}, {"cursor"}),
    ({"cursor": _cursor(["0001-01-01T00:00:00+05:00", str(uuid.uuid4())])}, {"cursor"}),
    ({"event_outcome": "maybe"}, {"event_outcome"}),
    ({"event_type": "a\x00b"}, {"event_type"}),
    ({"namespace": "n" * 254}, {"namespace"}),
    ({"event_outcome": "maybe", "since": "soon"}, {"event_outcome", "since"}),
]


@pytest.mark.parametrize(
    ("params", "fields"),
    QUERY_ERRORS,
    ids=["&".join(f"{k}={v[:12]!r}" for k, v in sorted(p.items())) for p, _ in QUERY_ERRORS],
)
async def test_bad_query_argument_is_400_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, str], fields: set[str]
) -> None:
    response = await http.get(SINGLE, params=params)
    assert_problem(response, 400, "validation-error", fields)
