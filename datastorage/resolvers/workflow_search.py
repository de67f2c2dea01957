"""Label search over the workflow catalog, shared by REST and GraphQL.

Validation here, scoring in `workflow_scoring` (pure), candidates from the in-memory index
(`workflow_index`). The search is audited in the background (`self_audit`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datastorage.domain import WorkflowSearchRow
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import InvalidRequest, ServiceUnavailable, ValidationFailed
from datastorage.resolvers.validation import (
    FieldErrors,
    TextReader,
    choice_field,
    json_type,
    preview,
)
from datastorage.resolvers.workflow_scoring import (
    MAX_TOP_K,
    RankedWorkflow,
    SearchQuery,
    rank_with_total,
)
from datastorage.resolvers.workflow_validation import (
    LABEL_MAX,
    STATUSES,
    WILDCARD,
    custom_labels,
    detected_labels,
)

SEVERITIES = ("critical", "high", "medium", "low")
PRIORITIES = ("P0", "P1", "P2", "P3")
ENVIRONMENTS = ("production", "staging", "development", "test")


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: SearchQuery
    filters: dict[str, Any]  # as validated, echoed in the answer and the audit event
    remediation_id: str | None


@dataclass(frozen=True, slots=True)
class SearchMatch:
    ranked: RankedWorkflow
    workflow: WorkflowSearchRow


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    matches: list[SearchMatch]
    total_results: int
    filters: dict[str, Any]


async def search_workflows(ctx: Context, body: Any) -> SearchOutcome:
    """The best-matching latest workflows, ranked; zero matches is an empty list."""
    request = validate_search(body)
    services = ctx.services
    index = services.workflow_index
    if index is None:
        raise ServiceUnavailable("the workflow catalog is not available", 1)
    started = time.perf_counter()
    try:
        candidates, rows = await index.snapshot(request.query.signal_type)
    except Exception as exc:  # the reload query failed: PostgreSQL is unavailable
        raise ServiceUnavailable(
            f"the workflow catalog cannot be read ({type(exc).__name__})",
            services.settings.writer.retry_after_s,
        ) from None
    ranked, total = rank_with_total(request.query, candidates)
    matches = [SearchMatch(result, rows[result.workflow_id]) for result in ranked]
    elapsed = time.perf_counter() - started
    services.metrics.workflow_search_latency.observe(elapsed)
    if services.self_audit is not None:
        services.self_audit.search_completed(
            request.filters,
            [(str(m.ranked.workflow_id), m.ranked.rank, m.ranked.final_score) for m in matches],
            elapsed * 1000,
            request.remediation_id,
        )
    return SearchOutcome(matches, total, request.filters)


def validate_search(body: Any) -> SearchRequest:
    """Every broken rule named by its path (`filters.severity`, `top_k`); nothing is searched."""
    if not isinstance(body, Mapping):
        raise InvalidRequest(f"the body must be a JSON object, got {json_type(body)}")
    errors = FieldErrors("")
    filters = body.get("filters")
    if not isinstance(filters, Mapping):
        errors.add("filters", "is required" if filters is None else "must be a JSON object")
        raise ValidationFailed(errors.found)
    nested = FieldErrors("filters.")
    nested.found = errors.found
    text = TextReader(filters, nested)
    signal_type = text.required("signal_type", LABEL_MAX)
    if signal_type is not None and WILDCARD in signal_type:
        nested.add("signal_type", "must not be the wildcard '*' (signal_type is matched exactly)")
    severity = choice_field(filters, "severity", SEVERITIES, nested)
    component = text.required("component", LABEL_MAX)
    environment = choice_field(filters, "environment", ENVIRONMENTS, nested)
    priority = choice_field(filters, "priority", PRIORITIES, nested)
    detected = detected_labels(filters.get("detected_labels"), nested)
    custom = custom_labels(filters.get("custom_labels"), nested)
    statuses = _statuses(filters.get("status"), nested)
    top_k = _top_k(body.get("top_k"), errors)
    min_score = _min_score(body.get("min_score"), errors)
    include_disabled = body.get("include_disabled", False)
    if not isinstance(include_disabled, bool):
        errors.add("include_disabled", f"must be a boolean, got {json_type(include_disabled)}")
    remediation_id = TextReader(body, errors).optional("remediation_id", 255)
    if errors.found:
        raise ValidationFailed(errors.found)
    assert signal_type and severity and component and environment and priority
    allowed = set(statuses or ("active",))
    if include_disabled:
        allowed.add("disabled")
    failed = tuple(detected.pop("failed_detections", ()) or ())
    query = SearchQuery(
        signal_type=signal_type,
        severity=severity,
        component=component,
        environment=environment,
        priority=priority,
        detected_labels=detected or None,
        failed_detections=failed,
        custom_labels=custom,
        statuses=frozenset(allowed),
        top_k=top_k,
        min_score=min_score,
    )
    echoed: dict[str, Any] = {
        "signal_type": signal_type, "severity": severity, "component": component,
        "environment": environment, "priority": priority,
    }  # fmt: skip
    if detected or failed:
        echoed["detected_labels"] = {
            **detected,
            **({"failed_detections": list(failed)} if failed else {}),
        }
    if custom:
        echoed["custom_labels"] = custom
    if statuses:
        echoed["status"] = statuses
    return SearchRequest(query, echoed, remediation_id)


def _statuses(value: Any, errors: FieldErrors) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add("status", f"must be an array of {', '.join(STATUSES)}, got {json_type(value)}")
        return []
    for position, item in enumerate(value):
        if not isinstance(item, str) or item not in STATUSES:
            errors.add(
                f"status[{position}]", f"must be one of {', '.join(STATUSES)}, got {preview(item)}"
            )
    return list(value)


def _top_k(value: Any, errors: FieldErrors) -> int:
    if value is None:
        return 10
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add("top_k", f"must be an integer, got {json_type(value)}")
        return 10
    if value < 1:
        errors.add("top_k", f"must be at least 1, got {value}")
        return 10
    return min(value, MAX_TOP_K)  # larger values are clamped, as the legacy service did


def _min_score(value: Any, errors: FieldErrors) -> float:
    if value is None:
        return 0.0
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        errors.add("min_score", f"must be a number, got {json_type(value)}")
        return 0.0
    if not 0.0 <= value <= 1.0:
        errors.add("min_score", f"must be between 0 and 1, got {value}")
        return 0.0
    return float(value)
