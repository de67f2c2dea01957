"""Workflow catalog files: the shapes import reads, and export writing what import reads back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from datastorage.domain import WorkflowRecord
from datastorage.resolvers.workflow_files import (
    CREATE_FIELDS,
    WorkflowFileError,
    dump_workflows,
    export_body,
    read_workflow_file,
)
from datastorage.resolvers.workflow_validation import validate_workflow

LABELS = {
    "signal_type": "OOMKilled",
    "severity": "critical",
    "component": "pod",
    "environment": ["production"],
    "priority": "P0",
}


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shape_of_every_document_is_read_in_order(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "c.YML",
        "---\nworkflow_name: a\n---\n- workflow_name: b\n- workflow_name: c\n---\n"
        "workflows:\n  - workflow_name: d\n---\n",
    )
    assert read_workflow_file(path) == [{"workflow_name": n} for n in "abcd"]
    json_list = _file(tmp_path, "l.json", '[{"workflow_name": "a"}, 7]')
    assert read_workflow_file(json_list) == [{"workflow_name": "a"}, 7]  # 7: the importer's error
    assert read_workflow_file(_file(tmp_path, "e.json", '{"workflows": []}')) == []


def test_yaml_dates_and_keys_arrive_as_json_would_carry_them(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "w.yaml",
        "approved_at: 2026-01-05T10:00:00Z\nversion: 2026-01-05\nparameters: {1: x, false: y, null: z, 2.5: w}\n",
    )
    [body] = read_workflow_file(path)
    assert body["approved_at"] == "2026-01-05T10:00:00+00:00"
    assert body["version"] == "2026-01-05"
    assert body["parameters"] == {"1": "x", "false": "y", "null": "z", "2.5": "w"}


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("empty.yaml", "", "holds no workflows (it is empty)"),
        ("only-separators.yaml", "---\n---\n", "holds no workflows (it is empty)"),
        ("scalar.json", "42", "must hold a workflow (a mapping), a list of workflows"),
        ("wrapped.yaml", "workflows: {a: 1}", "`workflows` must be a list, got object"),
        ("second.yaml", "a: 1\n---\nplain text\n", "document 2: must hold a workflow"),
        ("flow.yaml", "a: [1,\nb: 2\n", "is not valid YAML: line 3, column 1: "),
        ("tabs.yaml", "a:\n\t- b\n", "is not valid YAML: line 2, column 1: "),
        ("cut.json", '{"workflows": [', "is not valid JSON: "),
        ("bytes.yaml", "\udcff", "is not valid YAML: "),
        ("notes.txt", "{}", "is neither YAML (.yaml, .yml) nor JSON (.json)"),
    ],
)
def test_files_that_hold_no_workflows_are_refused_naming_why(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode(errors="surrogateescape"))
    with pytest.raises(WorkflowFileError) as raised:
        read_workflow_file(path)
    assert problem in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFileError, match="cannot be read: No such file or directory"):
        read_workflow_file(tmp_path / "absent.yaml")


def _record(**changes: Any) -> WorkflowRecord:
    now = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    record = WorkflowRecord(
        workflow_id=uuid.uuid4(), workflow_name="oomkill", version="v2", name="Raise memory",
        description="Raises the limit.", owner="sre", maintainer="sre@example.com",
        content="kind: Pipeline\nspec:\n  steps: []\n", content_hash="0" * 64,
        parameters={"limits": {"max": "8Gi"}}, execution_engine="tekton",
        container_image="ghcr.io/x/oomkill:v2", container_digest="sha256:" + "a" * 64,
        labels=LABELS, custom_labels={"team": ["payments", "*"]},
        detected_labels={"gitOpsManaged": True, "gitOpsTool": "argocd"}, status="disabled",
        disabled_at=now, disabled_by="alice", disabled_reason="flaky", is_latest_version=True,
        previous_version="v1", deprecation_notice=None, version_notes="faster",
        change_summary="steps", approved_by="bob", approved_at=now, expected_success_rate=0.9,
        expected_duration_seconds=120, actual_success_rate=0.5, total_executions=4,
        successful_executions=2, created_at=now, created_by="carol", updated_at=now,
        updated_by="dave",
    )  # fmt: skip
    return dataclasses.replace(record, **changes)


def test_export_leaves_out_exactly_what_the_server_assigns() -> None:
    server_assigned = {field.name for field in dataclasses.fields(WorkflowRecord)} - set(
        CREATE_FIELDS
    )
    assert server_assigned == {
        "workflow_id", "disabled_at", "is_latest_version", "previous_version",
        "actual_success_rate", "total_executions", "successful_executions", "created_at",
        "updated_at", "updated_by",
    }  # fmt: skip
    body = export_body(_record())
    assert set(body) == set(CREATE_FIELDS) - {"deprecation_notice"}  # None is left out
    assert body["approved_at"] == "2026-03-01T12:30:15.123456Z"


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_an_export_reads_back_as_the_bodies_that_create_the_same_versions(
    tmp_path: Path, kind: str
) -> None:
    content = "kind: Pipeline\nspec:\n  steps: []\n"
    record = _record(content=content, content_hash=hashlib.sha256(content.encode()).hexdigest())
    plain = _record(
        workflow_name="tricky", status="active", disabled_by=None, disabled_reason=None,
        content="line with trailing space \n\ttab\n", description="yes", version="1.10",
    )  # fmt: skip
    plain = dataclasses.replace(
        plain, content_hash=hashlib.sha256(plain.content.encode()).hexdigest()
    )
    bodies = [export_body(record), export_body(plain)]
    path = tmp_path / f"catalog.{kind}"
    path.write_bytes(dump_workflows(bodies, kind))
    assert read_workflow_file(path) == bodies
    for original, body in zip((record, plain), read_workflow_file(path), strict=True):
        created = validate_workflow(body)
        for field in CREATE_FIELDS:
            assert getattr(created, field) == getattr(original, field), field
