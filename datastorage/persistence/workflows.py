"""SQL for the workflow catalog: versioned create, lookups, the filtered list, status changes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from datastorage.domain import (
    NewWorkflow,
    WorkflowFilter,
    WorkflowKeyset,
    WorkflowPage,
    WorkflowPageRequest,
    WorkflowRecord,
    WorkflowSearchRow,
    WorkflowStatus,
    WorkflowStatusChange,
)
from datastorage.persistence.database import Connection, classify
from datastorage.persistence.errors import DuplicateWorkflow

T = TypeVar("T")

# Same order as WorkflowRecord's fields; jsonb as text, parsed once by orjson in `_record`.
_RECORD_COLUMNS = """
    workflow_id, workflow_name, version, name, description, owner, maintainer, content,
    content_hash, parameters::text, execution_engine, container_image, container_digest,
    labels::text, custom_labels::text, detected_labels::text, status, disabled_at, disabled_by,
    disabled_reason, is_latest_version, previous_version, deprecation_notice, version_notes,
    change_summary, approved_by, approved_at, expected_success_rate, expected_duration_seconds,
    actual_success_rate, total_executions, successful_executions, created_at, created_by,
    updated_at, updated_by
"""
_JSON_FIELDS = (9, 13, 14, 15)  # parameters, labels, custom_labels, detected_labels

# Two-key advisory locks live in their own space; this first key ("WFLW") keeps the catalog's
# per-name locks apart from any other two-key lock. Names whose hashes collide only serialise.
_NAME_LOCK_SPACE = 0x57_46_4C_57

# clock_timestamp() is read after the lock is granted, so created_at follows the order in which
# versions became latest (now() would be the transaction start, taken before waiting).
_LOCK_NAME = "SELECT clock_timestamp() FROM pg_advisory_xact_lock($1, hashtext($2))"
_RETIRE_LATEST = """
    UPDATE remediation_workflows SET is_latest_version = false, updated_at = $2
    WHERE workflow_name = $1 AND is_latest_version
    RETURNING version
"""
# ON CONFLICT instead of catching the unique violation: a duplicate is an expected answer (409).
_INSERT = f"""
    INSERT INTO remediation_workflows (
        workflow_id, workflow_name, version, name, description, owner, maintainer, content,
        content_hash, parameters, execution_engine, container_image, container_digest, labels,
        custom_labels, detected_labels, status, disabled_at, disabled_by, disabled_reason,
        is_latest_version, previous_version, deprecation_notice, version_notes, change_summary,
        approved_by, approved_at, expected_success_rate, expected_duration_seconds, created_at,
        created_by, updated_at, updated_by
    ) VALUES (
        $1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14::jsonb, $15::jsonb,
        $16::jsonb, $17, $18, $19, $20, true, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30,
        $29, $30
    )
    ON CONFLICT (workflow_name, version) DO NOTHING
    RETURNING {_RECORD_COLUMNS}
