"""Workflow catalog rules, shared by REST and GraphQL: the record, its labels, PATCH bodies and
status changes. Pure functions; every broken rule is named by its field path
(`labels.severity`, `labels.environment[1]`, `custom_labels.team[0]`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import uuid_utils.compat as uuid_utils

from datastorage.domain import NewWorkflow, WorkflowStatus
from datastorage.resolvers.audit_queries import text_problem
from datastorage.resolvers.errors import ImmutableFieldViolation, InvalidRequest, ValidationFailed
from datastorage.resolvers.validation import (
    FieldErrors,
    TextReader,
    choice_field,
    int_field,
    json_type,
    parse_rfc3339,
    preview,
)

WILDCARD = "*"
STATUSES = tuple(status.value for status in WorkflowStatus)
SEVERITIES = ("critical", "high", "medium", "low", WILDCARD)
PRIORITIES = ("P0", "P1", "P2", "P3", WILDCARD)
ENVIRONMENTS = ("production", "staging", "development", "test", WILDCARD)
GITOPS_TOOLS = ("argocd", "flux", WILDCARD)
SERVICE_MESHES = ("istio", "linkerd", WILDCARD)
DETECTED_FLAGS = (
    "gitOpsManaged", "pdbProtected", "hpaEnabled", "stateful", "helmManaged", "networkIsolated",
)  # fmt: skip
FAILED_DETECTIONS = (*DETECTED_FLAGS, "serviceMesh")
# Column sizes of remediation_workflows.
MAX_LENGTHS = {
    "workflow_name": 255,
    "version": 50,
    "name": 255,
    "owner": 255,
    "maintainer": 255,
    "execution_engine": 50,
    "container_image": 512,
    "container_digest": 100,
    "approved_by": 255,
    "created_by": 255,
    "disabled_by": 255,
    "updated_by": 255,
}
# `text` columns: bounded so one field cannot take the whole body limit by accident.
TEXT_MAX = 65_536
_NOTES = ("deprecation_notice", "version_notes", "change_summary")
_OPTIONAL_TEXT = (
    "owner", "maintainer", "container_image", "container_digest", "approved_by", "created_by",
    "disabled_by",
)  # fmt: skip
CONTENT_MAX = 1_048_576
LABEL_MAX = 255  # signal_type, component, custom label keys and values
PARAMETERS_MAX_BYTES = 262_144
EXPECTED_DURATION_MAX = 2**31 - 1
# Content and labels define a version: changing them means publishing a new one.
IMMUTABLE_FIELDS = (
    "workflow_name", "version", "description", "content", "labels", "custom_labels",
    "detected_labels",
)  # fmt: skip
MUTABLE_FIELDS = ("status", "disabled_by", "disabled_reason")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# orjson writes a NUL as \u0000; it is one only when its backslash is not itself escaped.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def content_hash(content: str) -> str:
    """The SHA-256 of the content's UTF-8 bytes, as lowercase hex."""
    return hashlib.sha256(content.encode()).hexdigest()


def validate_workflow(body: Any) -> NewWorkflow:
    """Check a create body against every rule; raise `ValidationFailed` naming each broken one."""
    if not isinstance(body, Mapping):
        raise InvalidRequest(
            f"the body must be a JSON object (one workflow), got {json_type(body)}"
        )
    errors = FieldErrors("")
    text = TextReader(body, errors)
    required = {
        name: text.required(name, MAX_LENGTHS[name])
        for name in ("workflow_name", "version", "name", "execution_engine")
    }
    name = required["workflow_name"]
    if name is not None and "/" in name:
        errors.add("workflow_name", "must not contain '/' (it is a path segment of the REST API)")
    content = text.required("content", CONTENT_MAX)
    status = choice_field(body, "status", STATUSES, errors, required=False) or WorkflowStatus.ACTIVE
    optional = {field: text.optional(field, MAX_LENGTHS[field]) for field in _OPTIONAL_TEXT}
    texts = {field: text.optional(field, TEXT_MAX) for field in _NOTES}
    disabled_reason = text.optional("disabled_reason", TEXT_MAX)
    if status != WorkflowStatus.DISABLED:
        _only_when_disabled(body, errors, ("disabled_by", "disabled_reason"))
    maintainer = optional["maintainer"]
    if maintainer is not None and not _EMAIL.fullmatch(maintainer):
        errors.add("maintainer", "must be an email address")
    workflow = NewWorkflow(
        workflow_id=uuid_utils.uuid7(),
        workflow_name=name or "",
        version=required["version"] or "",
        name=required["name"] or "",
        description=text.required("description", TEXT_MAX) or "",
        content=content or "",
        content_hash=_content_hash(body, content, errors),
        execution_engine=required["execution_engine"] or "",
        labels=mandatory_labels(body.get("labels"), errors),
        custom_labels=custom_labels(body.get("custom_labels"), errors),
        detected_labels=detected_labels(body.get("detected_labels"), errors),
        status=status,
        owner=optional["owner"],
        maintainer=maintainer,
        parameters=_parameters(body, errors),
        container_image=optional["container_image"],
        container_digest=optional["container_digest"],
        disabled_by=optional["disabled_by"],
        disabled_reason=disabled_reason,
        deprecation_notice=texts["deprecation_notice"],
        version_notes=texts["version_notes"],
        change_summary=texts["change_summary"],
        approved_by=optional["approved_by"],
        approved_at=_approved_at(body, errors),
        expected_success_rate=_rate(body, "expected_success_rate", errors),
        expected_duration_seconds=int_field(
            body, "expected_duration_seconds", 0, EXPECTED_DURATION_MAX, None, errors
        ),
        created_by=optional["created_by"],
    )
    if errors.found:
        raise ValidationFailed(errors.found)
    return workflow


