"""Workflow list arguments shared by both surfaces: filters from strings, keyset cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Mapping

import orjson

from datastorage.domain import WorkflowFilter, WorkflowKeyset
from datastorage.resolvers.audit_queries import text_problem
from datastorage.resolvers.errors import ValidationFailed
from datastorage.resolvers.workflow_validation import (
    ENVIRONMENTS,
    LABEL_MAX,
    MAX_LENGTHS,
    PRIORITIES,
    STATUSES,
)

_FILTER_CHOICES = {"status": STATUSES, "environment": ENVIRONMENTS, "priority": PRIORITIES}
_FILTER_TEXT = {
    "component": LABEL_MAX,
    "signal_type": LABEL_MAX,
    "workflow_name": MAX_LENGTHS["workflow_name"],
}


def build_workflow_filter(raw: Mapping[str, str | None]) -> WorkflowFilter:
    """Check the list filters (legacy names) and build the filter, naming each bad one."""
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name, allowed in _FILTER_CHOICES.items():
        value = raw.get(name) or None
        if value is not None and value not in allowed:
            errors[name] = f"must be one of {', '.join(allowed)}, got {value[:40]!r}"
        values[name] = value
    for name, max_len in _FILTER_TEXT.items():
        value = raw.get(name) or None
        if value is not None and len(value) > max_len:
            errors[name] = f"must be at most {max_len} characters"
        elif value is not None and (problem := text_problem(value)):
            errors[name] = problem
        values[name] = value
    if errors:
        raise ValidationFailed(errors)
    return WorkflowFilter(**values)


def encode_cursor(keyset: WorkflowKeyset) -> str:
    """Opaque cursor for the position after a version in list order."""
    payload = orjson.dumps([keyset.created_at.isoformat(), str(keyset.workflow_id)])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> WorkflowKeyset:
    """The position a cursor stands for; a cursor we did not issue is a validation error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, workflow_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(created_at, str) or not isinstance(workflow_id, str):
            raise TypeError("not a pair of strings")
        parsed = dt.datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return WorkflowKeyset(parsed.astimezone(dt.UTC), uuid.UUID(workflow_id))
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationFailed({field: "is not a cursor issued by this service"}) from None
