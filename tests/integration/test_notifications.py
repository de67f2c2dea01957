"""Notification audit records through REST and GraphQL: stored rows, every rule, conflicts, outages."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.app import create_app
from datastorage.domain import NewNotification, NotificationChannel, NotificationStatus
from datastorage.persistence.errors import (
    DuplicateNotification,
    PermanentDataError,
    WriteUnavailable,
)
from datastorage.persistence.notifications import get_notification, store_replayed_notification
from datastorage.resolvers import notifications as resolver
from datastorage.rest_compat import openapi
from datastorage.schema.notifications import NotificationChannel as GraphQLChannel
from datastorage.schema.notifications import NotificationStatus as GraphQLStatus
from datastorage.settings import ServiceSettings, Settings
from tests.conftest import running
from tests.integration.test_openapi import check_answer

PATH = "/api/v1/audit/notifications"
MAX_BODY_BYTES: int = ServiceSettings.model_fields["max_body_bytes"].default
SPEC = openapi.document()


def notification_body(**overrides: Any) -> dict[str, Any]:
    """A valid legacy record with unique ids; overrides replace fields (None removes one)."""
    body: dict[str, Any] = {
        "remediation_id": f"rr-{uuid.uuid4().hex[:12]}",
        "notification_id": f"notification-{uuid.uuid4()}",
        "recipient": "ops-team@example.com",
        "channel": "email",
        "message_summary": "Incident alert: High CPU usage on pod xyz",
        "status": "sent",
        "sent_at": "2026-11-26T12:15:00.250+02:00",
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


async def _rows_of(db: asyncpg.Connection, body: dict[str, Any]) -> int:
    # Every body has its own remediation_id, so this counts what one request stored.
    return int(
        await db.fetchval(
            "SELECT count(*) FROM notification_audit WHERE remediation_id = $1",
            body["remediation_id"],
        )
    )


async def _post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    response = await client.post(PATH, json=body)
    check_answer(SPEC, "POST", PATH, response)
    return response


# --- stored -------------------------------------------------------------------------------------


async def test_record_is_committed_before_201_and_answered_in_full(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = notification_body(
        channel="slack",
        status="failed",
        delivery_status="500 Internal Server Error",
        error_message="Slack API timeout after 30 seconds",
        escalation_level=2,
    )
    response = await _post(client, body)
    assert response.status_code == 201, response.text
    answer = response.json()
    expected = {**body, "sent_at": "2026-11-26T10:15:00.250000Z"}  # UTC, as stored
    assert {name: answer[name] for name in expected} == expected
    assert answer["created_at"] == answer["updated_at"]
    row = await db.fetchrow(
        "SELECT * FROM notification_audit WHERE notification_id = $1", body["notification_id"]
    )
    assert row is not None
    assert row["id"] == answer["id"]
    assert row["sent_at"] == dt.datetime(2026, 11, 26, 10, 15, 0, 250_000, tzinfo=dt.UTC)
    assert (row["channel"], row["status"], row["escalation_level"]) == ("slack", "failed", 2)
    assert row["error_message"] == body["error_message"]
    assert row["remediation_id"] == body["remediation_id"]


async def test_optional_fields_default(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    body = notification_body()
    body["error_message"] = None  # explicit null is the same as leaving it out
    response = await _post(client, body)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["delivery_status"], answer["error_message"], answer["escalation_level"]) == (
        None,
        None,
        0,
    )
    assert await _rows_of(db, body) == 1


async def test_every_channel_and_status_is_accepted(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # The union of the legacy API's and the legacy database's values; the table's CHECKs agree.
    pairs = zip(
        [channel.value for channel in NotificationChannel],
        [status.value for status in NotificationStatus] * 2,
        strict=False,
    )
    for channel, status in pairs:
        body = notification_body(channel=channel, status=status)
        response = await _post(client, body)
        assert response.status_code == 201, (channel, status, response.text)
        assert await _rows_of(db, body) == 1


async def test_fields_at_their_limits_are_accepted(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    at_limit: dict[str, Any] = {name: "x" * size for name, size in resolver.MAX_LENGTHS.items()}
    at_limit["escalation_level"] = resolver.ESCALATION_LEVEL_MAX
    response = await _post(client, notification_body(**at_limit))
    assert response.status_code == 201, response.text
    assert await db.fetchval(
        "SELECT escalation_level FROM notification_audit WHERE notification_id = $1",
        at_limit["notification_id"],
    ) == (resolver.ESCALATION_LEVEL_MAX)


# --- every rule ---------------------------------------------------------------------------------

REQUIRED = (
    "remediation_id",
    "notification_id",
    "recipient",
    "channel",
    "message_summary",
    "status",
    "sent_at",
)

# (overrides, field, expected fragment of its rule)
INVALID: list[Any] = [
    *(pytest.param({name: None}, name, "is required", id=f"missing-{name}") for name in REQUIRED),
    *(pytest.param({name: ""}, name, "is required", id=f"empty-{name}") for name in REQUIRED),
    *(
        pytest.param(
            {name: "x" * (size + 1)}, name, f"at most {size} characters", id=f"long-{name}"
        )
        for name, size in resolver.MAX_LENGTHS.items()
    ),
    pytest.param(
        {"recipient": 5}, "recipient", "must be a string, got integer", id="recipient-int"
    ),
    pytest.param({"delivery_status": ["200"]}, "delivery_status", "got array", id="status-array"),
    pytest.param({"message_summary": "a\x00b"}, "message_summary", "NUL", id="nul"),
    pytest.param({"channel": "sms"}, "channel", "must be one of email, slack", id="channel-sms"),
    pytest.param({"channel": "EMAIL"}, "channel", "must be one of", id="channel-case"),
    pytest.param({"channel": 3}, "channel", "must be one of", id="channel-int"),
    pytest.param({"status": "delivered"}, "status", "must be one of sent, failed", id="status"),
    pytest.param({"sent_at": "yesterday"}, "sent_at", "RFC 3339", id="sent-at-text"),
    pytest.param({"sent_at": "2026-11-26T10:15:00"}, "sent_at", "RFC 3339", id="sent-at-naive"),
    pytest.param({"sent_at": "2026-02-30T10:15:00Z"}, "sent_at", "RFC 3339", id="sent-at-feb30"),
    pytest.param({"sent_at": 1764152100}, "sent_at", "RFC 3339", id="sent-at-number"),
    pytest.param({"escalation_level": -1}, "escalation_level", "between 0 and", id="level-neg"),
    pytest.param({"escalation_level": 2**31}, "escalation_level", "between 0 and", id="level-big"),
    pytest.param({"escalation_level": "1"}, "escalation_level", "got string", id="level-text"),
    pytest.param({"escalation_level": 1.5}, "escalation_level", "got number", id="level-float"),
    pytest.param({"escalation_level": True}, "escalation_level", "got boolean", id="level-bool"),
]


@pytest.mark.parametrize(("overrides", "field", "rule"), INVALID)
async def test_each_rule_answers_400_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    overrides: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    body = notification_body()
    body.update(overrides)
    body = {name: value for name, value in body.items() if value is not None}
    response = await _post(client, body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert list(problem["field_errors"]) == [field]
    assert rule in problem["field_errors"][field]
    # Only one field is broken, so at least one of the two ids is there to look the row up by.
    stored = await db.fetchval(
        "SELECT count(*) FROM notification_audit WHERE remediation_id = $1 OR notification_id = $2",
        body.get("remediation_id"),
        body.get("notification_id"),
    )
    assert stored == 0


async def test_every_broken_rule_is_reported_at_once(client: httpx.AsyncClient) -> None:
    response = await _post(client, {"channel": "sms", "escalation_level": -2})
    assert response.status_code == 400
    assert set(response.json()["field_errors"]) == {*REQUIRED, "escalation_level"}


@pytest.mark.parametrize(
    "request_args",
    [
        pytest.param(
            {"content": b"{nope", "headers": {"content-type": "application/json"}}, id="json"
        ),
        pytest.param({"json": [notification_body()]}, id="array"),
        pytest.param({"json": "notification"}, id="string"),
    ],
)
async def test_a_body_that_is_not_one_json_object_is_an_invalid_request(
    client: httpx.AsyncClient, request_args: dict[str, Any]
) -> None:
    response = await client.post(PATH, **request_args)
    check_answer(SPEC, "POST", PATH, response)
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/invalid-request")


async def test_415_and_413_refuse_the_body_before_reading_it(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = notification_body()
    encoded = orjson.dumps(body)
    answers = [
        await client.post(PATH, content=encoded, headers={"content-type": "text/plain"}),
        await client.post(PATH, content=encoded),  # no Content-Type at all
        await client.post(
            PATH,
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"content-type": "application/json"},
        ),
    ]
    for response in answers:
        check_answer(SPEC, "POST", PATH, response)
    assert [response.status_code for response in answers] == [415, 415, 413]
    assert answers[0].json()["type"].endswith("/unsupported-media-type")
    assert answers[2].json()["type"].endswith("/request-too-large")
    assert await _rows_of(db, body) == 0


# --- one record per notification_id --------------------------------------------------------------


async def test_duplicate_notification_id_answers_409_and_keeps_the_first(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = notification_body()
    first = await _post(client, body)
    again = await _post(client, body)
    changed = await _post(client, {**body, "status": "escalated", "escalation_level": 1})
    assert (first.status_code, again.status_code, changed.status_code) == (201, 409, 409)
    problem = changed.json()
    assert problem["type"].endswith("/conflict")
    assert problem["status"] == 409
    assert body["notification_id"] in problem["detail"]
    assert problem["instance"] == PATH
    rows = await db.fetch(
        "SELECT status, escalation_level FROM notification_audit WHERE notification_id = $1",
        body["notification_id"],
    )
    assert [tuple(row) for row in rows] == [("sent", 0)]


async def test_concurrent_writes_of_one_notification_id_store_one_row(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = notification_body()
    answers = await asyncio.gather(*(client.post(PATH, json=body) for _ in range(12)))
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * 11
    assert await _rows_of(db, body) == 1


# --- GraphQL ------------------------------------------------------------------------------------

MUTATION = """
  mutation Create($input: NotificationAuditInput!) {
    createNotificationAudit(input: $input) {
      __typename
      ... on NotificationAuditStored {
        notification { id remediationId notificationId recipient channel messageSummary status
                       sentAt deliveryStatus errorMessage escalationLevel createdAt updatedAt }
      }
      ... on NotificationAuditQueued { notificationId }
      ... on NotificationAuditAlreadyExists { message notificationId }
      ... on ValidationFailed { message fieldErrors { field message } }
    }
  }
