"""GraphQL workflow catalog fields: thin adapters over the shared resolvers."""

from __future__ import annotations

import strawberry

from datastorage.domain import WorkflowFilter, WorkflowKeyset, WorkflowPage, WorkflowPageRequest
from datastorage.resolvers import errors as domain
from datastorage.resolvers import workflows
from datastorage.resolvers.context import Context
from datastorage.resolvers.workflow_queries import (
    build_workflow_filter,
    decode_cursor,
    encode_cursor,
)
from datastorage.schema.audit import graphql_names, page_size, to_validation_failed, unavailable
from datastorage.schema.audit_types import PageInfo
from datastorage.schema.workflow_types import (
    CreateWorkflowResult,
    NotFound,
    UpdateWorkflowResult,
    Workflow,
    WorkflowAlreadyExists,
    WorkflowCreated,
    WorkflowEdge,
    WorkflowFilterInput,
    WorkflowInput,
    WorkflowStatus,
    WorkflowUpdated,
)


@strawberry.type(name="WorkflowConnection")
class WorkflowConnection:
    edges: list[WorkflowEdge]
    page_info: PageInfo
    filters: strawberry.Private[WorkflowFilter]

    @strawberry.field(description="Matching versions in all pages; counted only when selected.")
    async def total_count(self, info: strawberry.Info[Context]) -> int:
        return await workflows.count_workflows(info.context, self.filters)


def to_connection(page: WorkflowPage, filters: WorkflowFilter) -> WorkflowConnection:
    edges = [
        WorkflowEdge(
            cursor=encode_cursor(WorkflowKeyset(record.created_at, record.workflow_id)),
            node=record,  # type: ignore[arg-type]
        )
        for record in page.workflows
    ]
    return WorkflowConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more, end_cursor=edges[-1].cursor if edges else None
        ),
        filters=filters,
    )


@strawberry.type
class WorkflowQuery:
    @strawberry.field(description="Workflow versions, newest first, with keyset cursors.")
    async def workflows(
        self,
        info: strawberry.Info[Context],
        filter: WorkflowFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> WorkflowConnection:
        ctx = info.context
        limit = page_size(first, ctx.services.settings.graphql.max_first)
        with graphql_names(prefix="filter."):
            filters = build_workflow_filter(filter.to_arguments() if filter else {})
        keyset = decode_cursor(after, "after") if after else None
        page = await workflows.list_workflows(
            ctx, filters, WorkflowPageRequest(limit=limit, after=keyset)
        )
        return to_connection(page, filters)

    @strawberry.field(description="One workflow version by id.")
    async def workflow(
        self, info: strawberry.Info[Context], workflow_id: strawberry.ID
    ) -> Workflow | None:
        workflow_id_value = workflows.parse_workflow_id(workflow_id, "workflowId")
        return await workflows.get_workflow(info.context, workflow_id_value)  # type: ignore[return-value]

    @strawberry.field(description="Every version of one workflow name, newest first.")
    async def workflow_versions(
        self, info: strawberry.Info[Context], workflow_name: str
    ) -> list[Workflow]:
        try:
            return await workflows.workflow_versions(info.context, workflow_name)  # type: ignore[return-value]
        except domain.NotFound:
            # REST answers 404; a GraphQL list simply has no items.
            return []


@strawberry.type
class WorkflowMutation:
    @strawberry.mutation(description="Store a new workflow version; it becomes the latest.")
    async def create_workflow(
        self, info: strawberry.Info[Context], input: WorkflowInput
    ) -> CreateWorkflowResult:
        try:
            record = await workflows.create_workflow(info.context, input.to_body())
        except domain.ValidationFailed as error:
            return to_validation_failed(error)
        except domain.Conflict as error:
            return WorkflowAlreadyExists(
                message=error.detail, workflow_name=input.workflow_name, version=input.version
            )
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        return WorkflowCreated(workflow=record)  # type: ignore[arg-type]

    @strawberry.mutation(
        description=(
            "Change a version's status. The reason is kept as disabledReason (DISABLED) or "
            "deprecationNotice (DEPRECATED); leaving DISABLED clears the disabled* fields."
        )
    )
    async def update_workflow_status(
        self,
        info: strawberry.Info[Context],
        workflow_id: strawberry.ID,
        status: WorkflowStatus,
        reason: str | None = None,
        updated_by: str | None = None,
    ) -> UpdateWorkflowResult:
        try:
            record = await workflows.update_workflow_status(
                info.context,
                workflows.parse_workflow_id(workflow_id, "workflowId"),
                status.value,
                reason,
                updated_by,
            )
        except domain.ValidationFailed as error:
            return to_validation_failed(error)
        except domain.NotFound as error:
            return NotFound(message=error.detail)
        except domain.ServiceUnavailable as error:
            raise unavailable(error) from None
        return WorkflowUpdated(workflow=record)  # type: ignore[arg-type]
