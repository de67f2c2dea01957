"""Query arguments: build_filter, time expressions, keyset cursors and page sizes (no database)."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import orjson
import pytest

from datastorage.domain import AuditEventFilter, Keyset
from datastorage.resolvers.audit_queries import (
    build_filter,
    check_page_size,
    decode_cursor,
    encode_cursor,
)
from datastorage.resolvers.errors import ValidationFailed

NOW = dt.datetime(2026, 3, 15, 12, 0, 0, tzinfo=dt.UTC)

STRING_FILTERS = {
    "event_type": 100,
    "event_category": 50,
    "severity": 20,
    "correlation_id": 255,
    "actor_id": 255,
    "resource_type": 100,
    "resource_id": 255,
    "namespace": 253,
}


def build(**raw: str | None) -> AuditEventFilter:
    return build_filter(raw, now=NOW)


def errors_of(**raw: str | None) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as failed:
        build_filter(raw, now=NOW)
    return failed.value.field_errors


def test_no_arguments_is_no_filter() -> None:
    assert build() == AuditEventFilter()


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_each_string_filter_is_passed_through(name: str) -> None:
    assert getattr(build(**{name: "value-1"}), name) == "value-1"
    # Every other field stays unset.
    others = {key: value for key, value in vars_of(build(**{name: "value-1"})).items()}
    others.pop(name)
    assert set(others.values()) == {None}


def vars_of(filters: AuditEventFilter) -> dict[str, Any]:
    return {name: getattr(filters, name) for name in AuditEventFilter.__dataclass_fields__}


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_empty_string_filter_means_no_filter(name: str) -> None:
    assert getattr(build(**{name: ""}), name) is None


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_string_filter_max_length(name: str) -> None:
    limit = STRING_FILTERS[name]
    assert getattr(build(**{name: "x" * limit}), name) == "x" * limit
    assert errors_of(**{name: "x" * (limit + 1)}) == {name: f"must be at most {limit} characters"}


@pytest.mark.parametrize("name", [*STRING_FILTERS, "detail_value"])
def test_nul_character_in_a_filter_is_a_validation_error(name: str) -> None:
    raw = {name: "a\x00b"}
    if name == "detail_value":
        raw["detail_key"] = "pod"
    assert errors_of(**raw) == {name: "must not contain NUL characters"}


def test_lone_surrogate_in_a_filter_is_a_validation_error() -> None:
    assert errors_of(correlation_id="rr-\ud800") == {
        "correlation_id": "must be valid Unicode text (no lone surrogates)"
    }


@pytest.mark.parametrize("outcome", ["success", "failure", "pending"])
def test_event_outcome_filter_in_the_enum(outcome: str) -> None:
    assert build(event_outcome=outcome).event_outcome == outcome


@pytest.mark.parametrize("outcome", ["maybe", "SUCCESS", "succes"])
def test_event_outcome_filter_outside_the_enum_names_allowed_values(outcome: str) -> None:
    assert errors_of(event_outcome=outcome) == {
        "event_outcome": f"must be one of success, failure, pending, got {outcome!r}"
    }


def test_empty_event_outcome_means_no_filter() -> None:
    assert build(event_outcome="").event_outcome is None


# --- since / until -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "back"),
    [
        ("24h", dt.timedelta(hours=24)),
        ("7d", dt.timedelta(days=7)),
        ("30m", dt.timedelta(minutes=30)),
        ("45s", dt.timedelta(seconds=45)),
        ("0h", dt.timedelta(0)),
        ("999999h", dt.timedelta(hours=999_999)),
    ],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_relative_times_count_back_from_now(field: str, raw: str, back: dt.timedelta) -> None:
    assert getattr(build(**{field: raw}), field) == NOW - back


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-10T08:30:00Z", dt.datetime(2026, 3, 10, 8, 30, tzinfo=dt.UTC)),
        ("2026-03-10T10:30:00+02:00", dt.datetime(2026, 3, 10, 8, 30, tzinfo=dt.UTC)),
        ("2026-03-10T08:30:00.250000Z", dt.datetime(2026, 3, 10, 8, 30, 0, 250000, tzinfo=dt.UTC)),
    ],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_rfc3339_times_are_taken_as_given(field: str, raw: str, expected: dt.datetime) -> None:
    parsed = getattr(build(**{field: raw}), field)
    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)


def test_bare_date_since_is_the_start_of_that_utc_day() -> None:
    assert build(since="2026-03-10").since == dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


def test_bare_date_until_is_the_end_of_that_utc_day() -> None:
    assert build(until="2026-03-10").until == dt.datetime(
        2026, 3, 10, 23, 59, 59, 999999, tzinfo=dt.UTC
    )


def test_same_bare_date_for_since_and_until_covers_the_whole_day() -> None:
    filters = build(since="2026-03-10", until="2026-03-10")
    assert filters.until is not None and filters.since is not None
    assert filters.until - filters.since == dt.timedelta(days=1, microseconds=-1)


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "24",
        "24x",
        "-1h",
        "1.5h",
        "24 h",
        "24H",
        "1w",
        "2026-02-30",
        "2026-13-01",
        "2026-3-10",
        "20260310",
        "2026-03-10T08:30:00",  # no offset
        "2026-03-10T08:30Z",
        "24h\n",
        "2026-03-10\n",
        "999999d",  # before the year 1
        "0001-01-01T00:00:00+01:00",
    ],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_garbage_times_are_validation_errors(field: str, raw: str) -> None:
    errors = errors_of(**{field: raw})
    assert list(errors) == [field]


def test_since_later_than_until_fails_on_since() -> None:
    assert errors_of(since="2026-03-12T00:00:00Z", until="2026-03-11T00:00:00Z") == {
        "since": "must not be later than until"
    }
    assert errors_of(since="1h", until="2h") == {"since": "must not be later than until"}


def test_since_equal_to_until_passes() -> None:
    filters = build(since="2026-03-11T00:00:00Z", until="2026-03-11T00:00:00Z")
    assert filters.since == filters.until


def test_empty_times_mean_no_bound() -> None:
    filters = build(since="", until="")
    assert (filters.since, filters.until) == (None, None)


def test_relative_times_use_the_real_clock_without_now() -> None:
    before = dt.datetime.now(dt.UTC)
    since = build_filter({"since": "1h"}).since
    after = dt.datetime.now(dt.UTC)
    assert since is not None
    assert before - dt.timedelta(hours=1) <= since <= after - dt.timedelta(hours=1)


# --- detail_key / detail_value -----------------------------------------------------------------


def test_detail_key_and_value_together() -> None:
    filters = build(detail_key="pod_name1", detail_value="api-7d9")
    assert (filters.detail_key, filters.detail_value) == ("pod_name1", "api-7d9")


def test_detail_value_may_be_empty() -> None:
    assert build(detail_key="pod", detail_value="").detail_value == ""


def test_detail_key_without_value_names_detail_value() -> None:
    assert errors_of(detail_key="pod") == {
        "detail_value": "is required when the other of detail_key/detail_value is given"
    }


def test_detail_value_without_key_names_detail_key() -> None:
    assert errors_of(detail_value="api-7d9") == {
        "detail_key": "is required when the other of detail_key/detail_value is given"
    }


@pytest.mark.parametrize(
    "key", ["", "pod-name", "pod.name", "pod name", "pod'--", "pöd", "pod\n", "a,b"]
)
def test_detail_key_must_match_its_pattern(key: str) -> None:
    assert errors_of(detail_key=key, detail_value="x") == {
        "detail_key": "must match ^[A-Za-z0-9_]+$"
    }


def test_several_filter_errors_are_reported_at_once() -> None:
    errors = errors_of(event_outcome="maybe", since="soon", detail_key="a", namespace="n" * 254)
    assert set(errors) == {"event_outcome", "since", "detail_value", "namespace"}


def test_every_filter_combined() -> None:
    filters = build(
        event_type="gateway.signal.received",
        event_category="gateway",
        event_outcome="failure",
        severity="critical",
        correlation_id="rr-1",
        actor_id="gateway-service",
        resource_type="pod",
        resource_id="api-7d9",
        namespace="prod",
        since="7d",
        until="2026-03-15",
        detail_key="pod",
        detail_value="api-7d9",
    )
    assert filters == AuditEventFilter(
        event_type="gateway.signal.received",
        event_category="gateway",
        event_outcome="failure",
        severity="critical",
        correlation_id="rr-1",
        actor_id="gateway-service",
        resource_type="pod",
        resource_id="api-7d9",
        namespace="prod",
        since=NOW - dt.timedelta(days=7),
        until=dt.datetime(2026, 3, 15, 23, 59, 59, 999999, tzinfo=dt.UTC),
        detail_key="pod",
        detail_value="api-7d9",
    )


# --- cursors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        dt.datetime(2026, 3, 15, 11, 59, 55, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_cursor_round_trip(timestamp: dt.datetime) -> None:
    keyset = Keyset(timestamp, uuid.uuid4())
    cursor = encode_cursor(keyset)
    assert decode_cursor(cursor) == keyset
    # Opaque and safe in a URL query without escaping.
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_of_another_offset_decodes_to_the_same_instant_in_utc() -> None:
    local = dt.datetime(2026, 3, 15, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    decoded = decode_cursor(encode_cursor(Keyset(local, uuid.uuid4())))
    assert decoded.event_timestamp == local
    assert decoded.event_timestamp.utcoffset() == dt.timedelta(0)


def _b64(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD_ID = "0195a0b8-7c1e-7d2a-9b3c-4d5e6f708192"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "abc",
        "é",
        "not a cursor",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64([]),
        _b64(["2026-03-15T11:59:55+00:00"]),
        _b64(["2026-03-15T11:59:55+00:00", GOOD_ID, "extra"]),
        _b64(["2026-03-15T11:59:55", GOOD_ID]),  # naive
        _b64(["yesterday", GOOD_ID]),
        _b64(["2026-03-15T11:59:55+00:00", "not-a-uuid"]),
        _b64(["2026-03-15T11:59:55+00:00", 5]),
        _b64(["2026-03-15T11:59:55+00:00", {"a": 1}]),
        _b64([1773575995, GOOD_ID]),
        _b64({"timestamp": "2026-03-15T11:59:55+00:00", "id": GOOD_ID}),
        _b64("ab"),
        _b64(42),
        _b64(["0001-01-01T00:00:00+05:00", GOOD_ID]),  # before the year 1 in UTC
    ],
)
def test_garbage_cursor_is_a_validation_error_naming_the_argument(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        decode_cursor(cursor)
    assert failed.value.field_errors == {"cursor": "is not a cursor issued by this service"}
    with pytest.raises(ValidationFailed) as failed:
        decode_cursor(cursor, "after")
    assert list(failed.value.field_errors) == ["after"]


# --- page sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 50, 1000])
def test_page_size_within_bounds(value: int) -> None:
    assert check_page_size(value, "limit", 1000) == value


@pytest.mark.parametrize("value", [0, -1, 1001, 10**12])
def test_page_size_outside_bounds_names_field_and_bound(value: int) -> None:
    with pytest.raises(ValidationFailed) as failed:
        check_page_size(value, "limit", 1000)
    assert failed.value.field_errors == {"limit": f"must be between 1 and 1000, got {value}"}


def test_page_size_uses_the_given_field_name_and_maximum() -> None:
    with pytest.raises(ValidationFailed) as failed:
        check_page_size(501, "first", 500)
    assert failed.value.field_errors == {"first": "must be between 1 and 500, got 501"}