"""


async def insert_workflow(db_pool: asyncpg.Pool, workflow: NewWorkflow) -> WorkflowRecord:
    """Store a new version as the latest of its name; DuplicateWorkflow if (name, version) exists.

    One transaction under a per-name lock: the previous latest stops being latest and the new
    row records its version, or (on a duplicate) nothing changes at all.
    """

    async def create(connection: Connection) -> WorkflowRecord:
        async with connection.transaction():
            now = await connection.fetchval(_LOCK_NAME, _NAME_LOCK_SPACE, workflow.workflow_name)
            previous = await connection.fetchval(_RETIRE_LATEST, workflow.workflow_name, now)
            row = await connection.fetchrow(_INSERT, *_arguments(workflow, now, previous))
            if row is None:
                # Raising inside the transaction rolls back the retirement of the latest version.
                raise DuplicateWorkflow(workflow.workflow_name, workflow.version)
            return _record(row)

    return await _with_connection(db_pool, create)


def _arguments(workflow: NewWorkflow, now: dt.datetime, previous: str | None) -> tuple[Any, ...]:
    return (
        workflow.workflow_id, workflow.workflow_name, workflow.version, workflow.name,
        workflow.description, workflow.owner, workflow.maintainer, workflow.content,
        workflow.content_hash, _json(workflow.parameters), workflow.execution_engine,
        workflow.container_image, workflow.container_digest, _json(workflow.labels),
        _json(workflow.custom_labels), _json(workflow.detected_labels), workflow.status,
        now if workflow.status == WorkflowStatus.DISABLED else None, workflow.disabled_by,
        workflow.disabled_reason, previous, workflow.deprecation_notice, workflow.version_notes,
        workflow.change_summary, workflow.approved_by, workflow.approved_at,
        workflow.expected_success_rate, workflow.expected_duration_seconds, now,
        workflow.created_by,
    )  # fmt: skip


async def get_workflow(db_pool: asyncpg.Pool, workflow_id: uuid.UUID) -> WorkflowRecord | None:
    """The stored version with this id, or None."""
    sql = f"SELECT {_RECORD_COLUMNS} FROM remediation_workflows WHERE workflow_id = $1"
    row = await _run(db_pool.fetchrow(sql, workflow_id))
    return None if row is None else _record(row)


async def workflow_versions(db_pool: asyncpg.Pool, workflow_name: str) -> list[WorkflowRecord]:
    """Every version of one name, newest first (empty for an unknown name)."""
    # A name has a handful of versions: the (workflow_name, version) index finds them and
    # sorting them costs nothing, so no index of its own.
    sql = (
        f"SELECT {_RECORD_COLUMNS} FROM remediation_workflows WHERE workflow_name = $1 "
        "ORDER BY created_at DESC, workflow_id DESC"
    )
    rows = await _run(db_pool.fetch(sql, workflow_name))
    return [_record(row) for row in rows]


async def get_workflow_version(
    db_pool: asyncpg.Pool, workflow_name: str, version: str
) -> WorkflowRecord | None:
    """The stored (workflow_name, version), or None."""
    sql = (
        f"SELECT {_RECORD_COLUMNS} FROM remediation_workflows "
        "WHERE workflow_name = $1 AND version = $2"
    )
    row = await _run(db_pool.fetchrow(sql, workflow_name, version))
    return None if row is None else _record(row)


def _export_where(latest_only: bool, after: WorkflowRecord | None) -> tuple[str, list[Any]]:
    clauses = ["is_latest_version"] if latest_only else []
    params: list[Any] = []
    if after is not None:
        clauses.append("(workflow_name, created_at, workflow_id) > ($1, $2, $3)")
        params = [after.workflow_name, after.created_at, after.workflow_id]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def list_for_export(
    db_pool: asyncpg.Pool, *, latest_only: bool, after: WorkflowRecord | None, limit: int
) -> list[WorkflowRecord]:
    """A page by name, each name's versions oldest first: creating them in this order again
    makes the same version the latest."""
    where, params = _export_where(latest_only, after)
    sql = (
        f"SELECT {_RECORD_COLUMNS} FROM remediation_workflows{where} "
        f"ORDER BY workflow_name, created_at, workflow_id LIMIT {int(limit)}"
    )
    rows = await _run(db_pool.fetch(sql, *params))
    return [_record(row) for row in rows]


async def count_for_export(db_pool: asyncpg.Pool, *, latest_only: bool) -> int:
    """How many versions `list_for_export` pages through."""
    where, params = _export_where(latest_only, None)
    sql = f"SELECT count(*) FROM remediation_workflows{where}"
    return int(await _run(db_pool.fetchval(sql, *params)))


def _where(filters: WorkflowFilter, after: WorkflowKeyset | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if filters.status is not None:
        clauses.append(f"status = {bind(filters.status)}")
    if filters.workflow_name is not None:
        clauses.append(f"workflow_name = {bind(filters.workflow_name)}")
    # One containment test for every label filter: the GIN index on labels answers it whole.
    wanted: dict[str, Any] = {
        name: value
        for name, value in (
            ("signal_type", filters.signal_type),
            ("component", filters.component),
            ("priority", filters.priority),
        )
        if value is not None
    }
    if filters.environment is not None:
        wanted["environment"] = [filters.environment]
    if wanted:
        clauses.append(f"labels @> {bind(_json(wanted))}::jsonb")
    if after is not None:
        at, workflow_id = bind(after.created_at), bind(after.workflow_id)
        clauses.append(
            f"(created_at < {at} OR (created_at = {at} AND workflow_id > {workflow_id}))"
        )
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def list_workflows(
    db_pool: asyncpg.Pool, filters: WorkflowFilter, page: WorkflowPageRequest
) -> WorkflowPage:
    """One page in list order (created_at DESC, workflow_id); `total` only when asked for."""
    where, params = _where(filters, page.after)
    # LIMIT/OFFSET as literals, as for audit events: both are validated integers.
    sql = (
        f"SELECT {_RECORD_COLUMNS} FROM remediation_workflows{where} "
        f"ORDER BY created_at DESC, workflow_id LIMIT {int(page.limit) + 1}"
    )
    if page.offset and page.after is None:
        sql += f" OFFSET {int(page.offset)}"

    async def read(connection: Connection) -> WorkflowPage:
        rows = await connection.fetch(sql, *params)
        total = None
        if page.with_total:
            count_where, count_params = _where(filters, None)
            total = await connection.fetchval(
                f"SELECT count(*) FROM remediation_workflows{count_where}", *count_params
            )
        has_more = len(rows) > page.limit
        workflows = [_record(row) for row in rows[: page.limit]]
        last = workflows[-1] if workflows and has_more else None
        keyset = WorkflowKeyset(last.created_at, last.workflow_id) if last else None
        return WorkflowPage(workflows, has_more=has_more, total=total, next_keyset=keyset)

    return await _with_connection(db_pool, read)


async def count_workflows(db_pool: asyncpg.Pool, filters: WorkflowFilter) -> int:
    """How many versions match `filters`."""
    where, params = _where(filters, None)
    sql = f"SELECT count(*) FROM remediation_workflows{where}"
    return int(await _run(db_pool.fetchval(sql, *params)))


# SET expressions read the row as it was, so `status` there is the status before this change.
# Entering `disabled` stamps disabled_at; staying disabled keeps the stamp and any reason/actor
# not restated; leaving it clears all three, since they describe the current disabled state.
# The arguments are named once in `change`, each with one type (PostgreSQL refuses a parameter
# used both as a varchar column value and as text).
_UPDATE_STATUS = f"""
    UPDATE remediation_workflows SET
        status = new_status,
        disabled_at = CASE WHEN new_status <> 'disabled' THEN NULL
                           WHEN status = 'disabled' THEN disabled_at ELSE now() END,
        disabled_by = CASE WHEN new_status <> 'disabled' THEN NULL
                           WHEN status = 'disabled' THEN coalesce(actor, disabled_by)
                           ELSE actor END,
        disabled_reason = CASE WHEN new_status <> 'disabled' THEN NULL
                               WHEN status = 'disabled' THEN coalesce(reason, disabled_reason)
                               ELSE reason END,
        deprecation_notice = CASE WHEN new_status = 'deprecated'
                                  THEN coalesce(reason, deprecation_notice)
                                  ELSE deprecation_notice END,
        updated_at = now(),
        updated_by = actor
    FROM (SELECT $2::text AS new_status, $3::text AS reason, $4::text AS actor) AS change
    WHERE workflow_id = $1
    RETURNING {_RECORD_COLUMNS}
