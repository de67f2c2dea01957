"""Notification audit use case shared by REST and GraphQL: validate, store, or queue for replay."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datastorage.domain import (
    NewNotification,
    NotificationChannel,
    NotificationRecord,
    NotificationStatus,
)
from datastorage.observability.logging import correlation_id_var
from datastorage.persistence import notifications as store
from datastorage.persistence.errors import (
    DuplicateNotification,
    PermanentDataError,
    TransientDatabaseError,
    WriteUnavailable,
)
from datastorage.resolvers.context import Context, Services
from datastorage.resolvers.errors import (
    Conflict,
    InvalidRequest,
    ServiceUnavailable,
    ValidationFailed,
)
from datastorage.resolvers.validation import (
    FieldErrors,
    TextReader,
    choice_field,
    int_field,
    json_type,
    parse_rfc3339,
)

log = logging.getLogger(__name__)

CHANNELS = tuple(channel.value for channel in NotificationChannel)
STATUSES = tuple(status.value for status in NotificationStatus)
# Column sizes of notification_audit; error_message is `text`, bounded by the legacy contract.
MAX_LENGTHS = {
    "remediation_id": 255,
    "notification_id": 255,
    "recipient": 500,
    "message_summary": 1000,
    "delivery_status": 255,
    "error_message": 1000,
}
# The column is a 32-bit integer; beyond it PostgreSQL would fail instead of naming the rule.
ESCALATION_LEVEL_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class NotificationQueued:
    """PostgreSQL could not take the record; it was queued durably and is stored by a replay."""

    notification: NewNotification


async def create_notification(ctx: Context, body: Any) -> NotificationRecord | NotificationQueued:
    """Validate and store one record; answers once it is committed, or durably queued."""
    notification = validate_notification(body)
    # Joins this request's log lines to the remediation they belong to, like audit events.
    correlation_id_var.set(notification.remediation_id)
    try:
        return await store.insert_notification(ctx.services.database.pool, notification)
    except DuplicateNotification:
        raise Conflict(
            "notification_audit already exists with notification_id "
            f"{notification.notification_id!r}"
        ) from None
    except TransientDatabaseError as exc:
        return await _fall_back(ctx, notification, exc)
    except PermanentDataError as exc:
        # Validation mirrors the table's rules, so this means they drifted apart; the reason
        # names the SQLSTATE and constraint, never the server's message.
        raise ValidationFailed({"body": f"PostgreSQL refused the data ({exc})"}) from None


async def _fall_back(
    ctx: Context, notification: NewNotification, exc: TransientDatabaseError
) -> NotificationQueued:
    reason = str(exc)
    log.warning("PostgreSQL could not take notification audit record: %s", reason)
    fallback = ctx.services.notification_fallback
    queued = False
    if fallback is not None:
        try:
            queued = await fallback(notification.to_payload(), reason)
        except WriteUnavailable as unavailable:
            # The queue said why it could not take the record (full, Redis down).
            raise ServiceUnavailable(unavailable.reason, unavailable.retry_after) from None
        except Exception:
            # A failing queue must not turn into a 500: the answer is 503 and the client retries.
            log.exception("the notification fallback failed")
    if not queued:
        raise ServiceUnavailable(
            "PostgreSQL is unavailable", ctx.services.settings.writer.retry_after_s
        ) from None
    return NotificationQueued(notification)


async def replay_notification(services: Services, payload: dict[str, Any]) -> bool:
    """Store a record the DLQ queued (`to_payload()` form); True if new, False if already stored.

    Raises PermanentDataError when replaying it can never succeed (a payload that is not a
    record, or a different record stored under its notification_id), TransientDatabaseError
    while PostgreSQL is still unavailable.
    """
    try:
        # The payload is the wire format, so the same rules decode it; none depends on the
        # time of the check, so a record queued for days still passes.
        notification = validate_notification(payload)
    except (ValidationFailed, InvalidRequest) as exc:
        raise PermanentDataError(f"not a notification audit record: {exc.detail}") from None
    return await store.store_replayed_notification(services.database.pool, notification)


def validate_notification(body: Any) -> NewNotification:
    """Check one record against every rule; raise `ValidationFailed` naming each broken one."""
    if not isinstance(body, Mapping):
        raise InvalidRequest(
            f"the body must be a JSON object (one notification record), got {json_type(body)}"
        )
    errors = FieldErrors("")
    text = TextReader(body, errors)
    required = {
        name: text.required(name, MAX_LENGTHS[name])
        for name in ("remediation_id", "notification_id", "recipient", "message_summary")
    }
    notification = NewNotification(
        remediation_id=required["remediation_id"] or "",
        notification_id=required["notification_id"] or "",
        recipient=required["recipient"] or "",
        channel=choice_field(body, "channel", CHANNELS, errors) or "",
        message_summary=required["message_summary"] or "",
        status=choice_field(body, "status", STATUSES, errors) or "",
        sent_at=_sent_at(body, errors) or _EPOCH,
        delivery_status=text.optional("delivery_status", MAX_LENGTHS["delivery_status"]),
        error_message=text.optional("error_message", MAX_LENGTHS["error_message"]),
        escalation_level=int_field(body, "escalation_level", 0, ESCALATION_LEVEL_MAX, 0, errors)
        or 0,
    )
    if errors.found:
        raise ValidationFailed(errors.found)
    return notification


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _sent_at(body: Mapping[str, Any], errors: FieldErrors) -> dt.datetime | None:
    raw = body.get("sent_at")
    if raw is None or raw == "":
        errors.add("sent_at", "is required")
        return None
    parsed = parse_rfc3339(raw)
    if parsed is None:
        errors.add("sent_at", "must be an RFC 3339 date-time with a timezone offset")
    return parsed
