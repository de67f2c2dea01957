"""The service audits its own catalog: created/updated workflows and every search.

The events go through the same group-commit writer as everyone's (so they are chained, and
queued on the DLQ when PostgreSQL is down), from one background task: the response that caused
them never waits, and a failure to write them never fails it; it is logged and counted. Events
recorded while a write is in flight go together in the next one, so a search costs an append
to a list rather than a task and a writer ticket of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import orjson
import uuid_utils.compat as uuid_utils

from datastorage.domain import NewAuditEvent, WorkflowRecord
from datastorage.observability.metrics import Metrics
from datastorage.persistence.writer import GroupCommitWriter

log = logging.getLogger(__name__)

SEARCH_CORRELATION = "workflow-catalog-search"  # when a search names no remediation


# Events per writer ticket: a ticket shares one fate, so a refusal stays small.
_TICKET_MAX = 500
# Events waiting while the writer is slow (PostgreSQL stalled, the DLQ slow to answer). Beyond
# this, a new event is counted as failed and logged instead of growing memory without bound.
WAITING_MAX = 20_000


class SelfAudit:
    def __init__(self, writer: GroupCommitWriter, metrics: Metrics) -> None:
        self._writer = writer
        self._metrics = metrics
        self._waiting: list[NewAuditEvent] = []
        self._refused = 0  # in a row, while the waiting list is full
        self._sender: asyncio.Task[None] | None = None

    def workflow_changed(self, action: str, workflow: WorkflowRecord, actor: str | None) -> None:
        """`action` is created or updated."""
        self._record(
            event_type=f"datastorage.workflow.{action}",
            action=action,
            actor=actor or "datastorage",
            resource_id=str(workflow.workflow_id),
            resource_name=workflow.workflow_name,
            correlation_id=f"workflow:{workflow.workflow_name}",
            data={
                "workflow_id": str(workflow.workflow_id),
                "workflow_name": workflow.workflow_name,
                "version": workflow.version,
                "status": workflow.status,
                "is_latest_version": workflow.is_latest_version,
                "content_hash": workflow.content_hash,
            },
        )

    def search_completed(
        self,
        query: dict[str, Any],
        results: list[tuple[str, int, float]],
        duration_ms: float,
        remediation_id: str | None,
    ) -> None:
        """`results`: (workflow_id, rank, final_score) in rank order."""
        self._record(
            event_type="workflow.catalog.search_completed",
            action="search_completed",
            actor="datastorage",
            resource_id="workflow-catalog",
            resource_name=None,
            correlation_id=remediation_id or SEARCH_CORRELATION,
            data={
                "query": query,
                "results": [
                    {"workflow_id": workflow_id, "rank": rank, "final_score": score}
                    for workflow_id, rank, score in results
                ],
                "result_count": len(results),
                "duration_ms": round(duration_ms, 3),
            },
        )

    async def drain(self, timeout_s: float) -> None:
        """Wait for events still being written (at shutdown, before the writer closes)."""
        if self._sender is not None and not self._sender.done():
            await asyncio.wait([self._sender], timeout=timeout_s)

    def _record(
        self,
        *,
        event_type: str,
        action: str,
        actor: str,
        resource_id: str,
        resource_name: str | None,
        correlation_id: str,
        data: dict[str, Any],
    ) -> None:
        event = NewAuditEvent(
            event_id=uuid_utils.uuid7(),
            event_version="1.0",
            event_type=event_type,
            event_timestamp=dt.datetime.now(dt.UTC),
            event_category="workflow",
            event_action=action,
            event_outcome="success",
            actor_type="service",
            actor_id=actor[:255],
            actor_ip=None,
            resource_type="workflow",
            resource_id=resource_id,
            resource_name=resource_name,
            correlation_id=correlation_id[:255],
            parent_event_id=None,
            namespace=None,
            cluster_name=None,
            severity=None,
            duration_ms=None,
            error_code=None,
            error_message=None,
            retention_days=2555,
            is_sensitive=False,
            event_data_json=orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode(),
            trace_id=None,
            span_id=None,
            may_exist=False,
        )
        if len(self._waiting) >= WAITING_MAX:
            self._metrics.self_audit_events.labels("failed").inc()
            self._refused += 1
            if self._refused % 1000 == 1:  # the first, then one line per thousand, not a flood
                log.warning(
                    "%d self-audit events not written (latest %s): %d already wait for the writer",
                    self._refused, event.event_type, len(self._waiting),
                )  # fmt: skip
            return
        self._refused = 0
        self._waiting.append(event)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="self-audit")

    async def _send(self) -> None:
        # Runs until nothing waits; what arrives during a write goes in the next one.
        while self._waiting:
            events = self._waiting[:_TICKET_MAX]
            del self._waiting[:_TICKET_MAX]
            try:
                await self._writer.submit(events)
                self._metrics.self_audit_events.labels("written").inc(len(events))
            except Exception as exc:
                self._metrics.self_audit_events.labels("failed").inc(len(events))
                log.warning("%d self-audit events were not written: %s", len(events), exc)
