"""The group-commit writer: every audit write of this process goes through it.

A request hands its events over as one ticket and awaits the flush that carries it; a flush
writes many tickets in one transaction. A ticket is never split, so a request's events share
one fate (stored together, refused together, or queued together).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from datastorage.domain import NewAuditEvent, StoredEvent, WriteResult
from datastorage.observability.metrics import Metrics
from datastorage.persistence.audit_events import ChainHasher, store_events
from datastorage.persistence.chain_heads import ChainHeadCache
from datastorage.persistence.circuit_breaker import CircuitBreaker
from datastorage.persistence.database import classify
from datastorage.persistence.errors import (
    MissingPartition,
    PermanentDataError,
    TransientDatabaseError,
    WriteRejected,
    WriteUnavailable,
)

log = logging.getLogger(__name__)

# Called with the events of a flush that PostgreSQL could not take and why; True when they are
# queued durably elsewhere (the Redis DLQ). Raises WriteUnavailable (or returns False) when not.
Fallback = Callable[[Sequence[NewAuditEvent], str], Awaitable[bool]]
# Called when a flush failed because a partition is missing, before the retry.
Repair = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WriterConfig:
    max_batch: int = 1000
    max_wait_s: float = 0.005
    queue_max: int = 50_000
    flushers: int = 2
    enqueue_timeout_s: float = 2.0
    retry_after_s: int = 1
    transient_retries: int = 3
    retry_base_s: float = 0.05


@dataclass(slots=True)
class _Ticket:
    events: Sequence[NewAuditEvent]
    future: asyncio.Future[WriteResult]
    # False for DLQ replay: its events are already queued, a failure leaves them there.
    fallback_allowed: bool = True
    enqueued_at: float = field(default_factory=time.monotonic)


class GroupCommitWriter:
    """Batches concurrent writes into few transactions; answers each request after its commit."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        hasher: ChainHasher,
        config: WriterConfig,
        metrics: Metrics,
        *,
        fallback: Fallback | None = None,
        repair: Repair | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._pool = pool
        self._hasher = hasher
        self._config = config
        self._metrics = metrics
        self._fallback = fallback
        self._repair = repair
        self.breaker = breaker or CircuitBreaker()
        # Chain heads this process committed last: most flushes then need one statement.
        self._heads = ChainHeadCache()
        self._tickets: collections.deque[_Ticket] = collections.deque()
        self._queued = 0
        self._work = asyncio.Event()
        self._space = asyncio.Event()
        self._settled = asyncio.Event()  # set after every flush
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._in_flight = 0
        # Set by start(). asyncio.get_running_loop() costs a getpid() system call on every use
        # (its fork check): measured at 5% of a single-event request.
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Events accepted but not yet answered (queued plus being flushed)."""
        return self._queued + self._in_flight

    def set_fallback(self, fallback: Fallback | None) -> None:
        self._fallback = fallback

    def start(self) -> None:
        """Start the flush tasks (one per connection the writer may hold)."""
        self._loop = asyncio.get_running_loop()
        for index in range(self._config.flushers):
            self._tasks.append(asyncio.create_task(self._run(), name=f"audit-writer-{index}"))

    async def submit(
        self, events: Sequence[NewAuditEvent], *, fallback_allowed: bool = True
    ) -> WriteResult:
        """Write `events` together; returns after they are committed (or queued by the fallback)."""
        if self._closing:
            raise WriteUnavailable("the service is shutting down", self._config.retry_after_s)
        if self._loop is None:
            raise WriteUnavailable("the writer is not started", self._config.retry_after_s)
        await self._wait_for_room(len(events))
        future: asyncio.Future[WriteResult] = self._loop.create_future()
        self._tickets.append(_Ticket(events, future, fallback_allowed))
        self._queued += len(events)
        self._work.set()
        return await future

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every accepted write is answered; False if the timeout came first."""
        deadline = time.monotonic() + timeout_s
        while self.queued:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), remaining)
        return True

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking writes, flush what is queued, then stop the flush tasks."""
        self._closing = True
        self._work.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        self._fail_leftovers()

    async def _wait_for_room(self, count: int) -> None:
        # Backpressure: a full queue makes writers wait a little, then refuse with 503.
        deadline = time.monotonic() + self._config.enqueue_timeout_s
        while self._queued + count > self._config.queue_max and self._queued > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WriteUnavailable("the write queue is full", self._config.retry_after_s)
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), remaining)
            except TimeoutError:
                continue

    async def _run(self) -> None:
        while True:
            if not self._tickets:
                if self._closing:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            await self._gather_window()
            batch = self._take_batch()
            if batch:
                await self._flush(batch)

    async def _gather_window(self) -> None:
        # Wait until the batch is full or the oldest ticket has waited max_wait, but only while
        # another flush is running: an idle writer flushes at once (no added latency when
        # quiet), a busy one lets the batch grow until the running flush frees the database.
        if self._closing or not self._tickets or self._in_flight == 0:
            return
        delay = self._tickets[0].enqueued_at + self._config.max_wait_s - time.monotonic()
        if delay > 0 and self._queued < self._config.max_batch:
            await asyncio.sleep(delay)

    def _take_batch(self) -> list[_Ticket]:
        batch: list[_Ticket] = []
        size = 0
        while self._tickets:
            ticket = self._tickets[0]
            if batch and size + len(ticket.events) > self._config.max_batch:
                break
            self._tickets.popleft()
            batch.append(ticket)
            size += len(ticket.events)
        self._queued -= size
        self._in_flight += size
        self._space.set()
        return batch

    async def _flush(self, batch: list[_Ticket]) -> None:
        size = sum(len(ticket.events) for ticket in batch)
        try:
            await self._write(batch)
        except Exception:  # a bug, not a database condition: answer, count, keep flushing
            log.exception("audit flush failed unexpectedly")
            self._metrics.flush_failures.labels("unexpected").inc()
            for ticket in batch:
                _settle(
                    ticket, exception=WriteUnavailable("internal error", self._config.retry_after_s)
                )
        finally:
            self._in_flight -= size
            self._settled.set()

    async def _write(self, batch: list[_Ticket]) -> None:
        events = [event for ticket in batch for event in ticket.events]
        started = time.perf_counter()
        try:
            results = await self._store_with_retries(events)
        except PermanentDataError as exc:
            self._metrics.flush_failures.labels("permanent").inc()
            await self._isolate(batch, exc)
            return
        except TransientDatabaseError as exc:
            await self._fall_back(batch, events, exc)
            return
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(events))
        self._metrics.count_written(
            (event.event_category, event.event_outcome)
            for event, result in zip(events, results, strict=True)
            if not result.duplicate
        )
        offset = 0
        for ticket in batch:
            count = len(ticket.events)
            _settle(ticket, result=WriteResult(stored=results[offset : offset + count]))
            offset += count

    async def _store_with_retries(self, events: list[NewAuditEvent]) -> list[StoredEvent]:
        attempt = 0
        repaired = False
        while True:
            if not self.breaker.allow():
                # Open: PostgreSQL failed repeatedly; do not hold requests for retries.
                raise TransientDatabaseError("PostgreSQL circuit breaker is open")
            try:
                async with self._pool.acquire() as connection:
                    stored = await store_events(connection, events, self._hasher, self._heads)
                self.breaker.record_success()
                return stored
            except Exception as exc:
                translated = classify(exc)
                if translated is None:
                    raise
                if isinstance(translated, PermanentDataError):
                    self.breaker.record_success()  # PostgreSQL answered; the data was bad
                    raise translated from exc
                if isinstance(translated, MissingPartition):
                    self.breaker.record_success()  # PostgreSQL answered
                    if repaired or self._repair is None:
                        # Maintenance ran and the month is still not kept (e.g. a replayed event
                        # older than the retained months): retrying can never store it.
                        raise PermanentDataError(
                            "no partition covers the event date (outside the months kept)",
                            sqlstate="23514",
                        ) from exc
                    repaired = True
                    await self._repair()
                    continue
                self.breaker.record_failure()
                attempt += 1
                self._metrics.flush_failures.labels("transient").inc()
                if attempt > self._config.transient_retries:
                    raise translated from exc
                # Jittered exponential backoff so replicas do not retry in lockstep.
                await asyncio.sleep(
                    self._config.retry_base_s * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                )

    async def _isolate(self, batch: list[_Ticket], exc: PermanentDataError) -> None:
        # Only the tickets whose data is bad are refused; the others are written on their own.
        if len(batch) == 1:
            _settle(batch[0], exception=WriteRejected(f"PostgreSQL refused the data ({exc})"))
            return
        for ticket in batch:
            await self._write([ticket])

    async def _fall_back(
        self, batch: list[_Ticket], events: list[NewAuditEvent], exc: Exception
    ) -> None:
        log.warning("PostgreSQL could not take %d events: %s", len(events), exc)
        allowed = [ticket for ticket in batch if ticket.fallback_allowed]
        refusal = WriteUnavailable("PostgreSQL is unavailable", self._config.retry_after_s)
        queued = False
        if allowed and self._fallback is not None:
            try:
                queued = await self._fallback(
                    [event for ticket in allowed for event in ticket.events], str(exc)
                )
            except WriteUnavailable as unavailable:
                refusal = unavailable
            except Exception:
                log.exception("the write fallback failed")
        for ticket in batch:
            if queued and ticket.fallback_allowed:
                _settle(ticket, result=WriteResult(queued=True))
            else:
                _settle(ticket, exception=refusal)

    def _fail_leftovers(self) -> None:
        while self._tickets:
            ticket = self._tickets.popleft()
            self._queued -= len(ticket.events)
            _settle(
                ticket,
                exception=WriteUnavailable("the service stopped", self._config.retry_after_s),
            )


def _settle(
    ticket: _Ticket, *, result: WriteResult | None = None, exception: Exception | None = None
) -> None:
    # A request that gave up (client gone) cancelled its future; the outcome is then unread.
    if ticket.future.done():
        return
    if exception is not None:
        ticket.future.set_exception(exception)
    else:
        assert result is not None
        ticket.future.set_result(result)
