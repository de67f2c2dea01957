"""validate_event / validate_batch: every rule of audit-events.md, checked without a database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import pytest

from datastorage.domain import NewAuditEvent
from datastorage.resolvers.context import hints_from_traceparent
from datastorage.resolvers.errors import BatchTooLarge, InvalidRequest, ValidationFailed
from datastorage.resolvers.validation import (
    EventRules,
    RequestHints,
    validate_batch,
    validate_event,
)
from datastorage.settings import DEFAULT_EVENT_CATEGORIES

NOW = dt.datetime(2026, 3, 15, 12, 0, 0, tzinfo=dt.UTC)
RULES = EventRules(
    categories=frozenset(DEFAULT_EVENT_CATEGORIES),
    backfill=dt.timedelta(days=7),
    future_skew=dt.timedelta(minutes=60),
)
INT64_MAX = 2**63 - 1


def body(**overrides: Any) -> dict[str, Any]:
    """A valid event body at NOW - 5 s; an override of `...` removes the field."""
    values: dict[str, Any] = {
        "version": "1.0",
        "event_type": "gateway.signal.received",
        "event_timestamp": "2026-03-15T11:59:55Z",
        "event_category": "gateway",
        "event_action": "received",
        "event_outcome": "success",
        "correlation_id": "rr-1234",
        "event_data": {"signal": "KubePodCrashLooping", "restarts": 5},
    }
    for key, value in overrides.items():
        if value is ...:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def valid(
    raw: Any, rules: EventRules = RULES, hints: RequestHints = RequestHints()
) -> NewAuditEvent:
    return validate_event(raw, rules, hints, now=NOW)


def errors_of(raw: Any, rules: EventRules = RULES) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as failed:
        validate_event(raw, rules, now=NOW)
    return failed.value.field_errors


def now_body(**overrides: Any) -> dict[str, Any]:
    """A valid body stamped with the real clock (validate_batch reads it)."""
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    return body(event_timestamp=stamp, **overrides)


# --- the valid body ------------------------------------------------------------------------------


def test_valid_body_becomes_an_event_with_every_value() -> None:
    event = valid(
        body(
            actor_ip="10.1.2.3",
            namespace="prod",
            severity="critical",
            duration_ms=1500,
            error_code="E42",
            error_message="boom",
            retention_days=30,
            is_sensitive=True,
            resource_name="api-7d9",
        )
    )
    assert event.event_version == "1.0"
    assert event.event_type == "gateway.signal.received"
    assert event.event_timestamp == dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)
    assert event.event_category == "gateway"
    assert event.event_action == "received"
    assert event.event_outcome == "success"
    assert event.correlation_id == "rr-1234"
    assert event.actor_ip == "10.1.2.3"
    assert event.namespace == "prod"
    assert event.severity == "critical"
    assert event.duration_ms == 1500
    assert event.error_code == "E42"
    assert event.error_message == "boom"
    assert event.retention_days == 30
    assert event.is_sensitive is True
    assert event.resource_name == "api-7d9"
    # Stored form of event_data: compact with sorted keys (what the hash chain covers).
    assert event.event_data_json == '{"restarts":5,"signal":"KubePodCrashLooping"}'


# --- required fields ---------------------------------------------------------------------------

REQUIRED = (
    "version",
    "event_type",
    "event_timestamp",
    "event_category",
    "event_action",
    "event_outcome",
    "correlation_id",
    "event_data",
)


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field_is_named(field: str) -> None:
    assert errors_of(body(**{field: ...})) == {field: "is required"}


@pytest.mark.parametrize("field", REQUIRED)
def test_null_required_field_is_named(field: str) -> None:
    raw = body()
    raw[field] = None
    assert errors_of(raw) == {field: "is required"}


@pytest.mark.parametrize("field", [name for name in REQUIRED if name != "event_data"])
def test_empty_required_string_is_named(field: str) -> None:
    assert errors_of(body(**{field: ""})) == {field: "is required"}


# --- string lengths ----------------------------------------------------------------------------

# field → (limit, a valid value of exactly `n` characters)
LENGTHS: dict[str, tuple[int, Any]] = {
    "version": (20, lambda n: "v" * n),
    "event_type": (100, lambda n: "a." + "b" * (n - 2)),
    "event_action": (50, lambda n: "x" * n),
    "correlation_id": (255, lambda n: "c" * n),
    "actor_type": (50, lambda n: "t" * n),
    "actor_id": (255, lambda n: "a" * n),
    "resource_type": (100, lambda n: "r" * n),
    "resource_id": (255, lambda n: "i" * n),
    "resource_name": (255, lambda n: "n" * n),
    "namespace": (253, lambda n: "s" * n),
    "cluster_name": (255, lambda n: "k" * n),
    "cluster_id": (255, lambda n: "k" * n),
    "severity": (20, lambda n: "s" * n),
    "error_code": (50, lambda n: "E" * n),
}


@pytest.mark.parametrize("field", LENGTHS)
def test_string_at_its_limit_passes(field: str) -> None:
    limit, make = LENGTHS[field]
    value = make(limit)
    event = valid(body(**{field: value}))
    stored = getattr(
        event,
        "cluster_name" if field == "cluster_id" else field.replace("version", "event_version"),
    )
    assert stored == value


@pytest.mark.parametrize("field", LENGTHS)
def test_string_one_over_its_limit_fails(field: str) -> None:
    limit, make = LENGTHS[field]
    assert errors_of(body(**{field: make(limit + 1)})) == {
        field: f"must be at most {limit} characters, got {limit + 1}"
    }


def test_event_category_length_is_checked_before_membership() -> None:
    long_category = "c" * 50
    rules = EventRules(frozenset({long_category}), RULES.backfill, RULES.future_skew)
    assert valid(body(event_category=long_category), rules).event_category == long_category
    assert errors_of(body(event_category="c" * 51), rules) == {
        "event_category": "must be at most 50 characters, got 51"
    }


def test_error_message_limit_is_4_kib_counted_in_bytes() -> None:
    at_limit = "é" * 2048  # 2048 characters, 4096 bytes in UTF-8
    assert valid(body(error_message=at_limit)).error_message == at_limit
    assert valid(body(error_message="x" * 4096)).error_message == "x" * 4096
    over = "é" * 2048 + "x"  # 2049 characters but 4097 bytes
    assert errors_of(body(error_message=over)) == {
        "error_message": "must be at most 4096 bytes, got 4097"
    }
    assert "error_message" in errors_of(body(error_message="x" * 4097))


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("version", 1, "integer"),
        ("event_type", ["gateway.signal.received"], "array"),
        ("event_action", {"a": 1}, "object"),
        ("correlation_id", 12345, "integer"),
        ("actor_id", True, "boolean"),
        ("namespace", 1.5, "number"),
        ("error_message", ["x"], "array"),
    ],
)
def test_string_field_of_another_type_fails(field: str, value: Any, kind: str) -> None:
    assert errors_of(body(**{field: value})) == {field: f"must be a string, got {kind}"}


# --- event_type, event_category, event_outcome -------------------------------------------------


@pytest.mark.parametrize("value", ["a.b", "gateway.signal.received", "a_1.b_2.c3", "x9.y"])
def test_event_type_matching_the_pattern_passes(value: str) -> None:
    assert valid(body(event_type=value)).event_type == value


@pytest.mark.parametrize(
    "value",
    [
        "gateway",
        "Gateway.signal",
        "gateway..signal",
        ".gateway.signal",
        "gateway.signal.",
        "gate-way.signal",
        "gateway signal.received",
        "gateway.signal\n",
        "gateway.sig nal",
    ],
)
def test_event_type_breaking_the_pattern_fails(value: str) -> None:
    errors = errors_of(body(event_type=value))
    assert list(errors) == ["event_type"]
    assert "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)+$" in errors["event_type"]


def test_event_category_must_be_configured() -> None:
    assert errors_of(body(event_category="billing")) == {
        "event_category": "must be one of the configured categories, got 'billing'"
    }
    for category in DEFAULT_EVENT_CATEGORIES:
        assert valid(body(event_category=category)).event_category == category


def test_event_category_set_is_configurable() -> None:
    rules = EventRules(frozenset({"billing"}), RULES.backfill, RULES.future_skew)
    assert valid(body(event_category="billing"), rules).event_category == "billing"
    assert list(errors_of(body(event_category="gateway"), rules)) == ["event_category"]


@pytest.mark.parametrize("value", ["success", "failure", "pending"])
def test_event_outcome_in_the_enum_passes(value: str) -> None:
    assert valid(body(event_outcome=value)).event_outcome == value


@pytest.mark.parametrize("value", ["maybe", "SUCCESS", "Success", " success", 1, "x" * 60])
def test_event_outcome_outside_the_enum_names_allowed_values_and_value_received(
    value: Any,
) -> None:
    message = errors_of(body(event_outcome=value))["event_outcome"]
    assert message.startswith("must be one of success, failure, pending, got ")
    assert repr(value)[:20] in message


# --- event_timestamp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-15T11:59:00",  # no offset
        "2026-03-15 11:59:00",  # no offset
        "2026-03-15",
        "yesterday",
        "15/03/2026 11:59:00Z",
        "2026-03-15T11:59Z",  # no seconds
        "2026-03-15T11:59:00+0000",  # offset without colon
        "2026-03-15T11:59:00,5Z",  # comma fraction is ISO 8601, not RFC 3339
        "2026-W11-7T11:59:00Z",  # ISO week date
        "2026-03-15T25:00:00Z",
        "2026-02-30T11:59:00Z",
        "2026-03-15T11:59:00Z\n",
        1773575940,
        ["2026-03-15T11:59:00Z"],
    ],
)
def test_event_timestamp_not_an_rfc3339_date_time_with_offset_fails(value: Any) -> None:
    assert errors_of(body(event_timestamp=value)) == {
        "event_timestamp": "must be an RFC 3339 date-time with a timezone offset"
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-15T11:59:55Z", dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)),
        ("2026-03-15t11:59:55z", dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)),
        ("2026-03-15 11:59:55Z", dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)),
        ("2026-03-15T13:59:55+02:00", dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)),
        ("2026-03-15T06:59:55-05:00", dt.datetime(2026, 3, 15, 11, 59, 55, tzinfo=dt.UTC)),
        (
            "2026-03-15T11:59:55.123456Z",
            dt.datetime(2026, 3, 15, 11, 59, 55, 123456, tzinfo=dt.UTC),
        ),
    ],
)
def test_event_timestamp_is_stored_in_utc_with_microseconds(
    value: str, expected: dt.datetime
) -> None:
    stored = valid(body(event_timestamp=value)).event_timestamp
    assert stored == expected
    assert stored.utcoffset() == dt.timedelta(0)


def test_event_timestamp_window_bounds_are_inclusive() -> None:
    newest = NOW + dt.timedelta(minutes=60)
    oldest = NOW - dt.timedelta(days=7)
    assert valid(body(event_timestamp=newest.isoformat())).event_timestamp == newest
    assert valid(body(event_timestamp=oldest.isoformat())).event_timestamp == oldest


def test_event_timestamp_more_than_60_minutes_in_the_future_fails() -> None:
    too_new = NOW + dt.timedelta(minutes=60, microseconds=1)
    assert errors_of(body(event_timestamp=too_new.isoformat())) == {
        "event_timestamp": "must not be more than 60 minutes in the future"
    }


def test_event_timestamp_older_than_the_backfill_window_fails() -> None:
    too_old = NOW - dt.timedelta(days=7, microseconds=1)
    assert errors_of(body(event_timestamp=too_old.isoformat())) == {
        "event_timestamp": "must not be older than 7 days (backfill window)"
    }


def test_event_timestamp_window_is_configurable() -> None:
    rules = EventRules(RULES.categories, dt.timedelta(days=1), dt.timedelta(minutes=5))
    two_days_ago = (NOW - dt.timedelta(days=2)).isoformat()
    in_ten_minutes = (NOW + dt.timedelta(minutes=10)).isoformat()
    assert valid(body(event_timestamp=two_days_ago)).event_timestamp  # default rules: fine
    assert errors_of(body(event_timestamp=two_days_ago), rules) == {
        "event_timestamp": "must not be older than 1 days (backfill window)"
    }
    assert errors_of(body(event_timestamp=in_ten_minutes), rules) == {
        "event_timestamp": "must not be more than 5 minutes in the future"
    }


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_event_timestamp_outside_representable_years_is_a_validation_error(value: str) -> None:
    assert list(errors_of(body(event_timestamp=value))) == ["event_timestamp"]


# --- actor_ip and UUIDs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("::1", "::1"),
    ],
)
def test_actor_ip_ipv4_and_ipv6_pass(value: str, stored: str) -> None:
    assert valid(body(actor_ip=value)).actor_ip == stored


@pytest.mark.parametrize(
    "value",
    ["10.0.0.256", "not-an-ip", "10.0.0", "10.0.0.1/24", "2001:db8::g", "fe80::1%eth0", 167772161],
)
def test_actor_ip_invalid_fails(value: Any) -> None:
    message = errors_of(body(actor_ip=value))["actor_ip"]
    assert message.startswith("must be an IPv4 or IPv6 address, got ")


def test_actor_ip_empty_or_absent_is_none() -> None:
    assert valid(body(actor_ip="")).actor_ip is None
    assert valid(body()).actor_ip is None


@pytest.mark.parametrize("field", ["event_id", "parent_event_id"])
@pytest.mark.parametrize("value", ["abc", "1234", "g" * 32, 42, ["x"]])
def test_uuid_field_invalid_fails(field: str, value: Any) -> None:
    message = errors_of(body(**{field: value}))[field]
    assert message.startswith("must be a UUID, got ")


def test_uuid_fields_are_kept() -> None:
    event_id, parent = uuid.uuid4(), uuid.uuid4()
    event = valid(body(event_id=str(event_id), parent_event_id=str(parent)))
    assert (event.event_id, event.parent_event_id) == (event_id, parent)


# --- integers and booleans ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, f"must be between 0 and {INT64_MAX}, got -1"),
        (2**63, f"must be between 0 and {INT64_MAX}, got {2**63}"),
        (1.5, "must be an integer, got number"),
        (100.0, "must be an integer, got number"),
        (True, "must be an integer, got boolean"),
        ("100", "must be an integer, got string"),
        ([1], "must be an integer, got array"),
    ],
)
def test_duration_ms_must_be_a_non_negative_integer(value: Any, message: str) -> None:
    assert errors_of(body(duration_ms=value)) == {"duration_ms": message}


@pytest.mark.parametrize("value", [0, 1, INT64_MAX])
def test_duration_ms_in_range_passes(value: int) -> None:
    assert valid(body(duration_ms=value)).duration_ms == value


def test_duration_ms_absent_is_none() -> None:
    assert valid(body()).duration_ms is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be between 1 and 2555, got 0"),
        (2556, "must be between 1 and 2555, got 2556"),
        (-5, "must be between 1 and 2555, got -5"),
        (30.0, "must be an integer, got number"),
        (False, "must be an integer, got boolean"),
        ("30", "must be an integer, got string"),
    ],
)
def test_retention_days_outside_1_to_2555_fails(value: Any, message: str) -> None:
    assert errors_of(body(retention_days=value)) == {"retention_days": message}


@pytest.mark.parametrize(("value", "stored"), [(1, 1), (2555, 2555), (None, 2555), (..., 2555)])
def test_retention_days_bounds_and_default(value: Any, stored: int) -> None:
    raw = body(retention_days=value) if value is not None else {**body(), "retention_days": None}
    assert valid(raw).retention_days == stored


@pytest.mark.parametrize(
    ("value", "kind"), [("true", "string"), (1, "integer"), (0, "integer"), ([], "array")]
)
def test_is_sensitive_must_be_a_boolean(value: Any, kind: str) -> None:
    assert errors_of(body(is_sensitive=value)) == {"is_sensitive": f"must be a boolean, got {kind}"}


@pytest.mark.parametrize(("value", "stored"), [(True, True), (False, False), (..., False)])
def test_is_sensitive_values_and_default(value: Any, stored: bool) -> None:
    assert valid(body(is_sensitive=value)).is_sensitive is stored


# --- event_data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"), [([], "array"), ([{"a": 1}], "array"), ("{}", "string"), (5, "integer")]
)
def test_event_data_must_be_an_object(value: Any, kind: str) -> None:
    assert errors_of(body(event_data=value)) == {"event_data": f"must be a JSON object, got {kind}"}


def test_empty_event_data_object_passes() -> None:
    assert valid(body(event_data={})).event_data_json == "{}"


def _data_of_compact_size(size: int, char: str = "x") -> dict[str, str]:
    overhead = len(b'{"k":""}')
    per_char = len(char.encode())
    assert (size - overhead) % per_char == 0
    data = {"k": char * ((size - overhead) // per_char)}
    assert len(orjson.dumps(data)) == size
    return data


@pytest.mark.parametrize("char", ["x", "é"])
def test_event_data_of_exactly_262144_compact_bytes_passes(char: str) -> None:
    data = _data_of_compact_size(262_144, char)
    assert len(valid(body(event_data=data)).event_data_json.encode()) == 262_144


def test_event_data_one_byte_over_262144_fails() -> None:
    data = _data_of_compact_size(262_145)
    assert errors_of(body(event_data=data)) == {
        "event_data": "must be at most 262144 bytes as compact JSON, got 262145"
    }


def test_event_data_size_counts_utf8_bytes_not_characters() -> None:
    # 131,069 two-byte characters: far fewer than 262,144 characters, but 262,146 bytes.
    data = {"k": "é" * 131_069}
    assert len(orjson.dumps(data)) == 262_146
    assert "event_data" in errors_of(body(event_data=data))


def _nested(depth: int) -> dict[str, Any]:
    """An object of exactly `depth` levels, counting itself as 1."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def _nested_list(depth: int) -> list[Any]:
    """An array of exactly `depth` levels."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_event_data_depth_10_passes_and_11_fails() -> None:
    assert valid(body(event_data=_nested(10))).event_data_json.count("{") == 10
    assert errors_of(body(event_data=_nested(11))) == {
        "event_data": "must be nested at most 10 levels deep, got 11"
    }


def test_event_data_depth_counts_arrays_too() -> None:
    assert valid(body(event_data={"a": _nested_list(9)})).event_data_json
    assert errors_of(body(event_data={"a": _nested_list(10)})) == {
        "event_data": "must be nested at most 10 levels deep, got 11"
    }


def test_event_data_depth_counts_the_deepest_branch() -> None:
    data = {"shallow": 1, "deep": _nested(10), "wide": [1, 2, 3]}
    assert "event_data" in errors_of(body(event_data=data))  # 1 + 10 levels
    data = {"shallow": 1, "deep": _nested(9), "wide": [1, 2, 3]}
    assert valid(body(event_data=data)).event_data_json


def test_event_data_hostile_depth_is_refused_quickly() -> None:
    assert "event_data" in errors_of(body(event_data={"a": _nested_list(900)}))


# --- NUL characters and unencodable text -------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["version", "event_action", "correlation_id", "actor_id", "namespace", "error_message"],
)
def test_nul_character_in_a_string_field_fails(field: str) -> None:
    assert errors_of(body(**{field: "a\x00b"})) == {field: "must not contain NUL characters"}


@pytest.mark.parametrize(
    "data", [{"k": "a\x00b"}, {"a\x00": 1}, {"nested": {"list": ["ok", "\x00"]}}]
)
def test_nul_character_in_event_data_fails(data: dict[str, Any]) -> None:
    assert errors_of(body(event_data=data)) == {
        "event_data": "must not contain NUL characters (\\u0000)"
    }


def test_literal_backslash_u0000_text_in_event_data_is_not_a_nul() -> None:
    # The six characters \u0000 (a Windows path, a log line) are ordinary text.
    data = {"path": "C:\\u0000dir", "two": "\\\\u0000"}
    event = valid(body(event_data=data))
    assert orjson.loads(event.event_data_json) == data


def test_escaped_backslash_followed_by_a_real_nul_fails() -> None:
    assert "event_data" in errors_of(body(event_data={"k": "\\\x00"}))


def test_lone_surrogate_in_a_string_field_fails() -> None:
    # JSON parsers of the GraphQL path accept "\ud800"; PostgreSQL cannot store it.
    assert errors_of(body(correlation_id="rr-\ud800")) == {
        "correlation_id": "must be valid Unicode text (no lone surrogates)"
    }
    assert "event_data" in errors_of(body(event_data={"k": "\ud800"}))


# --- cluster_id / cluster_name -----------------------------------------------------------------


def test_cluster_id_is_a_synonym_of_cluster_name() -> None:
    assert valid(body(cluster_id="prod-eu")).cluster_name == "prod-eu"
    assert valid(body(cluster_name="prod-eu")).cluster_name == "prod-eu"
    assert valid(body(cluster_id="prod-eu", cluster_name="prod-eu")).cluster_name == "prod-eu"
    assert valid(body()).cluster_name is None


def test_conflicting_cluster_id_and_cluster_name_fail() -> None:
    assert errors_of(body(cluster_id="prod-eu", cluster_name="prod-us")) == {
        "cluster_id": "must equal cluster_name when both are given (they are synonyms)"
    }


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_of_optional_fields() -> None:
    event = valid(body(event_category="workflow", correlation_id="rr-77"))
    assert event.actor_type == "service"
    assert event.actor_id == "workflow-service"
    assert event.resource_type == "workflow"
    assert event.resource_id == "rr-77"
    assert event.resource_name is None
    assert event.retention_days == 2555
    assert event.is_sensitive is False
    assert event.parent_event_id is None
    assert (event.trace_id, event.span_id) == (None, None)


def test_given_values_override_the_defaults() -> None:
    event = valid(
        body(actor_type="user", actor_id="alice", resource_type="pod", resource_id="api-7d9")
    )
    assert (event.actor_type, event.actor_id) == ("user", "alice")
    assert (event.resource_type, event.resource_id) == ("pod", "api-7d9")


def test_empty_optional_strings_fall_back_to_the_defaults() -> None:
    event = valid(body(actor_type="", actor_id="", resource_type="", resource_id=""))
    assert (event.actor_type, event.actor_id) == ("service", "gateway-service")
    assert (event.resource_type, event.resource_id) == ("gateway", "rr-1234")


# --- trace context -----------------------------------------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def test_trace_ids_are_taken_from_the_request_hints_when_absent() -> None:
    event = valid(body(), hints=RequestHints(trace_id=TRACE_ID, span_id=SPAN_ID))
    assert (event.trace_id, event.span_id) == (TRACE_ID, SPAN_ID)


def test_trace_ids_in_the_body_win_over_the_hints() -> None:
    event = valid(
        body(trace_id="a" * 32, span_id="b" * 16),
        hints=RequestHints(trace_id=TRACE_ID, span_id=SPAN_ID),
    )
    assert (event.trace_id, event.span_id) == ("a" * 32, "b" * 16)


def test_traceparent_header_becomes_hints() -> None:
    hints = hints_from_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-01")
    assert (hints.trace_id, hints.span_id) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize("header", [f"00-{TRACE_ID}-{'0' * 16}-01", f"ff-{TRACE_ID}-{SPAN_ID}-01"])
def test_traceparent_invalid_by_w3c_gives_no_hints(header: str) -> None:
    assert hints_from_traceparent(header) == RequestHints()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{SPAN_ID}-01",  # an all-zero trace id is invalid
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID[:-1]}x-01",
    ],
)
def test_invalid_traceparent_gives_no_hints(header: str | None) -> None:
    assert hints_from_traceparent(header) == RequestHints()


# --- event_id ----------------------------------------------------------------------------------


def test_server_assigns_a_uuid7_when_event_id_is_absent() -> None:
    first, second = valid(body()).event_id, valid(body()).event_id
    assert isinstance(first, uuid.UUID)
    assert first.version == 7
    assert first.variant == uuid.RFC_4122
    assert first != second
    # Time-ordered: the leading 48 bits are the Unix time in milliseconds.
    millis = first.int >> 80
    assert abs(millis / 1000 - dt.datetime.now(dt.UTC).timestamp()) < 60


def test_null_event_id_is_treated_as_absent() -> None:
    raw = body()
    raw["event_id"] = None
    assert valid(raw).event_id.version == 7


# --- shape of the body and error reporting -----------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], [body()], "event", 42, True])
def test_body_that_is_not_an_object_is_an_invalid_request(raw: Any) -> None:
    with pytest.raises(InvalidRequest) as failed:
        validate_event(raw, RULES, now=NOW)
    assert "must be a JSON object" in failed.value.detail


def test_every_broken_rule_is_reported_at_once() -> None:
    raw = body(
        event_type="Bad Type",
        event_outcome="maybe",
        correlation_id=...,
        actor_ip="nope",
        duration_ms=-1,
        event_data=[],
    )
    with pytest.raises(ValidationFailed) as failed:
        validate_event(raw, RULES, now=NOW)
    assert set(failed.value.field_errors) == {
        "event_type",
        "event_outcome",
        "correlation_id",
        "actor_ip",
        "duration_ms",
        "event_data",
    }
    assert failed.value.detail == "6 fields are invalid"


def test_a_single_error_is_summarised_with_its_field() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_event(body(event_outcome="maybe"), RULES, now=NOW)
    assert failed.value.detail.startswith("event_outcome: must be one of success, failure")


def test_unknown_fields_are_ignored() -> None:
    assert valid(body(something_else="x")).event_type == "gateway.signal.received"


# --- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {}, now_body(), "[]", 5])
def test_batch_that_is_not_a_list_is_an_invalid_request(raw: Any) -> None:
    with pytest.raises(InvalidRequest, match="must be a JSON array"):
        validate_batch(raw, RULES, RequestHints(), max_size=10)


def test_empty_batch_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="at least one event"):
        validate_batch([], RULES, RequestHints(), max_size=10)


def test_batch_over_max_size_is_refused_before_items_are_read() -> None:
    with pytest.raises(BatchTooLarge) as failed:
        validate_batch([{}] * 4, RULES, RequestHints(), max_size=3)
    assert failed.value.detail == "the batch holds 4 events; the limit is 3"


def test_batch_at_max_size_passes_in_input_order() -> None:
    bodies = [now_body(event_action=f"step{i}") for i in range(3)]
    events = validate_batch(bodies, RULES, RequestHints(), max_size=3)
    assert [event.event_action for event in events] == ["step0", "step1", "step2"]


def test_batch_errors_are_keyed_by_item_index_and_field() -> None:
    bodies = [
        now_body(),
        now_body(event_outcome="maybe", actor_ip="x"),
        now_body(),
        "not an event",
        now_body(event_data={"a": _nested(11)}),
    ]
    with pytest.raises(ValidationFailed) as failed:
        validate_batch(bodies, RULES, RequestHints(), max_size=10)
    assert set(failed.value.field_errors) == {
        "[1].event_outcome",
        "[1].actor_ip",
        "[3]",
        "[4].event_data",
    }
    assert failed.value.field_errors["[3]"] == "must be a JSON object"


def test_repeated_event_id_within_a_batch_fails() -> None:
    repeated = str(uuid.uuid4())
    bodies = [now_body(event_id=repeated), now_body(), now_body(event_id=repeated)]
    with pytest.raises(ValidationFailed) as failed:
        validate_batch(bodies, RULES, RequestHints(), max_size=10)
    assert failed.value.field_errors == {
        "[2].event_id": "must be unique within the batch (repeats item 0)"
    }


def test_batch_items_get_the_request_hints_and_distinct_ids() -> None:
    hints = RequestHints(trace_id=TRACE_ID, span_id=SPAN_ID)
    events = validate_batch([now_body(), now_body()], RULES, hints, max_size=10)
    assert {event.trace_id for event in events} == {TRACE_ID}
    assert len({event.event_id for event in events}) == 2
