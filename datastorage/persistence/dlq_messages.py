"""The DLQ entry format (legacy-compatible) and the codec of the audit events it carries.

Each stream entry has one field, `message`: JSON `{type, payload, timestamp, retry_count,
last_error}`. For an audit event, `payload` is the event with its `event_id` and every column the
writer needs, so a replay stores exactly the event that was acknowledged (and, by its id, at most
once).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from datastorage.domain import NewAuditEvent

AUDIT_EVENT = "audit_event"
NOTIFICATION_AUDIT = "notification_audit"


class UndecodableEntry(ValueError):
    """An entry that cannot be turned back into what it carried: it goes to the dead letters."""


@dataclass(frozen=True, slots=True)
class DlqMessage:
    type: str
    payload: dict[str, Any]
    timestamp: str
    retry_count: int = 0
    last_error: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "payload": self.payload,
                "timestamp": self.timestamp,
                "retry_count": self.retry_count,
                "last_error": self.last_error,
            }
        )

    def retried(self, reason: str) -> DlqMessage:
        """The same message after one more failed attempt."""
        return DlqMessage(self.type, self.payload, self.timestamp, self.retry_count + 1, reason)


def decode_message(raw: bytes | str) -> DlqMessage:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEntry(f"message is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise UndecodableEntry("message is not a JSON object")
    kind, payload = value.get("type"), value.get("payload")
    retry_count = value.get("retry_count", 0)
    if not isinstance(kind, str) or not isinstance(payload, dict):
        raise UndecodableEntry("message needs a string `type` and an object `payload`")
    if not isinstance(retry_count, int) or isinstance(retry_count, bool) or retry_count < 0:
        raise UndecodableEntry("`retry_count` must be a non-negative integer")
    return DlqMessage(
        kind,
        payload,
        str(value.get("timestamp", "")),
        retry_count,
        str(value.get("last_error", "")),
    )


def event_message(event: NewAuditEvent, reason: str, queued_at: str) -> DlqMessage:
    """`queued_at`: RFC 3339, formatted once per batch by the caller."""
    payload = event.canonical_content()
    payload["retention_days"] = event.retention_days
    return DlqMessage(AUDIT_EVENT, payload, queued_at, 0, reason)


_REQUIRED_TEXT = (
    "event_version", "event_type", "event_category", "event_action", "event_outcome",
    "actor_type", "actor_id", "resource_type", "resource_id", "correlation_id",
)  # fmt: skip
_OPTIONAL_TEXT = (
    "actor_ip", "resource_name", "namespace", "cluster_name", "severity", "error_code",
    "error_message", "trace_id", "span_id",
)  # fmt: skip


def event_from_payload(payload: dict[str, Any]) -> NewAuditEvent:
    """The event an entry carries; raises UndecodableEntry naming the first bad field.

    The event was validated when it was accepted, so this only checks shapes: a replay must not
    re-apply rules that depend on time (an event queued for days is still stored).
    """
    try:
        text: dict[str, Any] = {name: _text(payload, name) for name in _REQUIRED_TEXT}
        optional: dict[str, Any] = {name: _optional_text(payload, name) for name in _OPTIONAL_TEXT}
        event_data = payload.get("event_data")
        if not isinstance(event_data, dict):
            raise UndecodableEntry("payload.event_data must be an object")
        return NewAuditEvent(
            event_id=uuid.UUID(_text(payload, "event_id")),
            event_timestamp=_timestamp(_text(payload, "event_timestamp")),
            parent_event_id=_optional_uuid(payload, "parent_event_id"),
            duration_ms=_optional_int(payload, "duration_ms"),
            retention_days=_int(payload, "retention_days"),
            is_sensitive=_bool(payload, "is_sensitive"),
            # Same sorted compact form validation produced, so the row and its hash match.
            event_data_json=orjson.dumps(event_data, option=orjson.OPT_SORT_KEYS).decode(),
            may_exist=True,
            **text,
            **optional,
        )
    except (ValueError, TypeError) as exc:
        if isinstance(exc, UndecodableEntry):
            raise
        raise UndecodableEntry(f"payload is not an audit event: {exc}") from None


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise UndecodableEntry(f"payload.{name} must be a non-empty string")
    return value


def _optional_text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise UndecodableEntry(f"payload.{name} must be a string or null")
    return value


def _int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UndecodableEntry(f"payload.{name} must be an integer")
    return value


def _optional_int(payload: dict[str, Any], name: str) -> int | None:
    return None if payload.get(name) is None else _int(payload, name)


def _bool(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name)
    if not isinstance(value, bool):
        raise UndecodableEntry(f"payload.{name} must be a boolean")
    return value


def _optional_uuid(payload: dict[str, Any], name: str) -> uuid.UUID | None:
    value = payload.get(name)
    return None if value is None else uuid.UUID(_text(payload, name))


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise UndecodableEntry("payload.event_timestamp must carry a UTC offset")
    return value
