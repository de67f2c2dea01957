"""GraphQL `searchWorkflows`: the REST search through the same resolver, plus the breakdown of
each score so a human can see why a workflow ranks where it does."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
import strawberry
from strawberry.scalars import JSON

from datastorage.resolvers import errors as domain
from datastorage.resolvers import workflow_search
from datastorage.resolvers.context import Context
from datastorage.resolvers.workflow_search import SearchMatch
from datastorage.schema.audit import graphql_names, to_validation_failed, unavailable
from datastorage.schema.audit_types import ValidationFailed, snake_case
from datastorage.schema.workflow_types import (
    DetectedLabelsInput,
    Priority,
    Severity,
    WorkflowStatus,
)


@strawberry.input(name="WorkflowSearchFiltersInput")
class WorkflowSearchFiltersInput:
    signal_type: str = strawberry.field(description="Matched exactly; no wildcard.")
    severity: Severity
    component: str
    environment: str = strawberry.field(
        description="One of production, staging, development, test."
    )
    priority: Priority
    detected_labels: DetectedLabelsInput | None = None
    custom_labels: JSON | None = strawberry.field(
        default=None, description="Key → array of values, as in the REST body."
    )
    status: list[WorkflowStatus] | None = strawberry.field(
        default=None, description="Statuses searched (default: ACTIVE only)."
    )

    @classmethod
    def from_coerced(cls, value: dict[str, Any]) -> WorkflowSearchFiltersInput:
        """Build from graphql-core's coerced input (GraphQL names, enum values as strings)."""
        fields = {snake_case(name): item for name, item in value.items()}
        fields["severity"] = Severity(fields["severity"])
        fields["priority"] = Priority(fields["priority"])
        if fields.get("detected_labels") is not None:
            fields["detected_labels"] = DetectedLabelsInput(
                **{snake_case(name): item for name, item in fields["detected_labels"].items()}
            )
        if fields.get("status") is not None:
            fields["status"] = [WorkflowStatus(status) for status in fields["status"]]
        return cls(**fields)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "signal_type": self.signal_type,
            "severity": self.severity.value,
            "component": self.component,
            "environment": self.environment,
            "priority": self.priority.value,
        }
        if self.detected_labels is not None:
            body["detected_labels"] = self.detected_labels.to_body()
        if self.custom_labels is not None:
            body["custom_labels"] = self.custom_labels
        if self.status is not None:
            body["status"] = [status.value for status in self.status]
        return body


@strawberry.input(name="WorkflowSearchInput")
class WorkflowSearchInput:
    filters: WorkflowSearchFiltersInput
    top_k: int | None = strawberry.field(default=None, description="Default 10; above 100 → 100.")
    min_score: float | None = None
    include_disabled: bool | None = None
    remediation_id: str | None = strawberry.field(
        default=None, description="Correlation id of the search's self-audit event."
    )

    @classmethod
    def from_coerced(cls, value: dict[str, Any]) -> WorkflowSearchInput:
        """Build from graphql-core's coerced input, as Strawberry builds it for the resolver."""
        fields = {snake_case(name): item for name, item in value.items()}
        fields["filters"] = WorkflowSearchFiltersInput.from_coerced(fields["filters"])
        return cls(**fields)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"filters": self.filters.to_body()}
        for name in ("top_k", "min_score", "include_disabled", "remediation_id"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@strawberry.type(description="One label's effect on a score, in raw weight units.")
class ScoreContribution:
    label: str
    kind: str = strawberry.field(description="boost or penalty")
    weight: float
    reason: str
    source: str = strawberry.field(description="detected or custom")


@strawberry.type(description="A ranked workflow and why it scored what it did.")
class WorkflowMatch:
    workflow_id: uuid.UUID
    workflow_name: str
    version: str
    title: str
    description: str
    signal_type: str
    container_image: str | None
    container_digest: str | None
    confidence: float
    label_boost: float
    label_penalty: float
    final_score: float
    rank: int
    custom_labels: JSON
    detected_labels: JSON
    parameters: JSON | None
    score_breakdown: list[ScoreContribution]


@strawberry.type(description="The ranked matches; zero matches is an empty list.")
class WorkflowSearchResponse:
    workflows: list[WorkflowMatch]
    total_results: int = strawberry.field(description="Matches before top_k was applied.")
    filters: JSON = strawberry.field(description="The filters as the service understood them.")


WorkflowSearchResult = Annotated[
    WorkflowSearchResponse | ValidationFailed, strawberry.union("WorkflowSearchResult")
]


def to_match(match: SearchMatch) -> WorkflowMatch:
    ranked, workflow = match.ranked, match.workflow
    return WorkflowMatch(
        workflow_id=ranked.workflow_id,
        workflow_name=workflow.workflow_name,
        version=workflow.version,
        title=workflow.title,
        description=workflow.description or "",
        signal_type=str(workflow.labels.get("signal_type", "")),
        container_image=workflow.container_image,
        container_digest=workflow.container_digest,
        confidence=ranked.confidence,
        label_boost=ranked.label_boost,
        label_penalty=ranked.label_penalty,
        final_score=ranked.final_score,
        rank=ranked.rank,
        custom_labels=JSON(workflow.custom_labels),
        detected_labels=JSON(workflow.detected_labels),
        parameters=JSON(orjson.loads(workflow.parameters_json))
        if workflow.parameters_json
        else None,
        score_breakdown=[
            ScoreContribution(
                label=part.label,
                kind=part.kind,
                weight=part.weight,
                reason=part.reason,
                source=part.source,
            )
            for part in ranked.breakdown
        ],
    )


@strawberry.type
class WorkflowSearchQuery:
    @strawberry.field(description="Label search: hard filters, then the legacy scoring, ranked.")
    async def search_workflows(
        self, info: strawberry.Info[Context], input: WorkflowSearchInput
    ) -> WorkflowSearchResult:
        try:
            with graphql_names("input."):
                outcome = await workflow_search.search_workflows(info.context, input.to_body())
        except domain.ValidationFailed as error:
            return to_validation_failed(error)
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        return WorkflowSearchResponse(
            workflows=[to_match(match) for match in outcome.matches],
            total_results=outcome.total_results,
            filters=JSON(outcome.filters),
        )
