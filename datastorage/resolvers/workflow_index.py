"""The in-memory search index: the latest version of every workflow, bucketed by signal_type.

A search reads one bucket and scores it in Python (microseconds per candidate) instead of
sending a scoring query to PostgreSQL. It stays coherent across replicas because every committed
catalog change is NOTIFYed (migration 0005) and marks the index stale; the next search reloads
it (one query for the whole catalog, shared by concurrent searches). A replica's own writes
mark it stale directly, so a process always sees its own changes. While the listener is not
connected (it may miss notifications) the index is trusted for at most `unheard_max_age_s`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from datastorage.domain import WorkflowSearchRow
from datastorage.resolvers.workflow_scoring import (
    MandatoryLabels,
    WorkflowCandidate,
    build_index,
)

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[Sequence[WorkflowSearchRow]]]


class WorkflowIndex:
    def __init__(
        self,
        load: Loader,
        *,
        listening: Callable[[], bool] = lambda: False,
        unheard_max_age_s: float = 2.0,
        on_load: Callable[[], None] = lambda: None,
    ) -> None:
        self._load = load
        self._on_load = on_load
        self.listening = listening
        self._unheard_max_age_s = unheard_max_age_s
        self._buckets: dict[str, tuple[WorkflowCandidate, ...]] = {}
        self._rows: dict[uuid.UUID, WorkflowSearchRow] = {}
        self._stale = True
        self._loaded_at = 0.0
        self._retry_at = 0.0
        self.retry_s = 1.0
        self._lock = asyncio.Lock()
        self.loads = 0

    def invalidate(self) -> None:
        """The catalog changed (or may have): the next search reloads."""
        self._stale = True

    async def snapshot(
        self, signal_type: str
    ) -> tuple[tuple[WorkflowCandidate, ...], dict[uuid.UUID, WorkflowSearchRow]]:
        """The candidates of one signal_type, and the details of every row, from one load."""
        if self._needs_load():
            await self._reload()
        return self._buckets.get(signal_type, ()), self._rows

    def _needs_load(self) -> bool:
        if self._stale:
            return True
        return not self.listening() and time.monotonic() - self._loaded_at > self._unheard_max_age_s

    async def _reload(self) -> None:
        async with self._lock:
            if not self._needs_load():
                return  # another search reloaded it while this one waited
            if self._loaded_at and time.monotonic() < self._retry_at:
                return  # the last reload failed moments ago: serve what is loaded
            # Cleared before the query: a change committed during the load marks it stale
            # again, and the next search reloads once more.
            self._stale = False
            try:
                rows = await self._load()
            except Exception:
                self._stale = True
                if not self._loaded_at:
                    raise  # nothing to serve yet
                # PostgreSQL is unreachable, so nobody can change the catalog either: the
                # loaded index stays right and searches go on. Retry in a moment.
                self._retry_at = time.monotonic() + self.retry_s
                log.warning("workflow index reload failed; serving the loaded catalog")
                return
            self._rows = {row.workflow_id: row for row in rows}
            self._buckets = build_index(_candidate(row) for row in rows)
            self._loaded_at = time.monotonic()
            self.loads += 1
            # Tens of thousands of long-lived objects: keep them out of the collector's full
            # passes, which otherwise paused searches 75-130 ms every few seconds (measured).
            # Collect first, so garbage with cycles (the previous index's) is not frozen with it.
            gc.collect()
            gc.freeze()
            self._on_load()


def _candidate(row: WorkflowSearchRow) -> WorkflowCandidate:
    labels = row.labels
    environment = labels.get("environment") or []
    return WorkflowCandidate(
        workflow_id=row.workflow_id,
        created_at=row.created_at,
        status=row.status,
        is_latest_version=row.is_latest_version,
        labels=MandatoryLabels(
            signal_type=str(labels.get("signal_type", "")),
            severity=str(labels.get("severity", "")),
            component=str(labels.get("component", "")),
            environment=tuple(
                str(item)
                for item in (environment if isinstance(environment, list) else [environment])
            ),
            priority=str(labels.get("priority", "")),
        ),
        detected_labels=row.detected_labels or {},
        custom_labels=row.custom_labels or {},
    )