"""


async def update_workflow_status(
    db_pool: asyncpg.Pool, workflow_id: uuid.UUID, change: WorkflowStatusChange
) -> WorkflowRecord | None:
    """Apply a status change; the updated version, or None when no version has this id."""
    row = await _run(
        db_pool.fetchrow(_UPDATE_STATUS, workflow_id, change.status, change.reason, change.actor)
    )
    return None if row is None else _record(row)


_SEARCH_COLUMNS = """
    workflow_id, workflow_name, version, status, is_latest_version, created_at, labels::text,
    detected_labels::text, custom_labels::text, name, description, container_image,
    container_digest, parameters::text
"""


async def latest_workflows_for_search(db_pool: asyncpg.Pool) -> list[WorkflowSearchRow]:
    """The latest version of every name, whatever its status, with what label search reads."""
    sql = f"SELECT {_SEARCH_COLUMNS} FROM remediation_workflows WHERE is_latest_version"
    rows = await _run(db_pool.fetch(sql))
    return [_search_row(row) for row in rows]


def _search_row(row: asyncpg.Record) -> WorkflowSearchRow:
    (workflow_id, workflow_name, version, status, is_latest, created_at, labels, detected,
     custom, title, description, image, digest, parameters) = row.values()  # fmt: skip
    return WorkflowSearchRow(
        workflow_id=workflow_id,
        workflow_name=workflow_name,
        version=version,
        status=status,
        is_latest_version=is_latest,
        created_at=created_at,
        labels=orjson.loads(labels),
        detected_labels=orjson.loads(detected),
        custom_labels=orjson.loads(custom),
        title=title,
        description=description,
        container_image=image,
        container_digest=digest,
        parameters_json=parameters,
    )


async def _with_connection(db_pool: asyncpg.Pool, work: Callable[[Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        async with db_pool.acquire() as connection:
            return await work(connection)

    return await _run(run())


async def _run(operation: Awaitable[T]) -> T:
    try:
        return await operation
    except Exception as exc:
        # Callers see TransientDatabaseError / PermanentDataError (DuplicateWorkflow included),
        # never driver exceptions; anything unrecognised is a defect and propagates as it is.
        translated = classify(exc)
        if translated is None or translated is exc:
            raise
        raise translated from exc


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _record(row: asyncpg.Record) -> WorkflowRecord:
    values = list(row.values())
    for index in _JSON_FIELDS:
        if values[index] is not None:
            values[index] = orjson.loads(values[index])
    return WorkflowRecord(*values)
