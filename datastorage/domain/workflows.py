"""Workflow catalog records: versions, filters, pages, status changes, search rows."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple


class WorkflowStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """A validated workflow version, ready to be written; the id is assigned before the insert.

    The label maps hold parsed JSON with the wire keys; they are never modified after validation.
    """

    workflow_id: uuid.UUID
    workflow_name: str
    version: str
    name: str
    description: str
    content: str
    content_hash: str
    execution_engine: str
    labels: dict[str, Any]
    custom_labels: dict[str, list[str]]
    detected_labels: dict[str, Any]
    status: str
    owner: str | None = None
    maintainer: str | None = None
    parameters: dict[str, Any] | None = None
    container_image: str | None = None
    container_digest: str | None = None
    disabled_by: str | None = None
    disabled_reason: str | None = None
    deprecation_notice: str | None = None
    version_notes: str | None = None
    change_summary: str | None = None
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    expected_success_rate: float | None = None
    expected_duration_seconds: int | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A stored workflow version with the server-managed columns (same order as the table)."""

    workflow_id: uuid.UUID
    workflow_name: str
    version: str
    name: str
    description: str
    owner: str | None
    maintainer: str | None
    content: str
    content_hash: str
    parameters: dict[str, Any] | None
    execution_engine: str
    container_image: str | None
    container_digest: str | None
    labels: dict[str, Any]
    custom_labels: dict[str, list[str]]
    detected_labels: dict[str, Any]
    status: str
    disabled_at: dt.datetime | None
    disabled_by: str | None
    disabled_reason: str | None
    is_latest_version: bool
    previous_version: str | None
    deprecation_notice: str | None
    version_notes: str | None
    change_summary: str | None
    approved_by: str | None
    approved_at: dt.datetime | None
    expected_success_rate: float | None
    expected_duration_seconds: int | None
    actual_success_rate: float | None
    total_executions: int
    successful_executions: int
    created_at: dt.datetime
    created_by: str | None
    updated_at: dt.datetime
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """The list filters; all combinable, all optional. `environment` is one value the workflow's
    environment array must contain."""

    status: str | None = None
    environment: str | None = None
    priority: str | None = None
    component: str | None = None
    workflow_name: str | None = None
    signal_type: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowKeyset:
    """Position after the last row of a page: order is (created_at DESC, workflow_id ASC)."""

    created_at: dt.datetime
    workflow_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class WorkflowPageRequest:
    limit: int
    offset: int = 0
    after: WorkflowKeyset | None = None
    with_total: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    workflows: list[WorkflowRecord]
    has_more: bool
    total: int | None
    next_keyset: WorkflowKeyset | None


@dataclass(frozen=True, slots=True)
class WorkflowStatusChange:
    """A new status with who asked for it and why (the reason lands in the column that fits)."""

    status: str
    reason: str | None = None
    actor: str | None = None


class WorkflowSearchRow(NamedTuple):
    """What label search needs of a latest version (a NamedTuple: the whole catalog is loaded)."""

    workflow_id: uuid.UUID
    workflow_name: str
    version: str
    status: str
    is_latest_version: bool
    created_at: dt.datetime
    labels: dict[str, Any]
    detected_labels: dict[str, Any]
    custom_labels: dict[str, list[str]]
    # What a search result shows besides the scores (kept with the index: no query per search).
    title: str
    description: str | None
    container_image: str | None
    container_digest: str | None
    parameters_json: str | None  # the stored JSON text, embedded as is in answers
