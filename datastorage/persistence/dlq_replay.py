"""Replay: every replica drains the DLQ into PostgreSQL through the same idempotent write path.

Consumers of the group `data-storage-retry-workers` (one per process, uniquely named) read
entries with XREADGROUP, store them, then XACK+XDEL them in one transaction. An entry is removed
only after its commit, and a replayed event carries its `event_id`, so an entry delivered twice
(its consumer died between commit and acknowledgement, and XAUTOCLAIM gave it to another) is
found stored and not written again.

While PostgreSQL is down, entries stay where they are and the drainer backs off exponentially;
an outage never counts against an entry. An entry that PostgreSQL refuses (a permanent error),
that cannot be decoded, or that failed `max_retries` times for another reason, goes to the
dead-letter stream with its reason, so one poison entry never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from datastorage.domain import NewAuditEvent
from datastorage.observability.metrics import Metrics
from datastorage.persistence.circuit_breaker import BreakerState
from datastorage.persistence.dlq import (
    EVENTS,
    NOTIFICATIONS,
    DeadLetterQueue,
    DlqUnavailable,
    Entry,
    StreamPair,
)
from datastorage.persistence.dlq_messages import (
    DlqMessage,
    UndecodableEntry,
    decode_message,
    event_from_payload,
)
from datastorage.persistence.errors import (
    PermanentDataError,
    TransientDatabaseError,
    WriteRejected,
    WriteUnavailable,
)
from datastorage.persistence.writer import GroupCommitWriter

log = logging.getLogger(__name__)

# Stores one replayed notification record; True when new, False when already stored.
NotificationStore = Callable[[dict[str, Any]], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    batch: int = 500
    max_retries: int = 6
    claim_idle_ms: int = 30_000
    claim_every_s: float = 10.0
    # Idle polling rather than a blocking XREADGROUP: a blocked read cannot be cancelled
    # cleanly at shutdown (the client waits for Redis), and two reads a second cost nothing.
    poll_interval_s: float = 0.5
    backoff_min_s: float = 0.25
    # Short: while the breaker is open a round costs nothing (no Redis, no PostgreSQL), and
    # replay should start within a second of PostgreSQL answering again.
    backoff_max_s: float = 1.0


def consumer_name() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pod gets a new one)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class _Unavailable(Exception):
    """PostgreSQL could not take the replay now; entries stay queued."""


class DlqDrainer:
    def __init__(
        self,
        dlq: DeadLetterQueue,
        writer: GroupCommitWriter,
        metrics: Metrics,
        config: ReplayConfig,
        *,
        store_notification: NotificationStore | None = None,
        consumer: str | None = None,
    ) -> None:
        self._dlq = dlq
        self._writer = writer
        self._metrics = metrics
        self._config = config
        self._store_notification = store_notification
        self.consumer = consumer or consumer_name()
        self._task: asyncio.Task[None] | None = None
        # Our own unacknowledged entries are re-read first after a failure or a restart.
        self._recheck_pending = {EVENTS.name: True, NOTIFICATIONS.name: True}
        self._last_claim = 0.0
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dlq-drainer")

    async def stop(self) -> None:
        if self._task is None:
            return
        # The flag as well as the cancellation: the Redis client may swallow a CancelledError
        # that arrives mid-command, and the loop must end anyway.
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, 5.0)
        self._task = None

    async def drain(self, budget_s: float) -> int:
        """Replay what can be replayed within `budget_s` (at shutdown); returns entries stored."""
        deadline = time.monotonic() + budget_s
        total = 0
        with contextlib.suppress(TimeoutError, DlqUnavailable, _Unavailable):
            async with asyncio.timeout(budget_s):
                while time.monotonic() < deadline:
                    moved = await self.drain_once()
                    total += moved
                    if moved == 0:
                        break
        return total

    async def drain_once(self) -> int:
        """One read-and-store round over both streams; returns entries removed from the queue."""
        await self._claim_abandoned_if_due()
        done = 0
        for stream in (EVENTS, NOTIFICATIONS):
            entries = await self._next_entries(stream)
            if entries:
                done += await self._replay(stream, entries)
        return done

    async def _run(self) -> None:
        for stream in (EVENTS, NOTIFICATIONS):
            await self._ensure_group_until_ready(stream)
        backoff = self._config.backoff_min_s
        while not self._stopping:
            try:
                if self._writer.breaker.state is BreakerState.OPEN:
                    raise _Unavailable("PostgreSQL circuit breaker is open")
                if not await self.drain_once():
                    await asyncio.sleep(self._config.poll_interval_s)
                backoff = self._config.backoff_min_s
            except (_Unavailable, DlqUnavailable) as exc:
                log.info("DLQ replay waits %.2fs: %s", backoff, exc)
                self._recheck_pending = dict.fromkeys(self._recheck_pending, True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._config.backoff_max_s)
            except Exception:
                log.exception("DLQ replay round failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._config.backoff_max_s)

    async def _ensure_group_until_ready(self, stream: StreamPair) -> None:
        delay = self._config.backoff_min_s
        while not self._stopping:
            try:
                await self._dlq.ensure_group(stream)
                return
            except DlqUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.backoff_max_s)

    async def _next_entries(self, stream: StreamPair) -> list[Entry]:
        if self._recheck_pending[stream.name]:
            entries = await self._dlq.read(stream, self.consumer, self._config.batch, pending=True)
            if entries:
                return entries
            self._recheck_pending[stream.name] = False
        return await self._dlq.read(stream, self.consumer, self._config.batch, pending=False)

    async def _claim_abandoned_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_claim < self._config.claim_every_s:
            return
        self._last_claim = now
        for stream in (EVENTS, NOTIFICATIONS):
            claimed = await self._dlq.claim_abandoned(
                stream, self.consumer, self._config.claim_idle_ms, self._config.batch
            )
            if claimed:
                log.info("claimed %d abandoned DLQ entries of %s", len(claimed), stream.queue)
                # They are now ours and pending: the next round reads them.
                self._recheck_pending[stream.name] = True

    async def _replay(self, stream: StreamPair, entries: list[Entry]) -> int:
        gone = [entry.id for entry in entries if entry.message is None]
        await self._dlq.remove(stream, gone)
        work: list[tuple[Entry, DlqMessage]] = []
        for entry in entries:
            if entry.message is None:
                continue
            try:
                message = decode_message(entry.message)
            except UndecodableEntry as exc:
                await self._bury(stream, entry, None, f"undecodable: {exc}", "undecodable")
                continue
            if message.retry_count >= self._config.max_retries:
                await self._bury(stream, entry, message, message.last_error, "max_retries")
                continue
            work.append((entry, message))
        if stream is EVENTS:
            stored = await self._replay_events(work)
        else:
            stored = await self._replay_notifications(work)
        return stored + len(gone)

    async def _replay_events(self, work: list[tuple[Entry, DlqMessage]]) -> int:
        tickets: list[tuple[Entry, DlqMessage, NewAuditEvent]] = []
        for entry, message in work:
            try:
                tickets.append((entry, message, event_from_payload(message.payload)))
            except UndecodableEntry as exc:
                await self._bury(EVENTS, entry, message, f"undecodable: {exc}", "undecodable")
        if not tickets:
            return 0
        # The whole read batch as one ticket first: one flush, no per-entry futures.
        try:
            await self._writer.submit([event for _, _, event in tickets], fallback_allowed=False)
        except WriteUnavailable as exc:
            raise _Unavailable(str(exc)) from None
        except Exception as exc:
            # Refused or failed: find the entries responsible, one ticket each, below.
            log.info("replaying %d DLQ entries together failed (%s); one by one", len(tickets), exc)
        else:
            await self._finish(EVENTS, [entry for entry, _, _ in tickets])
            return len(tickets)
        # One ticket per entry: the writer still batches them into few flushes, and a
        # permanent error isolates exactly the entries PostgreSQL refuses.
        outcomes = await asyncio.gather(
            *(self._writer.submit([event], fallback_allowed=False) for _, _, event in tickets),
            return_exceptions=True,
        )
        stored: list[Entry] = []
        unavailable: BaseException | None = None
        for (entry, message, _), outcome in zip(tickets, outcomes, strict=True):
            if isinstance(outcome, WriteRejected):
                await self._bury(EVENTS, entry, message, outcome.reason, "rejected")
            elif isinstance(outcome, WriteUnavailable):
                unavailable = outcome
            elif isinstance(outcome, BaseException):
                await self._retry_later(EVENTS, entry, message, outcome)
            else:
                stored.append(entry)
        await self._finish(EVENTS, stored)
        if unavailable is not None:
            raise _Unavailable(str(unavailable))
        return len(stored)

    async def _replay_notifications(self, work: list[tuple[Entry, DlqMessage]]) -> int:
        if self._store_notification is None:
            return 0
        stored: list[Entry] = []
        try:
            for entry, message in work:
                try:
                    await self._store_notification(message.payload)
                    stored.append(entry)
                except PermanentDataError as exc:
                    await self._bury(NOTIFICATIONS, entry, message, str(exc), "rejected")
                except TransientDatabaseError as exc:
                    raise _Unavailable(str(exc)) from None
                except Exception as exc:
                    await self._retry_later(NOTIFICATIONS, entry, message, exc)
        finally:
            await self._finish(NOTIFICATIONS, stored)
        return len(stored)

    async def _finish(self, stream: StreamPair, stored: list[Entry]) -> None:
        if not stored:
            return
        await self._dlq.remove(stream, [entry.id for entry in stored])
        self._metrics.dlq_replayed.labels(stream.name).inc(len(stored))
        now_ms = time.time() * 1000
        for entry in stored:
            self._metrics.dlq_replay_lag.observe(max(0.0, now_ms - _entry_ms(entry)) / 1000)

    async def _retry_later(
        self, stream: StreamPair, entry: Entry, message: DlqMessage, exc: BaseException
    ) -> None:
        log.error("DLQ entry %s of %s failed: %r", entry.id, stream.queue, exc)
        await self._dlq.requeue(stream, entry, message.retried(type(exc).__name__).encode())

    async def _bury(
        self,
        stream: StreamPair,
        entry: Entry,
        message: DlqMessage | None,
        reason: str,
        kind: str,
    ) -> None:
        log.error("DLQ entry %s of %s moved to %s: %s", entry.id, stream.queue, stream.dead, reason)
        if message is None:
            # Keep the undecodable original as it was, beside the reason.
            raw = (entry.message or b"").decode("utf-8", "replace")
            message = DlqMessage("undecodable", {"raw": raw}, "", 0, reason)
        else:
            message = DlqMessage(
                message.type, message.payload, message.timestamp, message.retry_count, reason
            )
        await self._dlq.bury(stream, entry, message.encode())
        self._metrics.dlq_dead_lettered.labels(stream.name, kind).inc()


def _entry_ms(entry: Entry) -> float:
    return float(entry.id.split("-", 1)[0])
