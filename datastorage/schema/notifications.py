"""GraphQL notification audit: its types and the `createNotificationAudit` mutation."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Any

import strawberry

from datastorage.domain import NotificationChannel as DomainChannel
from datastorage.domain import NotificationRecord
from datastorage.domain import NotificationStatus as DomainStatus
from datastorage.resolvers import errors as domain
from datastorage.resolvers import notifications
from datastorage.resolvers.context import Context
from datastorage.schema.audit import to_validation_failed, unavailable
from datastorage.schema.audit_types import Long, ValidationFailed


@strawberry.enum(name="NotificationChannel")
class NotificationChannel(Enum):
    EMAIL = DomainChannel.EMAIL.value
    SLACK = DomainChannel.SLACK.value
    PAGERDUTY = DomainChannel.PAGERDUTY.value
    TEAMS = DomainChannel.TEAMS.value
    WEBHOOK = DomainChannel.WEBHOOK.value
    CONSOLE = DomainChannel.CONSOLE.value
    FILE = DomainChannel.FILE.value
    LOG = DomainChannel.LOG.value


@strawberry.enum(name="NotificationStatus")
class NotificationStatus(Enum):
    SENT = DomainStatus.SENT.value
    FAILED = DomainStatus.FAILED.value
    PENDING = DomainStatus.PENDING.value
    ACKNOWLEDGED = DomainStatus.ACKNOWLEDGED.value
    ESCALATED = DomainStatus.ESCALATED.value


@strawberry.type(name="NotificationAudit")
class NotificationAudit:
    """A stored notification audit record. Resolved straight from the stored record."""

    id: Long
    remediation_id: str
    notification_id: str
    recipient: str
    message_summary: str
    sent_at: dt.datetime
    delivery_status: str | None
    error_message: str | None
    escalation_level: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @strawberry.field
    def channel(self, root: strawberry.Parent[NotificationRecord]) -> NotificationChannel:
        return NotificationChannel(root.channel)

    @strawberry.field
    def status(self, root: strawberry.Parent[NotificationRecord]) -> NotificationStatus:
        return NotificationStatus(root.status)


@strawberry.input(name="NotificationAuditInput")
class NotificationAuditInput:
    remediation_id: str
    notification_id: str
    recipient: str
    channel: NotificationChannel
    message_summary: str
    status: NotificationStatus
    sent_at: str = strawberry.field(description="RFC 3339 date-time with a timezone offset")
    delivery_status: str | None = None
    error_message: str | None = None
    escalation_level: int | None = strawberry.field(default=None, description="0 when left out")

    def to_body(self) -> dict[str, Any]:
        """The record as the legacy JSON body, so both surfaces share one validator."""
        body = {name: value for name, value in vars(self).items() if value is not None}
        body["channel"] = self.channel.value
        body["status"] = self.status.value
        return body


@strawberry.type(name="NotificationAuditStored")
class NotificationAuditStored:
    notification: NotificationAudit


@strawberry.type(name="NotificationAuditQueued")
class NotificationAuditQueued:
    """PostgreSQL was unavailable; the record was queued durably and is stored later."""

    notification_id: str


@strawberry.type(name="NotificationAuditAlreadyExists")
class NotificationAuditAlreadyExists:
    message: str
    notification_id: str


CreateNotificationAuditResult = Annotated[
    NotificationAuditStored
    | NotificationAuditQueued
    | NotificationAuditAlreadyExists
    | ValidationFailed,
    strawberry.union("CreateNotificationAuditResult"),
]


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(
        description="Record one notification delivery attempt; a notification_id is stored once."
    )
    async def create_notification_audit(
        self, info: strawberry.Info[Context], input: NotificationAuditInput
    ) -> CreateNotificationAuditResult:
        try:
            outcome = await notifications.create_notification(info.context, input.to_body())
        except domain.ValidationFailed as error:
            return to_validation_failed(error)
        except domain.Conflict as error:
            return NotificationAuditAlreadyExists(
                message=error.detail, notification_id=input.notification_id
            )
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        if isinstance(outcome, notifications.NotificationQueued):
            return NotificationAuditQueued(notification_id=outcome.notification.notification_id)
        return NotificationAuditStored(notification=outcome)  # type: ignore[arg-type]
