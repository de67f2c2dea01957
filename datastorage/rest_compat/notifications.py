"""Legacy notification audit route: HTTP in, resolver call, HTTP out."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastorage.domain import NotificationRecord
from datastorage.resolvers import notifications
from datastorage.rest_compat.audit import context_from, maps_errors
from datastorage.rest_compat.encoding import json_response, read_json

PATH = "/api/v1/audit/notifications"


@maps_errors
async def post_notification(request: Request) -> Response:
    ctx = context_from(request)
    outcome = await notifications.create_notification(
        ctx, await read_json(request, ctx.services.settings.service.max_body_bytes)
    )
    if isinstance(outcome, notifications.NotificationQueued):
        body = {"status": "accepted", "message": "audit record queued for processing"}
        return json_response(body, status=202)
    return json_response(legacy_notification(outcome), status=201)


def legacy_notification(record: NotificationRecord) -> dict[str, Any]:
    """A stored record in the legacy wire format (`NotificationAuditResponse`)."""
    return {
        "id": record.id,
        "remediation_id": record.remediation_id,
        "notification_id": record.notification_id,
        "recipient": record.recipient,
        "channel": record.channel,
        "message_summary": record.message_summary,
        "status": record.status,
        "sent_at": record.sent_at,
        "delivery_status": record.delivery_status,
        "error_message": record.error_message,
        "escalation_level": record.escalation_level,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def routes() -> list[Route]:
    """The legacy notification audit route."""
    return [Route(PATH, post_notification, methods=["POST"])]
