"""Query arguments shared by both surfaces: filters from strings, time expressions, cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from collections.abc import Mapping

import orjson

from datastorage.domain import AuditEventFilter, Keyset
from datastorage.resolvers.errors import ValidationFailed
from datastorage.resolvers.validation import OUTCOMES, parse_rfc3339

DETAIL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STRING_FILTERS = {
    "event_type": 100,
    "event_category": 50,
    "severity": 20,
    "correlation_id": 255,
    "actor_id": 255,
    "resource_type": 100,
    "resource_id": 255,
    "namespace": 253,
}


def build_filter(
    raw: Mapping[str, str | None], *, now: dt.datetime | None = None
) -> AuditEventFilter:
    """Check every filter argument (legacy names) and build the filter, naming each bad one."""
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name, max_len in _STRING_FILTERS.items():
        value = raw.get(name)
        if value is not None and len(value) > max_len:
            errors[name] = f"must be at most {max_len} characters"
        elif value is not None and (problem := text_problem(value)):
            errors[name] = problem
        values[name] = value or None
    outcome = raw.get("event_outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        errors["event_outcome"] = f"must be one of {', '.join(OUTCOMES)}, got {outcome!r}"
    now = now or dt.datetime.now(dt.UTC)
    since = _time(raw.get("since"), "since", now, errors, end_of_day=False)
    until = _time(raw.get("until"), "until", now, errors, end_of_day=True)
    if since and until and since > until:
        errors["since"] = "must not be later than until"
    detail_key, detail_value = raw.get("detail_key"), raw.get("detail_value")
    if (detail_key is None) != (detail_value is None):
        missing = "detail_value" if detail_value is None else "detail_key"
        errors[missing] = "is required when the other of detail_key/detail_value is given"
    elif detail_key is not None and not DETAIL_KEY_PATTERN.fullmatch(detail_key):
        errors["detail_key"] = "must match ^[A-Za-z0-9_]+$"
    if detail_value is not None and (problem := text_problem(detail_value)):
        errors["detail_value"] = problem
    if errors:
        raise ValidationFailed(errors)
    return AuditEventFilter(
        event_outcome=outcome,
        since=since,
        until=until,
        detail_key=detail_key,
        detail_value=detail_value,
        **values,
    )


def _time(
    raw: str | None, field: str, now: dt.datetime, errors: dict[str, str], *, end_of_day: bool
) -> dt.datetime | None:
    if raw is None or raw == "":
        return None
    relative = _RELATIVE.fullmatch(raw)
    if relative:
        try:
            return now - dt.timedelta(seconds=int(relative[1]) * _UNIT_SECONDS[relative[2]])
        except OverflowError:
            errors[field] = "must not reach back before the year 1"
            return None
    if _DATE.fullmatch(raw):
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            day = None
        if day is not None:
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            # A bare date as the upper bound means the whole of that day.
            return start + dt.timedelta(days=1, microseconds=-1) if end_of_day else start
    parsed = parse_rfc3339(raw)
    if parsed is None:
        errors[field] = "must be a duration like 24h or 7d, an RFC 3339 date-time, or YYYY-MM-DD"
    return parsed


def text_problem(value: str) -> str | None:
    """Why PostgreSQL could not take `value` as text, or None when it can."""
    # PostgreSQL text cannot hold NUL nor lone surrogates: refuse them here, not as a 500.
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode text (no lone surrogates)"
    return None


def encode_cursor(keyset: Keyset) -> str:
    """Opaque cursor for the position after a row."""
    payload = orjson.dumps([keyset.event_timestamp.isoformat(), str(keyset.event_id)])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> Keyset:
    """The position a cursor stands for; a cursor we did not issue is a validation error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        timestamp, event_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(timestamp, str) or not isinstance(event_id, str):
            raise TypeError("not a pair of strings")
        parsed = dt.datetime.fromisoformat(timestamp)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return Keyset(parsed.astimezone(dt.UTC), uuid.UUID(event_id))
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationFailed({field: "is not a cursor issued by this service"}) from None


def check_page_size(value: int, field: str, maximum: int) -> int:
    """A page size within 1..maximum, else a validation error naming the bound."""
    if not 1 <= value <= maximum:
        raise ValidationFailed({field: f"must be between 1 and {maximum}, got {value}"})
    return value
