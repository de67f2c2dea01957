"""GraphQL types of the workflow catalog. Object fields are the camelCase of the REST names.

`labels`, `customLabels`, `detectedLabels` and `parameters` are JSON scalars on the way out (the
contract dashboards are written against) and hold the REST keys; on the way in, the mandatory
and detected labels are typed inputs so the schema itself documents and checks them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from datastorage.domain import WorkflowRecord
from datastorage.domain import WorkflowStatus as DomainStatus
from datastorage.schema.audit_types import ValidationFailed


@strawberry.enum(name="WorkflowStatus")
class WorkflowStatus(Enum):
    ACTIVE = DomainStatus.ACTIVE.value
    DISABLED = DomainStatus.DISABLED.value
    DEPRECATED = DomainStatus.DEPRECATED.value
    ARCHIVED = DomainStatus.ARCHIVED.value


@strawberry.enum(name="Severity")
class Severity(Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    ANY = strawberry.enum_value("*", description="The wildcard `*`: any severity.")


@strawberry.enum(name="Priority")
class Priority(Enum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    ANY = strawberry.enum_value("*", description="The wildcard `*`: any priority.")


@strawberry.type(name="Workflow")
class Workflow:
    """A stored workflow version. Resolved straight from the stored record."""

    workflow_id: uuid.UUID
    workflow_name: str
    version: str
    name: str
    description: str
    owner: str | None
    maintainer: str | None
    content: str
    content_hash: str
    execution_engine: str
    container_image: str | None
    container_digest: str | None
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

    @strawberry.field
    def status(self, root: strawberry.Parent[WorkflowRecord]) -> WorkflowStatus:
        return WorkflowStatus(root.status)

    @strawberry.field(description="Mandatory labels, with the REST keys (`signal_type`...).")
    def labels(self, root: strawberry.Parent[WorkflowRecord]) -> JSON:
        return JSON(root.labels)

    @strawberry.field(description="Custom labels: key → array of values.")
    def custom_labels(self, root: strawberry.Parent[WorkflowRecord]) -> JSON:
        return JSON(root.custom_labels)

    @strawberry.field(description="Detected labels, with the REST keys (`gitOpsManaged`...).")
    def detected_labels(self, root: strawberry.Parent[WorkflowRecord]) -> JSON:
        return JSON(root.detected_labels)

    @strawberry.field
    def parameters(self, root: strawberry.Parent[WorkflowRecord]) -> JSON | None:
        return None if root.parameters is None else JSON(root.parameters)


@strawberry.type(name="WorkflowEdge")
class WorkflowEdge:
    cursor: str
    node: Workflow


@strawberry.input(name="WorkflowFilter")
class WorkflowFilterInput:
    status: WorkflowStatus | None = None
    environment: str | None = strawberry.field(
        default=None, description="One environment the workflow's environment list contains."
    )
    priority: Priority | None = None
    component: str | None = None
    workflow_name: str | None = None
    signal_type: str | None = None

    def to_arguments(self) -> dict[str, str | None]:
        """The filter in the legacy argument names, for the shared filter builder."""
        return {
            "status": self.status.value if self.status else None,
            "environment": self.environment,
            "priority": self.priority.value if self.priority else None,
            "component": self.component,
            "workflow_name": self.workflow_name,
            "signal_type": self.signal_type,
        }


@strawberry.input(name="WorkflowLabelsInput")
class WorkflowLabelsInput:
    signal_type: str = strawberry.field(description="Matched exactly; no wildcard.")
    severity: Severity
    component: str = strawberry.field(description="A resource kind, or `*` for any.")
    environment: list[str] = strawberry.field(
        description="production, staging, development, test or `*`; at least one."
    )
    priority: Priority

    def to_body(self) -> dict[str, Any]:
        return {
            "signal_type": self.signal_type,
            "severity": self.severity.value,
            "component": self.component,
            "environment": self.environment,
            "priority": self.priority.value,
        }


# GraphQL name → REST key of the detected labels (the REST keys are already camelCase).
_DETECTED_KEYS = {
    "git_ops_managed": "gitOpsManaged",
    "git_ops_tool": "gitOpsTool",
    "pdb_protected": "pdbProtected",
    "hpa_enabled": "hpaEnabled",
    "stateful": "stateful",
    "helm_managed": "helmManaged",
    "network_isolated": "networkIsolated",
    "service_mesh": "serviceMesh",
    "failed_detections": "failed_detections",
}


@strawberry.input(name="DetectedLabelsInput")
class DetectedLabelsInput:
    git_ops_managed: bool | None = None
    git_ops_tool: str | None = strawberry.field(default=None, description="argocd, flux or `*`")
    pdb_protected: bool | None = None
    hpa_enabled: bool | None = None
    stateful: bool | None = None
    helm_managed: bool | None = None
    network_isolated: bool | None = None
    service_mesh: str | None = strawberry.field(default=None, description="istio, linkerd or `*`")
    failed_detections: list[str] | None = None

    def to_body(self) -> dict[str, Any]:
        return {
            rest: getattr(self, name)
            for name, rest in _DETECTED_KEYS.items()
            if getattr(self, name) is not None
        }


@strawberry.input(name="WorkflowInput")
class WorkflowInput:
    workflow_name: str
    version: str
    name: str
    description: str
    content: str
    execution_engine: str
    labels: WorkflowLabelsInput
    content_hash: str | None = strawberry.field(
        default=None, description="SHA-256 of content; computed when left out, checked when sent."
    )
    owner: str | None = None
    maintainer: str | None = None
    parameters: JSON | None = None
    container_image: str | None = None
    container_digest: str | None = None
    custom_labels: JSON | None = strawberry.field(
        default=None, description="An object: key → array of strings (`*` allowed)."
    )
    detected_labels: DetectedLabelsInput | None = None
    status: WorkflowStatus | None = strawberry.field(default=None, description="ACTIVE if left out")
    disabled_by: str | None = None
    disabled_reason: str | None = None
    deprecation_notice: str | None = None
    version_notes: str | None = None
    change_summary: str | None = None
    approved_by: str | None = None
    approved_at: str | None = strawberry.field(
        default=None, description="RFC 3339 date-time with a timezone offset"
    )
    expected_success_rate: float | None = None
    expected_duration_seconds: int | None = None
    created_by: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The workflow as the legacy JSON body, so both surfaces share one validator."""
        body = {name: value for name, value in vars(self).items() if value is not None}
        body["labels"] = self.labels.to_body()
        if self.detected_labels is not None:
            body["detected_labels"] = self.detected_labels.to_body()
        if self.status is not None:
            body["status"] = self.status.value
        return body


@strawberry.type(name="WorkflowCreated")
class WorkflowCreated:
    workflow: Workflow


@strawberry.type(name="WorkflowAlreadyExists")
class WorkflowAlreadyExists:
    message: str
    workflow_name: str
    version: str


@strawberry.type(name="WorkflowUpdated")
class WorkflowUpdated:
    workflow: Workflow


@strawberry.type(name="NotFound")
class NotFound:
    message: str


CreateWorkflowResult = Annotated[
    WorkflowCreated | WorkflowAlreadyExists | ValidationFailed,
    strawberry.union("CreateWorkflowResult"),
]
UpdateWorkflowResult = Annotated[
    WorkflowUpdated | NotFound | ValidationFailed,
    strawberry.union("UpdateWorkflowResult"),
]
