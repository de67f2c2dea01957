"""The workflow catalog through REST and GraphQL: stored rows, every rule, versions, status."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.app import create_app
from datastorage.domain import WorkflowStatus
from datastorage.persistence.workflows import latest_workflows_for_search
from datastorage.resolvers import workflow_validation as rules
from datastorage.rest_compat import openapi
from datastorage.rest_compat import workflows as rest
from datastorage.schema.workflow_types import Priority, Severity
from datastorage.schema.workflow_types import WorkflowStatus as GraphQLStatus
from datastorage.settings import ServiceSettings, Settings
from tests.conftest import running
from tests.integration.test_openapi import _assert_every_answer_declared, check_answer

PATH = "/api/v1/workflows"
SPEC = openapi.document()
MAX_BODY_BYTES: int = ServiceSettings.model_fields["max_body_bytes"].default
CONTENT = "apiVersion: tekton.dev/v1beta1\nkind: Pipeline\nmetadata:\n  name: oomkill\n"


def workflow_body(**overrides: Any) -> dict[str, Any]:
    """A valid create body with a unique name; overrides replace fields (None removes one)."""
    body: dict[str, Any] = {
        "workflow_name": f"oomkill-{uuid.uuid4().hex[:12]}",
        "version": "v1.0.0",
        "name": f"Increase memory {uuid.uuid4().hex[:8]}",
        "description": "Raises the memory limit of the owning deployment by 25%.",
        "content": CONTENT,
        "execution_engine": "tekton",
        "labels": {
            "signal_type": "OOMKilled",
            "severity": "critical",
            "component": "pod",
            "environment": ["production", "staging"],
            "priority": "P0",
        },
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def with_labels(**labels: Any) -> dict[str, Any]:
    """The default mandatory labels with some replaced (None removes one)."""
    merged = {**workflow_body()["labels"], **labels}
    return {name: value for name, value in merged.items() if value is not None}


async def _send(
    client: httpx.AsyncClient, method: str, path: str, template: str, **kwargs: Any
) -> httpx.Response:
    response = await client.request(method, path, **kwargs)
    check_answer(SPEC, method, template, response)
    return response


async def _post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await _send(client, "POST", PATH, PATH, json=body)


async def _create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await _post(client, workflow_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _get(client: httpx.AsyncClient, workflow_id: str) -> httpx.Response:
    return await _send(client, "GET", f"{PATH}/{workflow_id}", PATH + "/{workflow_id}")


async def _patch(
    client: httpx.AsyncClient, workflow_id: str, suffix: str = "", **kwargs: Any
) -> httpx.Response:
    path, template = f"{PATH}/{workflow_id}{suffix}", PATH + "/{workflow_id}" + suffix
    return await _send(client, "PATCH", path, template, **kwargs)


async def _list(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await _send(client, "GET", PATH, PATH, params=params)


async def _versions(client: httpx.AsyncClient, name: str) -> httpx.Response:
    template = PATH + "/by-name/{workflow_name}/versions"
    return await _send(client, "GET", f"{PATH}/by-name/{name}/versions", template)


async def _stored(db: asyncpg.Connection, body: dict[str, Any]) -> int:
    # One of the two names is intact in every invalid body, and each is unique to its body.
    return int(
        await db.fetchval(
            "SELECT count(*) FROM remediation_workflows WHERE workflow_name = $1 OR name = $2",
            str(body.get("workflow_name")),
            str(body.get("name")),
        )
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- create ---------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_committed_row(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = workflow_body(
        owner="sre-team",
        maintainer="sre@example.com",
        parameters={"memory_increase": "25%", "limits": {"max": "8Gi"}},
        container_image="ghcr.io/kubernaut/workflows/oomkill:v1.0.0",
        container_digest="sha256:" + "a" * 64,
        custom_labels={"team": ["name=payments"], "constraint": ["cost-constrained", "*"]},
        detected_labels={"gitOpsManaged": True, "gitOpsTool": "argocd", "pdbProtected": False},
        version_notes="first release",
        change_summary="initial",
        approved_by="alice",
        approved_at="2026-11-26T12:00:00+02:00",
        expected_success_rate=0.95,
        expected_duration_seconds=120,
        created_by="bob",
    )
    response = await _post(client, body)
    assert response.status_code == 201, response.text
    answer = response.json()
    workflow_id = uuid.UUID(answer["workflow_id"])
    assert answer["is_latest_version"] is True and answer["previous_version"] is None
    assert answer["status"] == "active" and answer["disabled_at"] is None
    assert answer["content_hash"] == _sha256(CONTENT)
    assert answer["approved_at"] == "2026-11-26T10:00:00Z"
    assert answer["created_at"] == answer["updated_at"]
    assert (answer["created_by"], answer["updated_by"]) == ("bob", "bob")
    assert (answer["total_executions"], answer["actual_success_rate"]) == (0, None)
    expected = {name: value for name, value in body.items() if name != "approved_at"}
    assert {name: answer[name] for name in expected} == expected

    row = await db.fetchrow(
        "SELECT * FROM remediation_workflows WHERE workflow_id = $1", workflow_id
    )
    assert row is not None
    assert orjson.loads(row["labels"]) == body["labels"]
    assert orjson.loads(row["custom_labels"]) == body["custom_labels"]
    assert orjson.loads(row["detected_labels"]) == body["detected_labels"]
    assert orjson.loads(row["parameters"]) == body["parameters"]
    assert (row["content"], row["content_hash"]) == (CONTENT, _sha256(CONTENT))
    assert row["is_latest_version"] is True
    assert row["approved_at"] == dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)
    assert row["expected_success_rate"] == 0.95
    # The answer is the stored row, read back: GET gives the very same body.
    assert (await _get(client, answer["workflow_id"])).json() == answer


async def test_optional_fields_default_and_unknown_fields_are_ignored(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = workflow_body(
        workflow_id=str(uuid.uuid4()),
        is_latest_version=False,
        previous_version="v0",
        total_executions=99,
        labels=with_labels(extra_label="ignored"),
        detected_labels={"gitOpsTool": None, "unknown": True},
    )
    answer = await _create(client, **{k: v for k, v in body.items() if k != "workflow_name"})
    assert answer["workflow_id"] != body["workflow_id"]
    assert answer["is_latest_version"] is True and answer["previous_version"] is None
    assert answer["total_executions"] == 0
    assert "extra_label" not in answer["labels"]
    assert (answer["custom_labels"], answer["detected_labels"]) == ({}, {})
    assert (answer["parameters"], answer["owner"], answer["created_by"]) == (None, None, None)


async def test_a_sent_content_hash_is_checked_and_stored_in_lowercase(
    client: httpx.AsyncClient,
) -> None:
    answer = await _create(client, content_hash=_sha256(CONTENT).upper())
    assert answer["content_hash"] == _sha256(CONTENT)


async def test_a_version_created_disabled_is_stamped_disabled(client: httpx.AsyncClient) -> None:
    answer = await _create(client, status="disabled", disabled_reason="not yet", disabled_by="h")
    assert (answer["status"], answer["disabled_reason"], answer["disabled_by"]) == (
        "disabled",
        "not yet",
        "h",
    )
    assert answer["disabled_at"] == answer["created_at"]
    assert answer["is_latest_version"] is True


REQUIRED = (
    "workflow_name", "version", "name", "description", "content", "execution_engine", "labels",
)  # fmt: skip
INVALID: list[Any] = [
    *(pytest.param({name: None}, name, "is required", id=f"missing-{name}") for name in REQUIRED),
    pytest.param({"workflow_name": "w" * 256}, "workflow_name", "at most 255", id="name-long"),
    pytest.param({"workflow_name": "a/b"}, "workflow_name", "'/'", id="name-slash"),
    pytest.param({"version": "v" * 51}, "version", "at most 50", id="version-long"),
    pytest.param({"name": "n" * 256}, "name", "at most 255", id="title-long"),
    pytest.param({"owner": "o" * 256}, "owner", "at most 255", id="owner-long"),
    pytest.param({"execution_engine": 7}, "execution_engine", "string", id="engine-number"),
    pytest.param({"content": "a\x00b"}, "content", "NUL", id="content-nul"),
    pytest.param({"maintainer": "bob"}, "maintainer", "email", id="maintainer-email"),
    pytest.param({"labels": ["OOMKilled"]}, "labels", "JSON object", id="labels-array"),
    pytest.param(
        {"labels": with_labels(signal_type=None)}, "labels.signal_type", "required", id="sig-none"
    ),
    pytest.param(
        {"labels": with_labels(signal_type="*")}, "labels.signal_type", "wildcard", id="sig-star"
    ),
    pytest.param(
        {"labels": with_labels(signal_type="OOM*")}, "labels.signal_type", "wildcard", id="sig-glob"
    ),
    pytest.param(
        {"labels": with_labels(severity="urgent")}, "labels.severity", "one of", id="severity"
    ),
    pytest.param(
        {"labels": with_labels(severity=None)}, "labels.severity", "required", id="severity-none"
    ),
    pytest.param(
        {"labels": with_labels(component=3)}, "labels.component", "string", id="component-number"
    ),
    pytest.param(
        {"labels": with_labels(component="c" * 256)},
        "labels.component",
        "at most 255",
        id="component-long",
    ),
    pytest.param(
        {"labels": with_labels(environment=[])}, "labels.environment", "non-empty", id="env-empty"
    ),
    pytest.param(
        {"labels": with_labels(environment="production")},
        "labels.environment",
        "non-empty array",
        id="env-string",
    ),
    pytest.param(
        {"labels": with_labels(environment=["production", "prod"])},
        "labels.environment[1]",
        "one of",
        id="env-item",
    ),
    pytest.param(
        {"labels": with_labels(priority="P5")}, "labels.priority", "one of", id="priority"
    ),
    pytest.param({"detected_labels": "yes"}, "detected_labels", "JSON object", id="detected-str"),
    pytest.param(
        {"detected_labels": {"gitOpsManaged": "yes"}},
        "detected_labels.gitOpsManaged",
        "boolean",
        id="detected-flag",
    ),
    pytest.param(
        {"detected_labels": {"gitOpsTool": "jenkins"}},
        "detected_labels.gitOpsTool",
        "argocd, flux, *",
        id="gitops-tool",
    ),
    pytest.param(
        {"detected_labels": {"serviceMesh": "consul"}},
        "detected_labels.serviceMesh",
        "istio, linkerd, *",
        id="service-mesh",
    ),
    pytest.param(
        {"detected_labels": {"failed_detections": ["gitOpsTool"]}},
        "detected_labels.failed_detections[0]",
        "one of",
        id="failed-detections",
    ),
    pytest.param({"custom_labels": ["team"]}, "custom_labels", "JSON object", id="custom-array"),
    pytest.param(
        {"custom_labels": {"team": "payments"}}, "custom_labels.team", "array", id="custom-value"
    ),
    pytest.param(
        {"custom_labels": {"team": ["ok", 1]}}, "custom_labels.team[1]", "string", id="custom-item"
    ),
    pytest.param({"custom_labels": {"": ["x"]}}, "custom_labels.", "empty", id="custom-key"),
    pytest.param({"content_hash": "abc"}, "content_hash", "64 hexadecimal", id="hash-short"),
    pytest.param(
        {"content_hash": _sha256("other content")}, "content_hash", "SHA-256", id="hash-mismatch"
    ),
    pytest.param({"parameters": [1, 2]}, "parameters", "JSON object", id="parameters-array"),
    pytest.param({"status": "retired"}, "status", "one of", id="status"),
    pytest.param(
        {"disabled_reason": "old"}, "disabled_reason", "only allowed", id="reason-when-active"
    ),
    pytest.param({"approved_at": "yesterday"}, "approved_at", "RFC 3339", id="approved-at"),
    pytest.param(
        {"expected_success_rate": 1.5}, "expected_success_rate", "between 0 and 1", id="rate-big"
    ),
    pytest.param(
        {"expected_success_rate": "high"}, "expected_success_rate", "number", id="rate-text"
    ),
    pytest.param(
        {"expected_duration_seconds": -1},
        "expected_duration_seconds",
        "between 0",
        id="duration-negative",
    ),
]


@pytest.mark.parametrize(("overrides", "field", "rule"), INVALID)
async def test_each_rule_answers_400_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    overrides: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    body = workflow_body(**overrides)
    response = await _post(client, body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert list(problem["field_errors"]) == [field]
    assert rule in problem["field_errors"][field]
    assert await _stored(db, body) == 0


async def test_every_broken_rule_is_reported_at_once(client: httpx.AsyncClient) -> None:
    response = await _post(client, {"labels": {"severity": "bad"}, "status": "gone"})
    assert response.status_code == 400
    assert set(response.json()["field_errors"]) == {
        "workflow_name", "version", "name", "description", "content", "execution_engine",
        "labels.signal_type", "labels.severity", "labels.component", "labels.environment",
        "labels.priority", "status",
    }  # fmt: skip


async def test_bodies_that_are_not_one_json_object_are_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = workflow_body()
    encoded = orjson.dumps(body)
    answers = [
        await _send(client, "POST", PATH, PATH, json=[body]),
        await _send(
            client,
            "POST",
            PATH,
            PATH,
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        await _send(
            client, "POST", PATH, PATH, content=encoded, headers={"content-type": "text/plain"}
        ),
        await _send(
            client,
            "POST",
            PATH,
            PATH,
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"content-type": "application/json"},
        ),
    ]
    assert [answer.status_code for answer in answers] == [400, 400, 415, 413]
    assert answers[0].json()["type"].endswith("/invalid-request")
    assert answers[1].json()["type"].endswith("/invalid-request")
    assert await _stored(db, body) == 0


# --- versions -------------------------------------------------------------------------------------


async def test_duplicate_name_and_version_answers_409_and_changes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = await _create(client)
    again = await _post(client, workflow_body(workflow_name=first["workflow_name"], name="other"))
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["type"].endswith("/conflict") and problem["instance"] == PATH
    assert first["workflow_name"] in problem["detail"] and "v1.0.0" in problem["detail"]
    rows = await db.fetch(
        "SELECT workflow_id, is_latest_version, name FROM remediation_workflows "
        "WHERE workflow_name = $1",
        first["workflow_name"],
    )
    # The first version is still the only one, still latest (the failed create rolled back).
    assert [tuple(row) for row in rows] == [(uuid.UUID(first["workflow_id"]), True, first["name"])]


async def test_a_new_version_becomes_latest_and_the_previous_stops_being_latest(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    v1 = await _create(client)
    name = v1["workflow_name"]
    v2 = await _create(client, workflow_name=name, version="v2.0.0", content=CONTENT + "# v2\n")
    v3 = await _create(client, workflow_name=name, version="v1.5.0")
    assert (v2["is_latest_version"], v2["previous_version"]) == (True, "v1.0.0")
    # The newest version is latest, whatever its version string says.
    assert (v3["is_latest_version"], v3["previous_version"]) == (True, "v2.0.0")
    old = (await _get(client, v1["workflow_id"])).json()
    assert old["is_latest_version"] is False
    assert old["content"] == CONTENT and old["content_hash"] == v1["content_hash"]
    latest = await db.fetch(
        "SELECT version FROM remediation_workflows WHERE workflow_name = $1 AND is_latest_version",
        name,
    )
    assert [row["version"] for row in latest] == ["v1.5.0"]


async def test_concurrent_new_versions_leave_exactly_one_latest(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    name = f"concurrent-{uuid.uuid4().hex[:8]}"
    bodies = [workflow_body(workflow_name=name, version=f"v{i}.0.0") for i in range(10)]
    answers = await asyncio.gather(*(client.post(PATH, json=body) for body in bodies))
    assert [answer.status_code for answer in answers] == [201] * 10
    rows = await db.fetch(
        "SELECT version, is_latest_version, previous_version FROM remediation_workflows "
        "WHERE workflow_name = $1 ORDER BY created_at",
        name,
    )
    assert len(rows) == 10
    assert [row["is_latest_version"] for row in rows] == [False] * 9 + [True]
    # The creates were serialised: each version names the one created just before it.
    assert [row["previous_version"] for row in rows] == [None] + [r["version"] for r in rows[:-1]]


async def test_concurrent_duplicates_store_one_version(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = workflow_body()
    answers = await asyncio.gather(*(client.post(PATH, json=body) for _ in range(6)))
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * 5
    assert await _stored(db, body) == 1


async def test_the_database_itself_allows_one_latest_version_per_name(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    v1 = await _create(client)
    await _create(client, workflow_name=v1["workflow_name"], version="v2")
    with pytest.raises(asyncpg.UniqueViolationError, match="remediation_workflows_latest_idx"):
        await db.execute(
            "UPDATE remediation_workflows SET is_latest_version = true WHERE workflow_id = $1",
            uuid.UUID(v1["workflow_id"]),
        )


async def test_versions_are_listed_newest_first_and_unknown_names_are_404(
    client: httpx.AsyncClient,
) -> None:
    v1 = await _create(client)
    name = v1["workflow_name"]
    v2 = await _create(client, workflow_name=name, version="v2")
    v3 = await _create(client, workflow_name=name, version="v0.9")
    response = await _versions(client, name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["workflow_name"], body["total"]) == (name, 3)
    assert [item["workflow_id"] for item in body["versions"]] == [
        v3["workflow_id"], v2["workflow_id"], v1["workflow_id"],
    ]  # fmt: skip
    assert [item["is_latest_version"] for item in body["versions"]] == [True, False, False]
    for unknown in (f"nothing-{uuid.uuid4().hex}", "x" * 300):
        missing = await _versions(client, unknown)
        assert missing.status_code == 404, missing.text
        assert missing.json()["type"].endswith("/not-found")


# --- read -----------------------------------------------------------------------------------------


async def test_get_answers_400_for_a_non_uuid_and_404_for_an_unknown_id(
    client: httpx.AsyncClient,
) -> None:
    bad = await _get(client, "not-a-uuid")
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/validation-error")
    assert list(bad.json()["field_errors"]) == ["workflow_id"]
    missing = await _get(client, str(uuid.uuid4()))
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/not-found")


async def test_list_filters_and_pages_newest_first(client: httpx.AsyncClient) -> None:
    signal = f"Signal-{uuid.uuid4().hex[:8]}"
    a = await _create(client, labels=with_labels(signal_type=signal, environment=["production"]))
    b = await _create(
        client,
        labels=with_labels(signal_type=signal, environment=["staging", "test"], priority="P2"),
    )
    c = await _create(
        client, labels=with_labels(signal_type=signal, environment=["*"], component="node")
    )
    await _patch(client, b["workflow_id"], "/disable")
    ids = {"a": a["workflow_id"], "b": b["workflow_id"], "c": c["workflow_id"]}

    async def listed(**params: Any) -> list[str]:
        response = await _list(client, signal_type=signal, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["workflows"]) or "limit" in params
        return [next(k for k, v in ids.items() if v == w["workflow_id"]) for w in body["workflows"]]

    assert await listed() == ["c", "b", "a"]
    assert await listed(environment="staging") == ["b"]
    assert await listed(environment="*") == ["c"]
    assert await listed(priority="P2") == ["b"]
    assert await listed(component="node") == ["c"]
    assert await listed(status="disabled") == ["b"]
    assert await listed(status="active", environment="production") == ["a"]
    assert await listed(workflow_name=a["workflow_name"]) == ["a"]
    assert await listed(environment="development") == []
    page = (await _list(client, signal_type=signal, limit=2, offset=1)).json()
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 3)
    assert [w["workflow_id"] for w in page["workflows"]] == [ids["b"], ids["a"]]
    default = (await _list(client, signal_type=signal)).json()
    assert (default["limit"], default["offset"]) == (rest.LIST_LIMIT_DEFAULT, 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"limit": "0"}, "limit", id="limit-zero"),
        pytest.param({"limit": "1001"}, "limit", id="limit-over"),
        pytest.param({"limit": "ten"}, "limit", id="limit-text"),
        pytest.param({"offset": "-1"}, "offset", id="offset-negative"),
        pytest.param({"status": "gone"}, "status", id="status"),
        pytest.param({"priority": "P9"}, "priority", id="priority"),
        pytest.param({"environment": "prod"}, "environment", id="environment"),
        pytest.param({"component": "c" * 256}, "component", id="component-long"),
    ],
)
async def test_list_parameters_out_of_bounds_are_400(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await _list(client, **params)
    assert response.status_code == 400, response.text
    assert list(response.json()["field_errors"]) == [field]


async def test_list_limit_bounds_are_inclusive(client: httpx.AsyncClient) -> None:
    for limit in ("1", "1000"):
        response = await _list(client, limit=limit)
        assert response.status_code == 200, response.text
        assert response.json()["limit"] == int(limit)


# --- mutable and immutable fields -----------------------------------------------------------------


async def test_patching_an_immutable_field_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await _create(client)
    workflow_id = created["workflow_id"]
    changes = {
        "description": "new", "content": "new", "labels": with_labels(severity="low"),
        "custom_labels": {"a": ["b"]}, "detected_labels": {"stateful": True},
        "workflow_name": "renamed", "version": "v9",
    }  # fmt: skip
    for field, value in changes.items():
        response = await _patch(client, workflow_id, json={field: value, "status": "disabled"})
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["type"].endswith("/immutable-field-violation")
        assert list(problem["field_errors"]) == [field]
    everything = await _patch(client, workflow_id, json=changes)
    assert set(everything.json()["field_errors"]) == set(changes)
    assert (await _get(client, workflow_id)).json() == created
    status = await db.fetchval(
        "SELECT status FROM remediation_workflows WHERE workflow_id = $1", uuid.UUID(workflow_id)
    )
    assert status == "active"


async def test_patch_changes_status_with_reason_actor_and_timestamps(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await _create(client)
    workflow_id = created["workflow_id"]
    disabled = await _patch(
        client,
        workflow_id,
        json={"status": "disabled", "disabled_by": "carol", "disabled_reason": "flaky"},
    )
    assert disabled.status_code == 200, disabled.text
    body = disabled.json()
    assert (body["status"], body["disabled_by"], body["disabled_reason"]) == (
        "disabled", "carol", "flaky",
    )  # fmt: skip
    assert body["disabled_at"] is not None and body["updated_by"] == "carol"
    assert body["updated_at"] > created["updated_at"]
    assert body["created_at"] == created["created_at"]

    # Without `status` the status stays; a new reason replaces the old, the stamp stays.
    reworded = (await _patch(client, workflow_id, json={"disabled_reason": "very flaky"})).json()
    assert (reworded["status"], reworded["disabled_reason"]) == ("disabled", "very flaky")
    assert (reworded["disabled_at"], reworded["disabled_by"]) == (body["disabled_at"], "carol")

    deprecated = await _patch(client, workflow_id, json={"status": "deprecated", "updated_by": "d"})
    body = deprecated.json()
    assert (body["status"], body["updated_by"]) == ("deprecated", "d")
    assert (body["disabled_at"], body["disabled_by"], body["disabled_reason"]) == (None,) * 3
    row = await db.fetchrow(
        "SELECT status, disabled_at, updated_by FROM remediation_workflows WHERE workflow_id = $1",
        uuid.UUID(workflow_id),
    )
    assert row is not None and tuple(row) == ("deprecated", None, "d")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "body", id="empty"),
        pytest.param({"owner": "someone"}, "body", id="nothing-mutable"),
        pytest.param({"status": "gone"}, "status", id="bad-status"),
        pytest.param({"status": "active", "disabled_reason": "x"}, "disabled_reason", id="reason"),
        pytest.param({"disabled_by": "x"}, "disabled_by", id="by-while-active"),
    ],
)
async def test_invalid_patches_are_400_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    created = await _create(client)
    response = await _patch(client, created["workflow_id"], json=body)
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/validation-error")
    assert list(response.json()["field_errors"]) == [field]
    assert (await _get(client, created["workflow_id"])).json() == created


async def test_disable_and_enable(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    created = await _create(client)
    workflow_id = created["workflow_id"]
    disabled = await _patch(
        client, workflow_id, "/disable", json={"reason": "broken", "updated_by": "erin"}
    )
    assert disabled.status_code == 200, disabled.text
    body = disabled.json()
    assert (body["status"], body["disabled_reason"], body["disabled_by"]) == (
        "disabled", "broken", "erin",
    )  # fmt: skip
    assert body["disabled_at"] is not None and body["updated_by"] == "erin"

    again = await _patch(client, workflow_id, "/disable")  # no body at all
    assert again.status_code == 200, again.text
    assert again.json()["disabled_at"] == body["disabled_at"]
    assert again.json()["disabled_reason"] == "broken"

    enabled = await _patch(client, workflow_id, "/enable", json={"updated_by": "frank"})
    assert enabled.status_code == 200, enabled.text
    body = enabled.json()
    assert (body["status"], body["updated_by"]) == ("active", "frank")
    assert (body["disabled_at"], body["disabled_by"], body["disabled_reason"]) == (None,) * 3
    row = await db.fetchrow(
        "SELECT status, disabled_at FROM remediation_workflows WHERE workflow_id = $1",
        uuid.UUID(workflow_id),
    )
    assert row is not None and tuple(row) == ("active", None)


async def test_status_routes_answer_400_404_415(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    for suffix in ("", "/disable", "/enable"):
        unknown = await _patch(client, str(uuid.uuid4()), suffix, json={"status": "archived"})
        assert unknown.status_code == 404, (suffix, unknown.text)
        not_uuid = await _patch(client, "nope", suffix, json={"status": "archived"})
        assert not_uuid.status_code == 400, (suffix, not_uuid.text)
        as_text = await _patch(
            client,
            created["workflow_id"],
            suffix,
            content=b"{}",
            headers={"content-type": "text/plain"},
        )
        assert as_text.status_code == 415, (suffix, as_text.text)
        array = await _patch(client, created["workflow_id"], suffix, json=["x"])
        assert array.json()["type"].endswith("/invalid-request"), (suffix, array.text)
    long_reason = await _patch(
        client, created["workflow_id"], "/disable", json={"reason": "r" * (rules.TEXT_MAX + 1)}
    )
    assert list(long_reason.json()["field_errors"]) == ["reason"]
    assert (await _get(client, created["workflow_id"])).json() == created


async def test_routes_with_fixed_segments_are_not_taken_for_an_id(
    client: httpx.AsyncClient,
) -> None:
    created = await _create(client)
    response = await _versions(client, created["workflow_name"])
    assert response.status_code == 200
    paths = [getattr(route, "path", "") for route in rest.routes()]
    by_name = paths.index(PATH + "/by-name/{workflow_name}/versions")
    assert all(by_name < index for index, path in enumerate(paths) if "{workflow_id}" in path)


# --- search support -------------------------------------------------------------------------------


async def test_latest_workflows_for_search_reads_every_latest_version(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    v1 = await _create(client, custom_labels={"team": ["a"]})
    v2 = await _create(
        client, workflow_name=v1["workflow_name"], version="v2", detected_labels={"stateful": True}
    )
    other = await _create(client)
    await _patch(client, other["workflow_id"], "/disable")
    rows = await latest_workflows_for_search(app.state.services.database.pool)
    by_id = {str(row.workflow_id): row for row in rows}
    assert v1["workflow_id"] not in by_id
    assert all(row.is_latest_version for row in rows)
    latest = by_id[v2["workflow_id"]]
    assert (latest.workflow_name, latest.version, latest.status) == (
        v1["workflow_name"],
        "v2",
        "active",
    )
    assert latest.labels == v2["labels"] and latest.detected_labels == {"stateful": True}
    assert latest.custom_labels == {}
    assert by_id[other["workflow_id"]].status == "disabled"


# --- GraphQL --------------------------------------------------------------------------------------

WORKFLOW_FIELDS = """
    workflowId workflowName version name description owner maintainer content contentHash
    parameters executionEngine containerImage containerDigest labels customLabels detectedLabels
    status disabledAt disabledBy disabledReason isLatestVersion previousVersion deprecationNotice
    versionNotes changeSummary approvedBy approvedAt expectedSuccessRate expectedDurationSeconds
    actualSuccessRate totalExecutions successfulExecutions createdAt createdBy updatedAt updatedBy
