"""Notification delivery records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from datastorage.domain.audit import format_timestamp


class NotificationChannel(StrEnum):
    """Union of the legacy API's and the legacy database's channel values."""

    EMAIL = "email"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    TEAMS = "teams"
    WEBHOOK = "webhook"
    CONSOLE = "console"
    FILE = "file"
    LOG = "log"


class NotificationStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A validated notification delivery attempt, ready to be written."""

    remediation_id: str
    notification_id: str
    recipient: str
    channel: str
    message_summary: str
    status: str
    sent_at: dt.datetime
    delivery_status: str | None = None
    error_message: str | None = None
    escalation_level: int = 0

    def to_payload(self) -> dict[str, Any]:
        """The record as JSON-ready legacy wire fields (what the DLQ carries for a replay)."""
        return {
            "remediation_id": self.remediation_id,
            "notification_id": self.notification_id,
            "recipient": self.recipient,
            "channel": self.channel,
            "message_summary": self.message_summary,
            "status": self.status,
            "sent_at": format_timestamp(self.sent_at),
            "delivery_status": self.delivery_status,
            "error_message": self.error_message,
            "escalation_level": self.escalation_level,
        }


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A stored notification audit record, with the server-managed columns."""

    id: int
    remediation_id: str
    notification_id: str
    recipient: str
    channel: str
    message_summary: str
    status: str
    sent_at: dt.datetime
    delivery_status: str | None
    error_message: str | None
    escalation_level: int
    created_at: dt.datetime
    updated_at: dt.datetime

    def content(self) -> NewNotification:
        """What the client sent, without the server-managed columns."""
        return NewNotification(
            remediation_id=self.remediation_id,
            notification_id=self.notification_id,
            recipient=self.recipient,
            channel=self.channel,
            message_summary=self.message_summary,
            status=self.status,
            sent_at=self.sent_at,
            delivery_status=self.delivery_status,
            error_message=self.error_message,
            escalation_level=self.escalation_level,
        )