def _content_hash(body: Mapping[str, Any], content: str | None, errors: FieldErrors) -> str:
    sent = body.get("content_hash")
    computed = content_hash(content) if content is not None else ""
    if sent is None or sent == "":
        return computed
    if not isinstance(sent, str) or not _HEX64.fullmatch(sent):
        errors.add("content_hash", "must be 64 hexadecimal characters (a SHA-256 digest)")
    elif content is not None and sent.lower() != computed:
        errors.add("content_hash", f"must equal the SHA-256 of content, which is {computed}")
    return computed


def mandatory_labels(value: Any, errors: FieldErrors) -> dict[str, Any]:
    """The five mandatory labels; other keys are not labels of this kind and are left out."""
    labels = _object(value, "labels", errors, required=True)
    if labels is None:
        return {}
    nested = _nested(errors, "labels.")
    text = TextReader(labels, nested)
    signal_type = text.required("signal_type", LABEL_MAX)
    if signal_type is not None and WILDCARD in signal_type:
        nested.add(
            "signal_type", "must not contain the wildcard '*' (it is always matched exactly)"
        )
    return {
        "signal_type": signal_type,
        "severity": choice_field(labels, "severity", SEVERITIES, nested, required=True),
        "component": text.required("component", LABEL_MAX),
        "environment": _environments(labels.get("environment"), nested),
        "priority": choice_field(labels, "priority", PRIORITIES, nested, required=True),
    }


def _environments(value: Any, errors: FieldErrors) -> list[str]:
    if value is None:
        errors.add("environment", "is required")
        return []
    if not isinstance(value, list) or not value:
        errors.add("environment", f"must be a non-empty array of {', '.join(ENVIRONMENTS)}")
        return []
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in ENVIRONMENTS:
            errors.add(
                f"environment[{index}]",
                f"must be one of {', '.join(ENVIRONMENTS)}, got {preview(item)}",
            )
    return list(value)


def detected_labels(value: Any, errors: FieldErrors) -> dict[str, Any]:
    """The known detected labels that were given (null is the same as absent)."""
    labels = _object(value, "detected_labels", errors, required=False)
    if labels is None:
        return {}
    nested = _nested(errors, "detected_labels.")
    found: dict[str, Any] = {}
    for flag in DETECTED_FLAGS:
        item = labels.get(flag)
        if item is not None and not isinstance(item, bool):
            nested.add(flag, f"must be a boolean, got {json_type(item)}")
        elif item is not None:
            found[flag] = item
    for field, allowed in (("gitOpsTool", GITOPS_TOOLS), ("serviceMesh", SERVICE_MESHES)):
        choice = choice_field(labels, field, allowed, nested, required=False)
        if choice is not None:
            found[field] = choice
    failed = labels.get("failed_detections")
    if failed is not None:
        if not isinstance(failed, list):
            nested.add("failed_detections", f"must be an array, got {json_type(failed)}")
        else:
            for index, item in enumerate(failed):
                if not isinstance(item, str) or item not in FAILED_DETECTIONS:
                    nested.add(
                        f"failed_detections[{index}]",
                        f"must be one of {', '.join(FAILED_DETECTIONS)}, got {preview(item)}",
                    )
            found["failed_detections"] = failed
    return found


def custom_labels(value: Any, errors: FieldErrors) -> dict[str, list[str]]:
    """Customer labels: each key maps to an array of strings (`*` allowed as a value)."""
    labels = _object(value, "custom_labels", errors, required=False)
    if labels is None:
        return {}
    found: dict[str, list[str]] = {}
    for key, values in labels.items():
        path = f"custom_labels.{key}"
        problem = _label_text_problem(key)
        if problem:
            errors.add(path, f"key {problem}")
            continue
        if not isinstance(values, list):
            errors.add(path, f"must be an array of strings, got {json_type(values)}")
            continue
        for index, item in enumerate(values):
            problem = (
                _label_text_problem(item)
                if isinstance(item, str)
                else f"must be a string, got {json_type(item)}"
            )
            if problem:
                errors.add(f"{path}[{index}]", problem)
        found[key] = values
    return found


def _label_text_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > LABEL_MAX:
        return f"must be at most {LABEL_MAX} characters, got {len(value)}"
    return text_problem(value)


