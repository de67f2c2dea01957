"""DLQ depth: gauges, and the warnings operators act on before the queue refuses writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from datastorage.observability.metrics import Metrics
from datastorage.persistence.dlq import (
    STREAMS,
    DeadLetterQueue,
    DlqUnavailable,
    StreamPair,
    StreamStatus,
)

log = logging.getLogger(__name__)

# (ratio, log level, what the log line says); checked from the highest down.
THRESHOLDS = (
    (0.95, logging.ERROR, "overflow imminent"),
    (0.90, logging.ERROR, "critical"),
    (0.80, logging.INFO, "warning"),
)


class DlqMonitor:
    """Reads every stream's status on a timer and after each enqueue; exports and warns."""

    def __init__(self, dlq: DeadLetterQueue, metrics: Metrics, interval_s: float = 10.0) -> None:
        self._dlq = dlq
        self._metrics = metrics
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.latest: dict[str, StreamStatus] = {}
        for ratio, _, label in THRESHOLDS:
            metrics.dlq_capacity_threshold.labels(label.replace(" ", "_")).set(ratio)

    async def refresh(self) -> dict[str, StreamStatus]:
        """Every stream's status now (DlqUnavailable when Redis does not answer)."""
        for stream in STREAMS:
            status = await self._dlq.status(stream)
            self.latest[stream.name] = status
            labels = (stream.name,)
            self._metrics.dlq_dead_letters.labels(*labels).set(status.dead_letters)
            self._metrics.dlq_oldest_age.labels(*labels).set(status.oldest_age_s)
            self.observe_depth(stream, status.depth)
        return self.latest

    def observe_depth(self, stream: StreamPair, depth: int) -> None:
        """Record a depth just read (the enqueue script returns it) and warn past a threshold."""
        capacity = self._dlq.capacity
        ratio = depth / capacity if capacity else 0.0
        self._metrics.dlq_depth.labels(stream.name).set(depth)
        self._metrics.dlq_capacity_ratio.labels(stream.name).set(ratio)
        for threshold, level, label in THRESHOLDS:
            if ratio >= threshold:
                log.log(
                    level,
                    "DLQ %s at %.0f%% of capacity (%d of %d entries): %s",
                    stream.queue, ratio * 100, depth, capacity, label,
                )  # fmt: skip
                break

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dlq-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.refresh()
            except DlqUnavailable:
                log.warning("DLQ status unavailable: Redis does not answer")
            except Exception:
                log.exception("DLQ status check failed")
            await asyncio.sleep(self._interval_s)
