"""Workflow catalog files: YAML or JSON holding create bodies, read by import, written by export.

A file holds one workflow (a create body as `POST /api/v1/workflows` takes), a list of them, or a
mapping with a `workflows` list; a YAML file may hold several documents, each of these shapes.
Export writes `{"workflows": [...]}` with only the fields a create body takes, so what it writes
imports as it is.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import yaml

from datastorage.domain import WorkflowRecord
from datastorage.resolvers.validation import json_type

# libyaml's parser and emitter when PyYAML has them: the same safe constructors and representers
# as yaml.safe_load / safe_dump, 4-6 times faster on a catalog of thousands of workflows.
try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
# The create body's fields, in the order of the legacy RemediationWorkflow. Left out: what the
# server assigns (workflow_id, disabled_at, is_latest_version, previous_version, the execution
# statistics, created_at, updated_at/_by).
CREATE_FIELDS = (
    "workflow_name", "version", "name", "description", "owner", "maintainer", "content",
    "content_hash", "parameters", "execution_engine", "container_image", "container_digest",
    "labels", "custom_labels", "detected_labels", "status", "disabled_by", "disabled_reason",
    "deprecation_notice", "version_notes", "change_summary", "approved_by", "approved_at",
    "expected_success_rate", "expected_duration_seconds", "created_by",
)  # fmt: skip


class WorkflowFileError(Exception):
    """A file that cannot be read as workflows at all (the message does not repeat its name)."""


def file_format(path: Path) -> str | None:
    """`yaml` or `json` by the file's extension; None for any other."""
    return FORMATS.get(path.suffix.lower())


def read_workflow_file(path: Path) -> list[Any]:
    """The workflows of a file, in file order, each as parsed (validation is the importer's)."""
    kind = file_format(path)
    if kind is None:
        raise WorkflowFileError("is neither YAML (.yaml, .yml) nor JSON (.json)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkflowFileError(f"cannot be read: {exc.strerror or exc}") from None
    documents = _yaml_documents(raw) if kind == "yaml" else [_json_document(raw)]
    if not documents:
        raise WorkflowFileError("holds no workflows (it is empty)")
    workflows: list[Any] = []
    for number, document in enumerate(documents, 1):
        where = f"document {number}: " if len(documents) > 1 else ""
        workflows.extend(_workflows_in(document, where))
    return workflows


def _yaml_documents(raw: bytes) -> list[Any]:
    try:
        # Empty documents (a leading or trailing `---`) hold nothing.
        documents = yaml.load_all(raw, Loader=_SafeLoader)
        return [_as_json(doc) for doc in documents if doc is not None]
    except yaml.YAMLError as exc:
        raise WorkflowFileError(f"is not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return str(exc).splitlines()[0]


def _as_json(value: Any) -> Any:
    """YAML values as the JSON body would carry them: dates as their RFC 3339 text (JSON has no
    dates, and `approved_at: 2026-01-05T10:00:00Z` is a date to YAML), keys as strings."""
    if isinstance(value, dict):
        return {_key(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, dt.date):
        return key.isoformat()
    return orjson.dumps(key).decode()  # 1, true, null, 1.5: written as JSON writes them


def _json_document(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WorkflowFileError(f"is not valid JSON: {exc}") from None


def _workflows_in(document: Any, where: str) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "workflows" not in document:
            return [document]
        listed = document["workflows"]
        if not isinstance(listed, list):
            raise WorkflowFileError(f"{where}`workflows` must be a list, got {json_type(listed)}")
        return listed
    raise WorkflowFileError(
        f"{where}must hold a workflow (a mapping), a list of workflows, or a mapping with a "
        f"`workflows` list; got {json_type(document)}"
    )


def export_body(record: WorkflowRecord) -> dict[str, Any]:
    """The create body that stores this version again; unset fields are left out."""
    body: dict[str, Any] = {}
    for field in CREATE_FIELDS:
        value = getattr(record, field)
        if value is not None:
            body[field] = _rfc3339(value) if isinstance(value, dt.datetime) else value
    return body


def _rfc3339(value: dt.datetime) -> str:
    # As the REST API writes timestamps: UTC with a Z.
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def dump_workflows(bodies: list[dict[str, Any]], kind: str) -> bytes:
    """The export file: `{"workflows": [...]}` as YAML or JSON."""
    document = {"workflows": bodies}
    if kind == "json":
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text.encode()


class _Dumper(_SafeDumper):
    """safe_dump, with multi-line text (a workflow's content) as a literal block."""


def _text(dumper: _SafeDumper, value: str) -> yaml.ScalarNode:
    # The emitter falls back to a quoted scalar where a block cannot hold the text exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)