"""


def graphql_input(body: dict[str, Any]) -> dict[str, Any]:
    """The REST body as GraphQL input: camelCase names, enum names."""
    names = {
        "remediation_id": "remediationId",
        "notification_id": "notificationId",
        "recipient": "recipient",
        "channel": "channel",
        "message_summary": "messageSummary",
        "status": "status",
        "sent_at": "sentAt",
        "delivery_status": "deliveryStatus",
        "error_message": "errorMessage",
        "escalation_level": "escalationLevel",
    }
    values = {names[name]: value for name, value in body.items()}
    values["channel"] = body["channel"].upper()
    values["status"] = body["status"].upper()
    return values


async def _create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": MUTATION, "variables": {"input": graphql_input(body)}}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "errors" not in answer, answer
    result: dict[str, Any] = answer["data"]["createNotificationAudit"]
    return result


async def test_graphql_stores_the_record(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    body = notification_body(channel="pagerduty", delivery_status="202", escalation_level=1)
    result = await _create(client, body)
    assert result["__typename"] == "NotificationAuditStored", result
    stored = result["notification"]
    assert stored["notificationId"] == body["notification_id"]
    assert (stored["channel"], stored["status"]) == ("PAGERDUTY", "SENT")
    assert stored["deliveryStatus"] == "202" and stored["errorMessage"] is None
    assert stored["escalationLevel"] == 1
    assert stored["sentAt"].startswith("2026-11-26T10:15:00.25")
    row = await db.fetchrow(
        "SELECT id, channel FROM notification_audit WHERE notification_id = $1",
        body["notification_id"],
    )
    assert row is not None and (row["id"], row["channel"]) == (stored["id"], "pagerduty")


async def test_graphql_reports_validation_and_conflict_as_typed_results(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    invalid = notification_body(sent_at="tomorrow", escalation_level=-1, recipient="")
    result = await _create(client, invalid)
    assert result["__typename"] == "ValidationFailed", result
    assert {error["field"] for error in result["fieldErrors"]} == {
        "sentAt",
        "escalationLevel",
        "recipient",
    }
    assert await _rows_of(db, invalid) == 0

    body = notification_body()
    assert (await _create(client, body))["__typename"] == "NotificationAuditStored"
    result = await _create(client, {**body, "status": "acknowledged"})
    assert result["__typename"] == "NotificationAuditAlreadyExists", result
    assert result["notificationId"] == body["notification_id"]
    assert body["notification_id"] in result["message"]
    # The two surfaces share the resolver and the table: REST sees the same conflict.
    assert (await _post(client, body)).status_code == 409
    assert await _rows_of(db, body) == 1


def test_graphql_enums_are_the_domain_values() -> None:
    assert [item.value for item in GraphQLChannel] == [item.value for item in NotificationChannel]
    assert [item.value for item in GraphQLStatus] == [item.value for item in NotificationStatus]


def test_documented_rules_are_the_coded_ones() -> None:
    request = SPEC["components"]["schemas"]["NotificationAuditRequest"]
    properties = request["properties"]
    assert set(request["required"]) == set(REQUIRED)
    limited = {name: p["maxLength"] for name, p in properties.items() if "maxLength" in p}
    assert limited == resolver.MAX_LENGTHS
    assert properties["channel"]["enum"] == list(resolver.CHANNELS)
    assert properties["status"]["enum"] == list(resolver.STATUSES)
    assert properties["escalation_level"]["maximum"] == resolver.ESCALATION_LEVEL_MAX
    stored = SPEC["components"]["schemas"]["NotificationAudit"]["properties"]
    assert stored["channel"]["enum"] == list(resolver.CHANNELS)
    assert stored["status"]["enum"] == list(resolver.STATUSES)


# --- PostgreSQL unavailable: queued (202) or refused (503) -------------------------------------


async def test_unavailable_database_queues_through_the_fallback_or_answers_503(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with running(app) as client:
        services = app.state.services
        queued: list[tuple[dict[str, Any], str]] = []

        async def accept(payload: dict[str, Any], reason: str) -> bool:
            queued.append((payload, reason))
            return True

        async def refuse(payload: dict[str, Any], reason: str) -> bool:
            return False

        async def full(payload: dict[str, Any], reason: str) -> bool:
            raise WriteUnavailable("the dead-letter queue is full", 7)

        async def broken(payload: dict[str, Any], reason: str) -> bool:
            raise RuntimeError("secret redis text")

        await services.database.pool.close()

        services.notification_fallback = accept
        body = notification_body(delivery_status="200 OK", sent_at="2026-11-26T10:15:00Z")
        response = await _post(client, body)
        assert response.status_code == 202, response.text
        assert response.json() == {
            "status": "accepted",
            "message": "audit record queued for processing",
        }
        [(payload, reason)] = queued
        assert payload == {
            **body,
            "sent_at": "2026-11-26T10:15:00.000000Z",
            "error_message": None,
            "escalation_level": 0,
        }
        assert orjson.loads(orjson.dumps(payload)) == payload  # JSON-ready as it is
        assert reason.startswith("database unavailable")
        graphql = await _create(client, notification_body())
        assert graphql["__typename"] == "NotificationAuditQueued"

        for fallback, retry_after in ((None, 1), (refuse, 1), (full, 7), (broken, 1)):
            services.notification_fallback = fallback
            response = await _post(client, notification_body())
            assert response.status_code == 503, response.text
            assert response.json()["type"].endswith("/service-unavailable")
            assert response.headers["retry-after"] == str(retry_after)
            assert "secret" not in response.text
        # Invalid input is still answered as such: validation needs no database.
        assert (await _post(client, notification_body(channel="sms"))).status_code == 400


# --- replay from the dead-letter queue ----------------------------------------------------------


def _notification(**overrides: Any) -> NewNotification:
    values: dict[str, Any] = {
        "remediation_id": "rr-replay",
        "notification_id": f"notification-{uuid.uuid4()}",
        "recipient": "#ops",
        "channel": "slack",
        "message_summary": "Database connection lost",
        "status": "failed",
        "sent_at": dt.datetime(2026, 11, 26, 10, 15, 0, 123_456, tzinfo=dt.UTC),
        "error_message": "timeout",
        "escalation_level": 1,
    }
    return NewNotification(**{**values, **overrides})


async def test_replay_is_idempotent_and_refuses_a_different_record(
    app: Starlette, db: asyncpg.Connection
) -> None:
    pool = app.state.services.database.pool
    notification = _notification()
    assert await store_replayed_notification(pool, notification) is True
    # The first attempt may have committed before its connection failed: same record, no error.
    assert await store_replayed_notification(pool, notification) is False
    with pytest.raises(DuplicateNotification) as raised:
        await store_replayed_notification(
            pool, _notification(notification_id=notification.notification_id, status="escalated")
        )
    assert raised.value.differs is True
    stored = await get_notification(pool, notification.notification_id)
    assert stored is not None and stored.content() == notification
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notification_audit WHERE notification_id = $1",
            notification.notification_id,
        )
        == 1
    )


async def test_the_queued_payload_replays_to_the_same_record(
    app: Starlette, db: asyncpg.Connection
) -> None:
    services = app.state.services
    notification = _notification(delivery_status=None, error_message=None)
    payload = orjson.loads(orjson.dumps(notification.to_payload()))  # as it comes back from Redis
    assert await resolver.replay_notification(services, payload) is True
    assert await resolver.replay_notification(services, payload) is False
    stored = await get_notification(services.database.pool, notification.notification_id)
    assert stored is not None and stored.content() == notification
    # A payload that can never be stored is permanent: the drainer buries it instead of retrying.
    with pytest.raises(PermanentDataError, match="channel"):
        await resolver.replay_notification(services, {**payload, "channel": "carrier-pigeon"})
    with pytest.raises(PermanentDataError):
        await resolver.replay_notification(services, {**payload, "status": "escalated"})
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notification_audit WHERE notification_id = $1",
            notification.notification_id,
        )
        == 1
    )
