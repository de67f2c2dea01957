"""Legacy workflow catalog routes: HTTP in, resolver call, HTTP out."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastorage.domain import WorkflowPageRequest, WorkflowRecord
from datastorage.observability.http import DirectHandler
from datastorage.resolvers import workflow_search, workflows
from datastorage.resolvers.audit_queries import check_page_size
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import NotFound, ValidationFailed
from datastorage.resolvers.workflow_queries import build_workflow_filter
from datastorage.resolvers.workflow_search import SearchMatch
from datastorage.rest_compat.audit import QUERY_OFFSET_MAX, context_from, maps_errors
from datastorage.rest_compat.direct import direct_route, json_route
from datastorage.rest_compat.encoding import json_response, read_json

PATH = "/api/v1/workflows"
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 1000
FILTER_PARAMS = ("status", "environment", "priority", "component", "workflow_name", "signal_type")


@maps_errors
async def post_workflow(request: Request) -> Response:
    ctx = context_from(request)
    body = await read_json(request, ctx.services.settings.service.max_body_bytes)
    return json_response(legacy_workflow(await workflows.create_workflow(ctx, body)), status=201)


@maps_errors
async def list_workflows(request: Request) -> Response:
    ctx = context_from(request)
    params = request.query_params
    filters = build_workflow_filter({name: params.get(name) for name in FILTER_PARAMS})
    limit = check_page_size(
        _int_param(params.get("limit"), "limit", LIST_LIMIT_DEFAULT), "limit", LIST_LIMIT_MAX
    )
    offset = _int_param(params.get("offset"), "offset", 0)
    if not 0 <= offset <= QUERY_OFFSET_MAX:
        raise ValidationFailed(
            {"offset": f"must be between 0 and {QUERY_OFFSET_MAX}, got {offset}"}
        )
    page = await workflows.list_workflows(
        ctx, filters, WorkflowPageRequest(limit=limit, offset=offset, with_total=True)
    )
    body = {
        "workflows": [legacy_workflow(record) for record in page.workflows],
        "limit": limit,
        "offset": offset,
        "total": page.total,
    }
    return json_response(body)


@maps_errors
async def get_workflow(request: Request) -> Response:
    ctx = context_from(request)
    workflow_id = workflows.parse_workflow_id(request.path_params["workflow_id"])
    record = await workflows.get_workflow(ctx, workflow_id)
    if record is None:
        raise NotFound(f"no workflow has workflow_id {workflow_id}")
    return json_response(legacy_workflow(record))


@maps_errors
async def patch_workflow(request: Request) -> Response:
    ctx = context_from(request)
    workflow_id = workflows.parse_workflow_id(request.path_params["workflow_id"])
    body = await read_json(request, ctx.services.settings.service.max_body_bytes)
    return json_response(legacy_workflow(await workflows.update_workflow(ctx, workflow_id, body)))


@maps_errors
async def disable_workflow(request: Request) -> Response:
    ctx = context_from(request)
    workflow_id = workflows.parse_workflow_id(request.path_params["workflow_id"])
    body = await _optional_json(request, ctx.services.settings.service.max_body_bytes)
    return json_response(legacy_workflow(await workflows.disable_workflow(ctx, workflow_id, body)))


@maps_errors
async def enable_workflow(request: Request) -> Response:
    ctx = context_from(request)
    workflow_id = workflows.parse_workflow_id(request.path_params["workflow_id"])
    body = await _optional_json(request, ctx.services.settings.service.max_body_bytes)
    return json_response(legacy_workflow(await workflows.enable_workflow(ctx, workflow_id, body)))


@maps_errors
async def list_versions(request: Request) -> Response:
    ctx = context_from(request)
    name = request.path_params["workflow_name"]
    versions = await workflows.workflow_versions(ctx, name)
    body = {
        "workflow_name": name,
        "versions": [legacy_workflow(record) for record in versions],
        "total": len(versions),
    }
    return json_response(body)


async def _optional_json(request: Request, limit: int) -> Any:
    """The JSON body, or None when the request has none (the disable/enable bodies are optional)."""
    headers = request.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return None
    return await read_json(request, limit)


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed({name: f"must be an integer, got {raw[:40]!r}"}) from None


def legacy_workflow(record: WorkflowRecord) -> dict[str, Any]:
    """A stored version in the legacy wire format (`RemediationWorkflow`), every field present."""
    return {
        "workflow_id": record.workflow_id,
        "workflow_name": record.workflow_name,
        "version": record.version,
        "name": record.name,
        "description": record.description,
        "owner": record.owner,
        "maintainer": record.maintainer,
        "content": record.content,
        "content_hash": record.content_hash,
        "parameters": record.parameters,
        "execution_engine": record.execution_engine,
        "container_image": record.container_image,
        "container_digest": record.container_digest,
        "labels": record.labels,
        "custom_labels": record.custom_labels,
        "detected_labels": record.detected_labels,
        "status": record.status,
        "disabled_at": record.disabled_at,
        "disabled_by": record.disabled_by,
        "disabled_reason": record.disabled_reason,
        "is_latest_version": record.is_latest_version,
        "previous_version": record.previous_version,
        "deprecation_notice": record.deprecation_notice,
        "version_notes": record.version_notes,
        "change_summary": record.change_summary,
        "approved_by": record.approved_by,
        "approved_at": record.approved_at,
        "expected_success_rate": record.expected_success_rate,
        "expected_duration_seconds": record.expected_duration_seconds,
        "actual_success_rate": record.actual_success_rate,
        "total_executions": record.total_executions,
        "successful_executions": record.successful_executions,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "updated_at": record.updated_at,
        "updated_by": record.updated_by,
    }


async def answer_search(ctx: Context, body: Any) -> tuple[int, Any]:
    """POST /api/v1/workflows/search: the ranked matches (an empty list when none)."""
    outcome = await workflow_search.search_workflows(ctx, body)
    return 200, {
        "workflows": [search_result(match) for match in outcome.matches],
        "total_results": outcome.total_results,
        "filters": outcome.filters,
    }


def search_result(match: SearchMatch) -> dict[str, Any]:
    """A `WorkflowSearchResult`: the workflow's face and its scores (raw weight units for boost
    and penalty, normalised final score)."""
    ranked, workflow = match.ranked, match.workflow
    return {
        "workflow_id": ranked.workflow_id,
        "workflow_name": workflow.workflow_name,
        "version": workflow.version,
        "title": workflow.title,
        "description": workflow.description or "",
        "signal_type": workflow.labels.get("signal_type"),
        "container_image": workflow.container_image,
        "container_digest": workflow.container_digest,
        "confidence": ranked.confidence,
        "label_boost": ranked.label_boost,
        "label_penalty": ranked.label_penalty,
        "final_score": ranked.final_score,
        "rank": ranked.rank,
        "custom_labels": workflow.custom_labels,
        "detected_labels": workflow.detected_labels,
        "parameters": orjson.Fragment(workflow.parameters_json)
        if workflow.parameters_json
        else None,
    }


SEARCH_PATH = PATH + "/search"


def direct_routes(state: State) -> dict[tuple[str, str], tuple[str, DirectHandler]]:
    """Search, the catalog's hot route, served straight on ASGI (see `direct`)."""
    return {("POST", SEARCH_PATH): (SEARCH_PATH, direct_route(state, answer_search))}


def routes() -> list[Route]:
    """The legacy workflow catalog routes.

    Fixed paths come before `/{workflow_id}`: Starlette takes the first full match, so a
    literal segment such as `search` must never reach the id route (where it would be a 400).
    """
    by_id = PATH + "/{workflow_id}"
    return [
        Route(PATH, post_workflow, methods=["POST"]),
        Route(PATH, list_workflows, methods=["GET"]),
        Route(PATH + "/by-name/{workflow_name}/versions", list_versions, methods=["GET"]),
        Route(SEARCH_PATH, json_route(answer_search), methods=["POST"]),
        Route(by_id, get_workflow, methods=["GET"]),
        Route(by_id, patch_workflow, methods=["PATCH"]),
        Route(by_id + "/disable", disable_workflow, methods=["PATCH"]),
        Route(by_id + "/enable", enable_workflow, methods=["PATCH"]),
    ]
