"""Per-event-type JSON Schemas for event_data: registered by configuration, checked on both surfaces."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from datastorage.app import create_app
from datastorage.settings import Settings, SettingsError
from tests.conftest import event_body, running

SIGNAL_SCHEMA = {
    "type": "object",
    "required": ["signal", "restarts"],
    "properties": {
        "signal": {"type": "string", "minLength": 1},
        "restarts": {"type": "integer", "minimum": 0},
        "labels": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.fixture
def schemas_dir(tmp_path: Path) -> Path:
    (tmp_path / "gateway.signal.received.json").write_text(json.dumps(SIGNAL_SCHEMA))
    return tmp_path


@pytest.mark.usefixtures("clean")
async def test_registered_schema_is_enforced_for_its_type_only(
    make_settings: Callable[..., Settings], schemas_dir: Path, db: asyncpg.Connection
) -> None:
    settings = make_settings(audit={"event_schemas_dir": str(schemas_dir)})
    async with running(create_app(settings)) as client:
        good = await client.post(
            "/api/v1/audit/events",
            json=event_body(event_data={"signal": "OOMKilled", "restarts": 2}),
        )
        assert good.status_code == 201, good.text
        bad = await client.post(
            "/api/v1/audit/events",
            json=event_body(event_data={"signal": "", "restarts": -1, "labels": ["a", 3]}),
        )
        assert bad.status_code == 400
        field_errors = bad.json()["field_errors"]
        assert set(field_errors) == {
            "event_data.signal",
            "event_data.restarts",
            "event_data.labels[1]",
        }
        assert all("schema of this event type" in rule for rule in field_errors.values())
        missing = await client.post(
            "/api/v1/audit/events", json=event_body(event_data={"restarts": 1})
        )
        assert "'signal' is a required property" in missing.json()["field_errors"]["event_data"]
        # Other event types are not constrained by that schema.
        other = await client.post(
            "/api/v1/audit/events",
            json=event_body(event_type="gateway.crd.created", event_data={"anything": True}),
        )
        assert other.status_code == 201
        batch = await client.post(
            "/api/v1/audit/events/batch",
            json=[
                event_body(event_data={"signal": "x", "restarts": 0}),
                event_body(event_data={"signal": 5, "restarts": 0}),
            ],
        )
        assert batch.status_code == 400
        assert list(batch.json()["field_errors"]) == ["[1].event_data.signal"]
        mutation = """mutation($input: AuditEventInput!) { createAuditEvent(input: $input) {
            __typename ... on ValidationFailed { fieldErrors { field } } } }"""
        body = event_body(event_data={"signal": "x"})
        variables = {
            "input": {
                "version": "1",
                "eventType": body["event_type"],
                "eventTimestamp": body["event_timestamp"],
                "eventCategory": "gateway",
                "eventAction": "received",
                "eventOutcome": "SUCCESS",
                "correlationId": "c",
                "eventData": body["event_data"],
            }
        }
        answer = await client.post("/graphql", json={"query": mutation, "variables": variables})
        assert answer.json()["data"]["createAuditEvent"] == {
            "__typename": "ValidationFailed",
            "fieldErrors": [{"field": "eventData"}],
        }
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2


def test_a_broken_schema_stops_start_up_naming_the_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "gateway.signal.received.json").write_text('{"type": "no-such-type"}')
    with pytest.raises(
        SettingsError,
        match=r"DATASTORAGE_AUDIT_EVENT_SCHEMAS_DIR: .*gateway\.signal\.received\.json",
    ):
        create_app(make_settings(audit={"event_schemas_dir": str(tmp_path)}))
    result = subprocess.run(
        [sys.executable, "-m", "datastorage.cli", "serve", "--port", "1"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATASTORAGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "DATASTORAGE_AUDIT_EVENT_SCHEMAS_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "gateway.signal.received.json" in result.stderr
    assert "Traceback" not in result.stderr
