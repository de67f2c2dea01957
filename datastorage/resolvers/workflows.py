"""Workflow catalog use cases shared by REST and GraphQL: create, read, list, versions, status."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from datastorage.domain import (
    NewWorkflow,
    WorkflowFilter,
    WorkflowPage,
    WorkflowPageRequest,
    WorkflowRecord,
    WorkflowStatus,
    WorkflowStatusChange,
)
from datastorage.persistence import workflows as store
from datastorage.persistence.errors import (
    DuplicateWorkflow,
    PermanentDataError,
    TransientDatabaseError,
)
from datastorage.resolvers.audit_queries import text_problem
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from datastorage.resolvers.workflow_validation import (
    MAX_LENGTHS,
    WorkflowUpdate,
    check_status,
    only_when_disabled,
    validate_status_body,
    validate_update,
    validate_workflow,
)

log = logging.getLogger(__name__)


async def create_workflow(ctx: Context, body: Any) -> WorkflowRecord:
    """Validate and store a new version, which becomes the latest of its name."""
    return await _create(ctx, validate_workflow(body))


async def import_workflow(ctx: Context, body: Any) -> WorkflowRecord | None:
    """Create as `create_workflow` does, or None when this (workflow_name, version) is stored
    already with the same content_hash; Conflict when it is stored with different content."""
    workflow = validate_workflow(body)
    # Looked up first, so re-importing a catalog writes nothing (no lock, no NOTIFY).
    if await _stored_unchanged(ctx, workflow):
        return None
    try:
        return await _create(ctx, workflow)
    except Conflict:
        if await _stored_unchanged(ctx, workflow):  # created by someone else meanwhile
            return None
        raise


async def _stored_unchanged(ctx: Context, workflow: NewWorkflow) -> bool:
    name, version = workflow.workflow_name, workflow.version
    with _translated(ctx):
        # The primary: a replica may not have the version that made the insert conflict yet.
        stored = await store.get_workflow_version(ctx.services.database.pool, name, version)
    if stored is None:
        return False
    if stored.content_hash != workflow.content_hash:
        raise Conflict(
            f"workflow {name!r} version {version!r} already exists with different content "
            f"(stored content_hash {stored.content_hash}, this one {workflow.content_hash})"
        )
    return True


async def count_exported(ctx: Context, *, all_versions: bool) -> int:
    """How many versions `export_workflows` yields."""
    with _translated(ctx):
        return await store.count_for_export(
            ctx.services.database.read_pool, latest_only=not all_versions
        )


async def export_workflows(
    ctx: Context, *, all_versions: bool, page_size: int = 500
) -> AsyncIterator[list[WorkflowRecord]]:
    """The catalog a page at a time: by name, each name's versions oldest first (the order in
    which importing them again makes the same version the latest); latest versions only unless
    `all_versions`."""
    after: WorkflowRecord | None = None
    while True:
        with _translated(ctx):
            page = await store.list_for_export(
                ctx.services.database.read_pool,
                latest_only=not all_versions,
                after=after,
                limit=page_size,
            )
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1]


async def _create(ctx: Context, workflow: NewWorkflow) -> WorkflowRecord:
    with _translated(ctx):
        try:
            created = await store.insert_workflow(ctx.services.database.pool, workflow)
        except DuplicateWorkflow:
            raise Conflict(
                f"workflow {workflow.workflow_name!r} version {workflow.version!r} already exists"
            ) from None
    _changed(ctx, "created", created, created.created_by)
    return created


async def get_workflow(ctx: Context, workflow_id: uuid.UUID) -> WorkflowRecord | None:
    """One version by id, or None."""
    with _translated(ctx):
        return await store.get_workflow(ctx.services.database.read_pool, workflow_id)


async def list_workflows(
    ctx: Context, filters: WorkflowFilter, page: WorkflowPageRequest
) -> WorkflowPage:
    """A page of versions in list order (created_at DESC, workflow_id)."""
    with _translated(ctx):
        return await store.list_workflows(ctx.services.database.read_pool, filters, page)


async def count_workflows(ctx: Context, filters: WorkflowFilter) -> int:
    """How many versions match."""
    with _translated(ctx):
        return await store.count_workflows(ctx.services.database.read_pool, filters)


async def workflow_versions(ctx: Context, workflow_name: str) -> list[WorkflowRecord]:
    """Every version of a name, newest first; NotFound when the name has none."""
    # A name that breaks the create rules cannot be stored, so it is simply not found.
    if len(workflow_name) <= MAX_LENGTHS["workflow_name"] and not text_problem(workflow_name):
        with _translated(ctx):
            versions = await store.workflow_versions(ctx.services.database.read_pool, workflow_name)
        if versions:
            return versions
    raise NotFound(f"no workflow is named {workflow_name[:255]!r}")


async def update_workflow(ctx: Context, workflow_id: uuid.UUID, body: Any) -> WorkflowRecord:
    """PATCH: change the mutable fields (status and its disabled_* details) of one version."""
    update = validate_update(body)
    status = update.status or await _current_status(ctx, workflow_id)
    only_when_disabled(update, status)
    change = WorkflowStatusChange(
        status=status,
        reason=update.disabled_reason,
        actor=_actor(update),
    )
    return await _change_status(ctx, workflow_id, change)


def _actor(update: WorkflowUpdate) -> str | None:
    # The legacy body names the actor only as disabled_by; updated_by is taken as well.
    return update.updated_by or update.disabled_by


async def _current_status(ctx: Context, workflow_id: uuid.UUID) -> str:
    with _translated(ctx):
        # The primary, not a replica: the change is applied there right after.
        current = await store.get_workflow(ctx.services.database.pool, workflow_id)
    if current is None:
        raise _not_found(workflow_id)
    return current.status


async def disable_workflow(ctx: Context, workflow_id: uuid.UUID, body: Any) -> WorkflowRecord:
    """Disable a version (soft delete); the optional body gives `reason` and `updated_by`."""
    reason, actor = validate_status_body(body)
    change = WorkflowStatusChange(WorkflowStatus.DISABLED, reason=reason, actor=actor)
    return await _change_status(ctx, workflow_id, change)


async def enable_workflow(ctx: Context, workflow_id: uuid.UUID, body: Any) -> WorkflowRecord:
    """Make a version active again; its disabled_* details are cleared."""
    reason, actor = validate_status_body(body)
    change = WorkflowStatusChange(WorkflowStatus.ACTIVE, reason=reason, actor=actor)
    return await _change_status(ctx, workflow_id, change)


async def update_workflow_status(
    ctx: Context,
    workflow_id: uuid.UUID,
    status: str,
    reason: str | None = None,
    actor: str | None = None,
) -> WorkflowRecord:
    """Set any status; `reason` becomes disabled_reason or deprecation_notice where one fits."""
    check_status(status)
    reason, actor = validate_status_body({"reason": reason, "updated_by": actor})
    return await _change_status(ctx, workflow_id, WorkflowStatusChange(status, reason, actor))


async def _change_status(
    ctx: Context, workflow_id: uuid.UUID, change: WorkflowStatusChange
) -> WorkflowRecord:
    with _translated(ctx):
        updated = await store.update_workflow_status(
            ctx.services.database.pool, workflow_id, change
        )
    if updated is None:
        raise _not_found(workflow_id)
    _changed(ctx, "updated", updated, updated.updated_by)
    return updated


def _changed(ctx: Context, action: str, workflow: WorkflowRecord, actor: str | None) -> None:
    # This replica searches its own change at once; the others hear the NOTIFY.
    services = ctx.services
    if services.workflow_index is not None:
        services.workflow_index.invalidate()
    if services.self_audit is not None:
        services.self_audit.workflow_changed(action, workflow, actor)


def parse_workflow_id(value: str, field: str = "workflow_id") -> uuid.UUID:
    """A workflow id from a path or argument; anything but a UUID is a validation error."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed({field: f"must be a UUID, got {value[:40]!r}"}) from None


def _not_found(workflow_id: uuid.UUID) -> NotFound:
    return NotFound(f"no workflow has workflow_id {workflow_id}")


@contextlib.contextmanager
def _translated(ctx: Context) -> Iterator[None]:
    """Persistence failures as the domain errors both surfaces map (503, 400)."""
    try:
        yield
    except TransientDatabaseError as exc:
        log.warning("PostgreSQL could not serve a workflow catalog request: %s", exc)
        # Catalog writes are not queued: the caller keeps the request and retries.
        retry_after = ctx.services.settings.writer.retry_after_s
        raise ServiceUnavailable("PostgreSQL is unavailable", retry_after) from None
    except PermanentDataError as exc:
        # Validation mirrors the table's rules, so this means they drifted apart; the reason
        # names the SQLSTATE and constraint, never the server's message.
        raise ValidationFailed({"body": f"PostgreSQL refused the data ({exc})"}) from None
