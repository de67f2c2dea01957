"""What the write path does when PostgreSQL cannot take a write: queue it on the Redis DLQ.

Acknowledgement (202) comes only after Redis took the entries; when it cannot (full, down),
the request gets 503 + Retry-After and nothing is acknowledged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from datastorage.domain import NewAuditEvent, format_timestamp
from datastorage.observability.metrics import Metrics
from datastorage.persistence.dlq import (
    EVENTS,
    NOTIFICATIONS,
    DeadLetterQueue,
    DlqFull,
    DlqUnavailable,
    StreamPair,
)
from datastorage.persistence.dlq_messages import NOTIFICATION_AUDIT, DlqMessage, event_message
from datastorage.persistence.dlq_monitor import DlqMonitor
from datastorage.persistence.errors import WriteUnavailable


class DlqFallback:
    """Queues events or notification records; raises WriteUnavailable when it cannot."""

    def __init__(
        self, dlq: DeadLetterQueue, monitor: DlqMonitor, metrics: Metrics, retry_after_s: int
    ) -> None:
        self._dlq = dlq
        self._monitor = monitor
        self._metrics = metrics
        self._retry_after_s = retry_after_s

    async def events(self, events: Sequence[NewAuditEvent], reason: str) -> bool:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        messages = [event_message(event, reason, now).encode() for event in events]
        await self._enqueue(EVENTS, messages)
        return True

    async def notification(self, payload: dict[str, Any], reason: str) -> bool:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        await self._enqueue(
            NOTIFICATIONS, [DlqMessage(NOTIFICATION_AUDIT, payload, now, 0, reason).encode()]
        )
        return True

    async def _enqueue(self, stream: StreamPair, messages: list[bytes]) -> None:
        try:
            depth = await self._dlq.enqueue(stream, messages)
        except DlqFull as exc:
            self._metrics.dlq_refused.labels(stream.name, "full").inc(len(messages))
            self._monitor.observe_depth(stream, self._dlq.capacity)
            raise WriteUnavailable(
                f"PostgreSQL is unavailable and the dead-letter queue is full ({exc})",
                self._retry_after_s,
            ) from None
        except DlqUnavailable:
            self._metrics.dlq_refused.labels(stream.name, "unavailable").inc(len(messages))
            raise WriteUnavailable(
                "PostgreSQL and the dead-letter queue (Redis) are both unavailable",
                self._retry_after_s,
            ) from None
        self._metrics.dlq_enqueued.labels(stream.name).inc(len(messages))
        self._monitor.observe_depth(stream, depth)