def _parameters(body: Mapping[str, Any], errors: FieldErrors) -> dict[str, Any] | None:
    value = _object(body.get("parameters"), "parameters", errors, required=False)
    if value is None:
        return None
    try:
        encoded = orjson.dumps(value)
    except TypeError:  # too deep for orjson, or an integer beyond 64 bits
        errors.add("parameters", "must contain only JSON values, nested at most 255 levels")
        return None
    if len(encoded) > PARAMETERS_MAX_BYTES:
        errors.add(
            "parameters",
            f"must be at most {PARAMETERS_MAX_BYTES} bytes as compact JSON, got {len(encoded)}",
        )
    elif _NUL_ESCAPE.search(encoded):
        # PostgreSQL's jsonb cannot hold a NUL character; refuse it here rather than as a 500.
        errors.add("parameters", "must not contain NUL characters (\\u0000)")
    return dict(value)


def _approved_at(body: Mapping[str, Any], errors: FieldErrors) -> dt.datetime | None:
    raw = body.get("approved_at")
    if raw is None:
        return None
    parsed = parse_rfc3339(raw)
    if parsed is None:
        errors.add("approved_at", "must be an RFC 3339 date-time with a timezone offset")
    return parsed


def _rate(body: Mapping[str, Any], field: str, errors: FieldErrors) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(field, f"must be a number, got {json_type(value)}")
        return None
    if not 0 <= value <= 1:
        errors.add(field, f"must be between 0 and 1, got {value}")
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class WorkflowUpdate:
    """A validated PATCH body: only the mutable fields; None means not sent."""

    status: str | None
    disabled_by: str | None
    disabled_reason: str | None
    updated_by: str | None


def validate_update(body: Any) -> WorkflowUpdate:
    """Check a PATCH body: immutable fields are refused by name, mutable ones by their rules."""
    if not isinstance(body, Mapping):
        raise InvalidRequest(f"the body must be a JSON object, got {json_type(body)}")
    touched = [field for field in IMMUTABLE_FIELDS if field in body]
    if touched:
        rule = "is immutable: publish a new version of the workflow to change it"
        raise ImmutableFieldViolation(
            {field: rule for field in touched},
            detail=f"immutable fields cannot be updated: {', '.join(touched)}",
        )
    errors = FieldErrors("")
    text = TextReader(body, errors)
    status = choice_field(body, "status", STATUSES, errors, required=False)
    update = WorkflowUpdate(
        status=status,
        disabled_by=text.optional("disabled_by", MAX_LENGTHS["disabled_by"]),
        disabled_reason=text.optional("disabled_reason", TEXT_MAX),
        updated_by=text.optional("updated_by", MAX_LENGTHS["updated_by"]),
    )
    if all(body.get(field) is None for field in MUTABLE_FIELDS):
        errors.add("body", f"must set at least one of {', '.join(MUTABLE_FIELDS)}")
    if status is not None and status != WorkflowStatus.DISABLED:
        _only_when_disabled(body, errors, ("disabled_by", "disabled_reason"))
    if errors.found:
        raise ValidationFailed(errors.found)
    return update


def only_when_disabled(update: WorkflowUpdate, status: str) -> None:
    """Refuse disabled_by/disabled_reason when the resulting status is not `disabled`."""
    errors = FieldErrors("")
    if status != WorkflowStatus.DISABLED:
        sent = {"disabled_by": update.disabled_by, "disabled_reason": update.disabled_reason}
        _only_when_disabled(sent, errors, tuple(sent))
    if errors.found:
        raise ValidationFailed(errors.found)


def _only_when_disabled(
    body: Mapping[str, Any], errors: FieldErrors, fields: tuple[str, ...]
) -> None:
    for field in fields:
        if body.get(field) is not None:
            errors.add(field, "is only allowed when the status is (or becomes) disabled")


def validate_status_body(body: Any) -> tuple[str | None, str | None]:
    """(reason, actor) from an optional `{reason, updated_by}` body (disable, enable)."""
    if body is None:
        return None, None
    if not isinstance(body, Mapping):
        raise InvalidRequest(f"the body must be a JSON object, got {json_type(body)}")
    errors = FieldErrors("")
    text = TextReader(body, errors)
    reason = text.optional("reason", TEXT_MAX)
    actor = text.optional("updated_by", MAX_LENGTHS["updated_by"])
    if errors.found:
        raise ValidationFailed(errors.found)
    return reason, actor


def check_status(status: str) -> str:
    """A status value, or a validation error naming the allowed ones."""
    if status not in STATUSES:
        raise ValidationFailed({"status": f"must be one of {', '.join(STATUSES)}"})
    return status


def _object(
    value: Any, field: str, errors: FieldErrors, *, required: bool
) -> Mapping[str, Any] | None:
    if value is None:
        if required:
            errors.add(field, "is required")
        return None
    if not isinstance(value, Mapping):
        errors.add(field, f"must be a JSON object, got {json_type(value)}")
        return None
    return value


def _nested(errors: FieldErrors, prefix: str) -> FieldErrors:
    """A collector for an object's fields that records into the same errors, under `prefix`."""
    nested = FieldErrors(errors.prefix + prefix)
    nested.found = errors.found
    return nested
