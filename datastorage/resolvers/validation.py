"""Audit event validation: one pure function shared by REST and GraphQL, every rule named.

A request body is a JSON object with the legacy field names; the result is a `NewAuditEvent` or a
`ValidationFailed` whose `field_errors` names each broken field and its rule. Nothing here touches
the database (the parent-event check lives in the resolver).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import uuid_utils.compat as uuid_utils
from jsonschema import Draft202012Validator

from datastorage.domain import EventOutcome, NewAuditEvent
from datastorage.resolvers.errors import BatchTooLarge, InvalidRequest, ValidationFailed
from datastorage.resolvers.event_schemas import schema_problems

EVENT_TYPE_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
# RFC 3339 section 5.6 (date-time), with the space separator its note allows; nothing else.
RFC3339_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# orjson writes a NUL as \u0000; it is one only when its backslash is not itself escaped.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
EVENT_DATA_MAX_BYTES = 262_144
EVENT_DATA_MAX_DEPTH = 10
ERROR_MESSAGE_MAX_BYTES = 4096
RETENTION_DAYS_DEFAULT = 2555
INT64_MAX = 2**63 - 1
OUTCOMES = tuple(outcome.value for outcome in EventOutcome)


@dataclass(frozen=True, slots=True)
class EventRules:
    """The configurable part of the rules."""

    categories: frozenset[str]
    backfill: dt.timedelta
    future_skew: dt.timedelta
    # event_type → validator of its event_data, for the types that registered a JSON Schema.
    schemas: Mapping[str, Draft202012Validator] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestHints:
    """What the request itself tells about an event: the W3C trace context, the caller."""

    trace_id: str | None = None
    span_id: str | None = None


class FieldErrors:
    """Collects every broken rule of one event so the caller can fix them all at once."""

    __slots__ = ("found", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.found: dict[str, str] = {}

    def add(self, field: str, rule: str) -> None:
        self.found.setdefault(self.prefix + field, rule)


def validate_event(
    body: Any,
    rules: EventRules,
    hints: RequestHints = RequestHints(),
    *,
    now: dt.datetime | None = None,
    prefix: str = "",
) -> NewAuditEvent:
    """Check one event body against every rule; raise `ValidationFailed` naming each broken one."""
    if not isinstance(body, Mapping):
        if not prefix:
            # The request as a whole has the wrong shape: no field is to blame.
            raise InvalidRequest(
                f"the body must be a JSON object (one event), got {json_type(body)}"
            )
        raise ValidationFailed({prefix.rstrip("."): "must be a JSON object"})
    errors = FieldErrors(prefix)
    text = TextReader(body, errors)
    client_id = _uuid(body, "event_id", errors)
    event_id = client_id or uuid_utils.uuid7()
    category = text.required("event_category", 50)
    if category is not None and category not in rules.categories:
        errors.add("event_category", f"must be one of the configured categories, got {category!r}")
    event_type = text.required("event_type", 100)
    if event_type is not None and not EVENT_TYPE_PATTERN.fullmatch(event_type):
        errors.add(
            "event_type", "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)+$ (e.g. gateway.signal.received)"
        )
    outcome = _outcome(body, errors)
    correlation_id = text.required("correlation_id", 255)
    timestamp = _timestamp(body, rules, errors, now or dt.datetime.now(dt.UTC))
    cluster = _cluster(text)
    event_data_json = _event_data(body, errors)
    validator = rules.schemas.get(event_type) if event_type and rules.schemas else None
    if validator is not None and event_data_json is not None:
        for field_name, rule in schema_problems(validator, body["event_data"]).items():
            errors.add(field_name, rule)
    fallback_category = category or ""
    event = NewAuditEvent(
        event_id=event_id,
        event_version=text.required("version", 20) or "",
        event_type=event_type or "",
        event_timestamp=timestamp or _EPOCH,
        event_category=fallback_category,
        event_action=text.required("event_action", 50) or "",
        event_outcome=outcome or "",
        actor_type=text.optional("actor_type", 50) or "service",
        actor_id=text.optional("actor_id", 255) or f"{fallback_category}-service",
        actor_ip=_ip(body, errors),
        resource_type=text.optional("resource_type", 100) or fallback_category,
        resource_id=text.optional("resource_id", 255) or (correlation_id or ""),
        resource_name=text.optional("resource_name", 255),
        correlation_id=correlation_id or "",
        parent_event_id=_uuid(body, "parent_event_id", errors),
        namespace=text.optional("namespace", 253),
        cluster_name=cluster,
        severity=text.optional("severity", 20),
        duration_ms=int_field(body, "duration_ms", 0, INT64_MAX, None, errors),
        error_code=text.optional("error_code", 50),
        error_message=text.optional("error_message", ERROR_MESSAGE_MAX_BYTES, in_bytes=True),
        retention_days=int_field(body, "retention_days", 1, 2555, RETENTION_DAYS_DEFAULT, errors)
        or RETENTION_DAYS_DEFAULT,
        is_sensitive=_boolean(body, "is_sensitive", errors),
        event_data_json=event_data_json or "{}",
        trace_id=text.optional("trace_id", 64) or hints.trace_id,
        span_id=text.optional("span_id", 32) or hints.span_id,
        may_exist=client_id is not None,
    )
    if errors.found:
        raise ValidationFailed(errors.found)
    return event


def validate_batch(
    body: Any, rules: EventRules, hints: RequestHints, *, max_size: int
) -> list[NewAuditEvent]:
    """Validate every item of a batch; errors are keyed `[i].field` and nothing is written."""
    if not isinstance(body, list):
        raise InvalidRequest("the batch body must be a JSON array of events")
    if not body:
        raise InvalidRequest("the batch must contain at least one event")
    if len(body) > max_size:
        raise BatchTooLarge(f"the batch holds {len(body)} events; the limit is {max_size}")
    now = dt.datetime.now(dt.UTC)
    events: list[NewAuditEvent] = []
    field_errors: dict[str, str] = {}
    for index, item in enumerate(body):
        try:
            events.append(validate_event(item, rules, hints, now=now, prefix=f"[{index}]."))
        except ValidationFailed as failed:
            field_errors.update(failed.field_errors)
    if field_errors:
        raise ValidationFailed(field_errors)
    _reject_repeated_ids(events)
    return events


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class TextReader:
    """Reads string fields: absent or null is allowed for optional ones, never a wrong type."""

    __slots__ = ("body", "errors")

    def __init__(self, body: Mapping[str, Any], errors: FieldErrors) -> None:
        self.body = body
        self.errors = errors

    def required(self, field: str, max_len: int) -> str | None:
        value = self.body.get(field)
        if value is None or value == "":
            self.errors.add(field, "is required")
            return None
        return self._checked(field, value, max_len, in_bytes=False)

    def optional(self, field: str, max_len: int, *, in_bytes: bool = False) -> str | None:
        value = self.body.get(field)
        if value is None:
            return None
        return self._checked(field, value, max_len, in_bytes=in_bytes)

    def _checked(self, field: str, value: Any, max_len: int, *, in_bytes: bool) -> str | None:
        if not isinstance(value, str):
            self.errors.add(field, f"must be a string, got {json_type(value)}")
            return None
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # Only GraphQL can deliver these (lone surrogates); PostgreSQL cannot store them.
                self.errors.add(field, "must be valid Unicode text (no lone surrogates)")
                return None
        size = len(value.encode()) if in_bytes else len(value)
        if size > max_len:
            unit = "bytes" if in_bytes else "characters"
            self.errors.add(field, f"must be at most {max_len} {unit}, got {size}")
            return None
        if "\x00" in value:
            self.errors.add(field, "must not contain NUL characters")
            return None
        return value


def _cluster(text: TextReader) -> str | None:
    name = text.optional("cluster_name", 255)
    alias = text.optional("cluster_id", 255)
    if name is not None and alias is not None and name != alias:
        text.errors.add(
            "cluster_id", "must equal cluster_name when both are given (they are synonyms)"
        )
    return name if name is not None else alias


def _timestamp(
    body: Mapping[str, Any], rules: EventRules, errors: FieldErrors, now: dt.datetime
) -> dt.datetime | None:
    raw = body.get("event_timestamp")
    if raw is None or raw == "":
        errors.add("event_timestamp", "is required")
        return None
    parsed = parse_rfc3339(raw)
    if parsed is None:
        errors.add("event_timestamp", "must be an RFC 3339 date-time with a timezone offset")
        return None
    if parsed > now + rules.future_skew:
        minutes = int(rules.future_skew.total_seconds() // 60)
        errors.add("event_timestamp", f"must not be more than {minutes} minutes in the future")
        return None
    if parsed < now - rules.backfill:
        errors.add(
            "event_timestamp",
            f"must not be older than {rules.backfill.days} days (backfill window)",
        )
        return None
    return parsed


def parse_rfc3339(raw: Any) -> dt.datetime | None:
    """An aware datetime in UTC, or None when `raw` is not an RFC 3339 date-time with an offset."""
    if not isinstance(raw, str) or not RFC3339_PATTERN.fullmatch(raw):
        return None
    try:
        # fromisoformat alone also takes ISO week dates, `+0000`, missing seconds, a comma.
        parsed = dt.datetime.fromisoformat(raw.upper())
        return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        # OverflowError: a valid-looking time whose UTC form is outside years 1..9999.
        return None


def _outcome(body: Mapping[str, Any], errors: FieldErrors) -> str | None:
    value = body.get("event_outcome")
    if value is None or value == "":
        errors.add("event_outcome", "is required")
        return None
    if not isinstance(value, str) or value not in OUTCOMES:
        errors.add("event_outcome", f"must be one of {', '.join(OUTCOMES)}, got {preview(value)}")
        return None
    return value


def _uuid(body: Mapping[str, Any], field: str, errors: FieldErrors) -> uuid.UUID | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors.add(field, f"must be a UUID, got {preview(value)}")
    return None


def _ip(body: Mapping[str, Any], errors: FieldErrors) -> str | None:
    value = body.get("actor_ip")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        # PostgreSQL's inet has no zone (`fe80::1%eth0`): it would store another address.
        if address is not None and not getattr(address, "scope_id", None):
            return str(address)
    errors.add("actor_ip", f"must be an IPv4 or IPv6 address, got {preview(value)}")
    return None


def int_field(
    body: Mapping[str, Any],
    field: str,
    low: int,
    high: int,
    default: int | None,
    errors: FieldErrors,
) -> int | None:
    """An optional integer within low..high; absent or null gives `default`."""
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, f"must be an integer, got {json_type(value)}")
        return default
    if not low <= value <= high:
        errors.add(field, f"must be between {low} and {high}, got {value}")
        return default
    return value


def _boolean(body: Mapping[str, Any], field: str, errors: FieldErrors) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        errors.add(field, f"must be a boolean, got {json_type(value)}")
        return False
    return value


def _event_data(body: Mapping[str, Any], errors: FieldErrors) -> str | None:
    value = body.get("event_data")
    if value is None:
        errors.add("event_data", "is required")
        return None
    if not isinstance(value, dict):
        errors.add("event_data", f"must be a JSON object, got {json_type(value)}")
        return None
    try:
        # Sorted keys: the stored text is then the canonical form the hash chain covers.
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # too deep for orjson, or an integer beyond 64 bits
        errors.add(
            "event_data",
            _depth_problem(value) or "must contain only JSON values (integers within 64 bits)",
        )
        return None
    # Depth cannot exceed the number of brackets, so most documents need no walk at all.
    if encoded.count(b"{") + encoded.count(b"[") > EVENT_DATA_MAX_DEPTH:
        problem = _depth_problem(value)
        if problem:
            errors.add("event_data", problem)
            return None
    if len(encoded) > EVENT_DATA_MAX_BYTES:
        errors.add(
            "event_data",
            f"must be at most {EVENT_DATA_MAX_BYTES} bytes as compact JSON, got {len(encoded)}",
        )
        return None
    if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded):
        # PostgreSQL's jsonb cannot hold a NUL character; refuse it here rather than as a 500.
        errors.add("event_data", "must not contain NUL characters (\\u0000)")
        return None
    return encoded.decode()


def _depth_problem(value: Any) -> str | None:
    depth = json_depth(value)
    if depth > EVENT_DATA_MAX_DEPTH:
        return f"must be nested at most {EVENT_DATA_MAX_DEPTH} levels deep, got {depth}"
    return None


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value: an object or array counts 1 plus its deepest child."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children: Any = node.values() if isinstance(node, dict) else node
        if level > deepest:
            deepest = level
        if level > EVENT_DATA_MAX_DEPTH:
            return level  # deep enough to refuse; no need to walk a hostile document further
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, level + 1))
    return deepest


def _reject_repeated_ids(events: list[NewAuditEvent]) -> None:
    seen: dict[uuid.UUID, int] = {}
    errors: dict[str, str] = {}
    for index, event in enumerate(events):
        first = seen.setdefault(event.event_id, index)
        if first != index:
            errors[f"[{index}].event_id"] = (
                f"must be unique within the batch (repeats item {first})"
            )
    if errors:
        raise ValidationFailed(errors)


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names: dict[type, str] = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def preview(value: Any) -> str:
    """A short repr of a client's value, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def choice_field(
    body: Mapping[str, Any],
    field: str,
    allowed: tuple[str, ...],
    errors: FieldErrors,
    *,
    required: bool = True,
) -> str | None:
    """An enum-like string field: one of `allowed` (absent or "" is "is required" when required)."""
    value = body.get(field)
    if value is None or value == "":
        if required:
            errors.add(field, "is required")
        return None
    if not isinstance(value, str) or value not in allowed:
        errors.add(field, f"must be one of {', '.join(allowed)}, got {preview(value)}")
        return None
    return value
