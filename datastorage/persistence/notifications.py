"""SQL for notification audit records: the insert (fresh and replayed) and the lookup by id."""

from __future__ import annotations

from typing import Any

import asyncpg

from datastorage.domain import NewNotification, NotificationRecord
from datastorage.persistence.database import classify
from datastorage.persistence.errors import DuplicateNotification, TransientDatabaseError

_CONTENT_COLUMNS = (
    "remediation_id, notification_id, recipient, channel, message_summary, status, sent_at, "
    "delivery_status, error_message, escalation_level"
)
# Same order as NotificationRecord's fields.
_RECORD_COLUMNS = f"id, {_CONTENT_COLUMNS}, created_at, updated_at"

# ON CONFLICT instead of catching the unique violation: a duplicate is an expected answer
# (409, or success for a replay), not an error to be logged by PostgreSQL on every retry.
_INSERT = f"""
    INSERT INTO notification_audit ({_CONTENT_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (notification_id) DO NOTHING
    RETURNING {_RECORD_COLUMNS}
"""
_BY_NOTIFICATION_ID = f"SELECT {_RECORD_COLUMNS} FROM notification_audit WHERE notification_id = $1"


async def insert_notification(
    db_pool: asyncpg.Pool, notification: NewNotification
) -> NotificationRecord:
    """Store one record; DuplicateNotification if its notification_id is already stored."""
    row = await _run(db_pool, _INSERT, *_arguments(notification))
    if row is None:
        raise DuplicateNotification(notification.notification_id)
    return _record(row)


async def store_replayed_notification(db_pool: asyncpg.Pool, notification: NewNotification) -> bool:
    """Store a record queued while PostgreSQL was down; True if new, False if already stored.

    The first attempt may have committed before its connection failed, so finding the very
    same record is success. A different record under the same notification_id raises
    DuplicateNotification (differs=True): replaying it again cannot succeed.
    """
    row = await _run(db_pool, _INSERT, *_arguments(notification))
    if row is not None:
        return True
    existing = await get_notification(db_pool, notification.notification_id)
    if existing is None:
        # Only a concurrent delete gets here; the next replay attempt decides.
        raise TransientDatabaseError("the conflicting notification record vanished")
    if existing.content() != notification:
        raise DuplicateNotification(notification.notification_id, differs=True)
    return False


async def get_notification(
    db_pool: asyncpg.Pool, notification_id: str
) -> NotificationRecord | None:
    """The stored record with this notification_id, or None."""
    row = await _run(db_pool, _BY_NOTIFICATION_ID, notification_id)
    return None if row is None else _record(row)


async def _run(db_pool: asyncpg.Pool, sql: str, *arguments: Any) -> asyncpg.Record | None:
    try:
        return await db_pool.fetchrow(sql, *arguments)
    except Exception as exc:
        # Callers see TransientDatabaseError / PermanentDataError, never driver exceptions;
        # anything unrecognised is a defect and propagates as it is.
        translated = classify(exc)
        if translated is None:
            raise
        raise translated from exc


def _arguments(notification: NewNotification) -> tuple[Any, ...]:
    return (
        notification.remediation_id, notification.notification_id, notification.recipient,
        notification.channel, notification.message_summary, notification.status,
        notification.sent_at, notification.delivery_status, notification.error_message,
        notification.escalation_level,
    )  # fmt: skip


def _record(row: asyncpg.Record) -> NotificationRecord:
    return NotificationRecord(*row.values())