"""
CREATE = f"""
  mutation Create($input: WorkflowInput!) {{
    createWorkflow(input: $input) {{
      __typename
      ... on WorkflowCreated {{ workflow {{ {WORKFLOW_FIELDS} }} }}
      ... on WorkflowAlreadyExists {{ message workflowName version }}
      ... on ValidationFailed {{ message fieldErrors {{ field message }} }}
    }}
  }}
"""
UPDATE_STATUS = """
  mutation Status($id: ID!, $status: WorkflowStatus!, $reason: String, $by: String) {
    updateWorkflowStatus(workflowId: $id, status: $status, reason: $reason, updatedBy: $by) {
      __typename
      ... on WorkflowUpdated { workflow { workflowId status disabledAt disabledBy disabledReason
                                          deprecationNotice updatedBy } }
      ... on NotFound { message }
      ... on ValidationFailed { fieldErrors { field message } }
    }
  }
"""


def graphql_input(body: dict[str, Any]) -> dict[str, Any]:
    """A REST create body as GraphQL input: camelCase names, enum names."""
    values: dict[str, Any] = {}
    for name, value in body.items():
        head, *rest_words = name.split("_")
        values[head + "".join(word.capitalize() for word in rest_words)] = value
    labels = dict(body["labels"])
    values["labels"] = {
        "signalType": labels["signal_type"],
        "severity": Severity(labels["severity"]).name,
        "component": labels["component"],
        "environment": labels["environment"],
        "priority": Priority(labels["priority"]).name,
    }
    if "status" in body:
        values["status"] = body["status"].upper()
    return values


async def _graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _graphql_create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await _graphql(client, CREATE, {"input": graphql_input(body)})
    assert "errors" not in answer, answer
    result: dict[str, Any] = answer["data"]["createWorkflow"]
    return result


async def test_graphql_creates_and_reports_typed_errors(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = workflow_body(
        parameters={"x": 1},
        custom_labels={"team": ["payments"]},
        detected_labels={"gitOpsManaged": True, "serviceMesh": "istio"},
        labels=with_labels(severity="*", priority="*", environment=["*"]),
    )
    graphql_body = graphql_input(body)
    graphql_body["detectedLabels"] = {"gitOpsManaged": True, "serviceMesh": "istio"}
    answer = await _graphql(client, CREATE, {"input": graphql_body})
    result = answer["data"]["createWorkflow"]
    assert result["__typename"] == "WorkflowCreated", answer
    stored = result["workflow"]
    assert (stored["status"], stored["isLatestVersion"]) == ("ACTIVE", True)
    assert stored["labels"] == body["labels"] and stored["parameters"] == {"x": 1}
    assert stored["detectedLabels"] == body["detected_labels"]
    assert stored["contentHash"] == _sha256(CONTENT)
    assert await _stored(db, body) == 1

    again = await _graphql_create(client, body)
    assert again["__typename"] == "WorkflowAlreadyExists", again
    assert (again["workflowName"], again["version"]) == (body["workflow_name"], "v1.0.0")

    invalid = workflow_body(
        labels=with_labels(signal_type="*", environment=["moon"]),
        content_hash="0" * 64,
        custom_labels={"team": "payments"},
    )
    result = await _graphql_create(client, invalid)
    assert result["__typename"] == "ValidationFailed", result
    assert {error["field"] for error in result["fieldErrors"]} == {
        "labels.signalType", "labels.environment[0]", "contentHash", "customLabels.team",
    }  # fmt: skip
    assert await _stored(db, invalid) == 0


async def test_graphql_reads_match_rest(client: httpx.AsyncClient) -> None:
    v1 = await _create(
        client,
        owner="o",
        maintainer="m@example.com",
        parameters={"a": [1, 2]},
        custom_labels={"k": ["v", "*"]},
        detected_labels={"hpaEnabled": True, "gitOpsTool": "*"},
        approved_at="2026-01-02T03:04:05.123456Z",
        expected_success_rate=0.5,
        expected_duration_seconds=30,
    )
    await _patch(client, v1["workflow_id"], json={"status": "disabled", "disabled_reason": "r"})
    rest_body = (await _get(client, v1["workflow_id"])).json()
    query = f"query One($id: ID!) {{ workflow(workflowId: $id) {{ {WORKFLOW_FIELDS} }} }}"
    answer = await _graphql(client, query, {"id": v1["workflow_id"]})
    graphql_body = answer["data"]["workflow"]
    for name, value in rest_body.items():
        head, *words = name.split("_")
        mirrored = graphql_body[head + "".join(word.capitalize() for word in words)]
        if name.endswith("_at") and value is not None:
            assert dt.datetime.fromisoformat(mirrored) == dt.datetime.fromisoformat(value), name
        elif name == "status":
            assert mirrored == value.upper()
        else:
            assert mirrored == value, name

    missing = await _graphql(client, query, {"id": str(uuid.uuid4())})
    assert missing["data"]["workflow"] is None
    bad = await _graphql(client, query, {"id": "nope"})
    assert "workflowId" in bad["errors"][0]["message"]


async def test_graphql_versions_and_connection(client: httpx.AsyncClient) -> None:
    signal = f"Gql-{uuid.uuid4().hex[:8]}"
    v1 = await _create(client, labels=with_labels(signal_type=signal))
    name = v1["workflow_name"]
    v2 = await _create(
        client, workflow_name=name, version="v2", labels=with_labels(signal_type=signal)
    )
    other = await _create(client, labels=with_labels(signal_type=signal, priority="P3"))
    versions = await _graphql(
        client,
        "query V($n: String!) { workflowVersions(workflowName: $n) { workflowId isLatestVersion } }",
        {"n": name},
    )
    assert versions["data"]["workflowVersions"] == [
        {"workflowId": v2["workflow_id"], "isLatestVersion": True},
        {"workflowId": v1["workflow_id"], "isLatestVersion": False},
    ]
    empty = await _graphql(client, '{ workflowVersions(workflowName: "none-such") { version } }')
    assert empty["data"]["workflowVersions"] == []

    page_query = """
      query Page($filter: WorkflowFilter, $first: Int, $after: String) {
        workflows(filter: $filter, first: $first, after: $after) {
          totalCount edges { cursor node { workflowId } } pageInfo { hasNextPage endCursor }
        }
      }
    """
    seen: list[str] = []
    after = None
    while True:
        answer = await _graphql(
            client, page_query, {"filter": {"signalType": signal}, "first": 2, "after": after}
        )
        connection = answer["data"]["workflows"]
        assert connection["totalCount"] == 3
        seen += [edge["node"]["workflowId"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    rest_order = (await _list(client, signal_type=signal)).json()["workflows"]
    assert seen == [item["workflow_id"] for item in rest_order]
    assert seen == [other["workflow_id"], v2["workflow_id"], v1["workflow_id"]]

    filtered = await _graphql(
        client, page_query, {"filter": {"signalType": signal, "priority": "P3", "status": "ACTIVE"}}
    )
    assert [e["node"]["workflowId"] for e in filtered["data"]["workflows"]["edges"]] == [
        other["workflow_id"]
    ]
    too_many = await _graphql(client, page_query, {"first": 501})
    assert "500" in too_many["errors"][0]["message"]
    bad_cursor = await _graphql(client, page_query, {"after": "nope"})
    assert "after" in bad_cursor["errors"][0]["message"]
    bad_filter = await _graphql(client, page_query, {"filter": {"environment": "moon"}})
    assert "filter.environment" in bad_filter["errors"][0]["message"]


async def test_graphql_update_status(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    created = await _create(client)
    variables = {"id": created["workflow_id"], "status": "DISABLED", "reason": "why", "by": "gil"}
    answer = await _graphql(client, UPDATE_STATUS, variables)
    result = answer["data"]["updateWorkflowStatus"]
    assert result["__typename"] == "WorkflowUpdated", answer
    workflow = result["workflow"]
    assert (workflow["status"], workflow["disabledReason"], workflow["disabledBy"]) == (
        "DISABLED", "why", "gil",
    )  # fmt: skip
    assert workflow["disabledAt"] is not None and workflow["updatedBy"] == "gil"

    deprecated = await _graphql(
        client, UPDATE_STATUS, {**variables, "status": "DEPRECATED", "reason": "use v2"}
    )
    workflow = deprecated["data"]["updateWorkflowStatus"]["workflow"]
    assert (workflow["status"], workflow["deprecationNotice"], workflow["disabledAt"]) == (
        "DEPRECATED", "use v2", None,
    )  # fmt: skip
    # The same row REST reads.
    assert (await _get(client, created["workflow_id"])).json()["status"] == "deprecated"

    missing = await _graphql(client, UPDATE_STATUS, {**variables, "id": str(uuid.uuid4())})
    assert missing["data"]["updateWorkflowStatus"]["__typename"] == "NotFound"
    bad_id = await _graphql(client, UPDATE_STATUS, {**variables, "id": "nope"})
    result = bad_id["data"]["updateWorkflowStatus"]
    assert result["__typename"] == "ValidationFailed"
    assert result["fieldErrors"][0]["field"] == "workflowId"
    long_actor = await _graphql(client, UPDATE_STATUS, {**variables, "by": "x" * 256})
    result = long_actor["data"]["updateWorkflowStatus"]
    assert [error["field"] for error in result["fieldErrors"]] == ["updatedBy"]


def test_graphql_enums_are_the_domain_values() -> None:
    assert [item.value for item in GraphQLStatus] == [item.value for item in WorkflowStatus]
    assert [item.value for item in Severity] == list(rules.SEVERITIES)
    assert [item.value for item in Priority] == list(rules.PRIORITIES)


def test_documented_rules_are_the_coded_ones() -> None:
    schemas = SPEC["components"]["schemas"]
    request = schemas["WorkflowRequest"]["properties"]
    assert set(schemas["WorkflowRequest"]["required"]) == set(REQUIRED)
    for name, max_len in rules.MAX_LENGTHS.items():
        if name in request:
            assert request[name]["maxLength"] == max_len, name
    assert request["content"]["maxLength"] == rules.CONTENT_MAX
    assert request["description"]["maxLength"] == rules.TEXT_MAX
    assert request["status"]["enum"][:-1] == list(rules.STATUSES)
    labels = schemas["MandatoryLabels"]["properties"]
    assert labels["severity"]["enum"] == list(rules.SEVERITIES)
    assert labels["priority"]["enum"] == list(rules.PRIORITIES)
    assert labels["environment"]["items"]["enum"] == list(rules.ENVIRONMENTS)
    detected = schemas["DetectedLabels"]["properties"]
    assert detected["gitOpsTool"]["enum"] == list(rules.GITOPS_TOOLS)
    assert detected["serviceMesh"]["enum"] == list(rules.SERVICE_MESHES)
    assert detected["failed_detections"]["items"]["enum"] == list(rules.FAILED_DETECTIONS)
    assert {n for n, p in detected.items() if p.get("type") == "boolean"} == set(
        rules.DETECTED_FLAGS
    )
    parameters = {p["name"]: p["schema"] for p in SPEC["paths"][PATH]["get"]["parameters"]}
    assert set(parameters) == {*rest.FILTER_PARAMS, "limit", "offset"}
    assert parameters["limit"]["maximum"] == rest.LIST_LIMIT_MAX
    assert parameters["limit"]["default"] == rest.LIST_LIMIT_DEFAULT
    assert parameters["status"]["enum"] == list(rules.STATUSES)
    stored = schemas["RemediationWorkflow"]
    assert set(stored["required"]) == set(stored["properties"])


# --- PostgreSQL unavailable -----------------------------------------------------------------------


async def test_unavailable_database_answers_503_with_retry_after(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with running(app) as client:
        created = await _create(client)
        await app.state.services.database.pool.close()
        answers = [
            await _post(client, workflow_body()),
            await _list(client),
            await _get(client, created["workflow_id"]),
            await _versions(client, created["workflow_name"]),
            await _patch(client, created["workflow_id"], "/disable"),
        ]
        for response in answers:
            assert response.status_code == 503, response.text
            assert response.json()["type"].endswith("/service-unavailable")
            assert int(response.headers["retry-after"]) >= 1
            assert "asyncpg" not in response.text and "pool" not in response.text
        _assert_every_answer_declared(app, SPEC)


def test_every_answer_of_the_session_app_is_declared(app: Starlette) -> None:
    # Runs last in this module: covers every workflow request the tests above sent.
    _assert_every_answer_declared(app, SPEC)
