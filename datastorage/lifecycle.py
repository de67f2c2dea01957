"""Start and stop what the service runs: pools, writer, DLQ, drainers, catalog index, signals.

`create_app` (app.py) builds the surfaces; its lifespan calls `start_services` and
`stop_services` here. `command_services` is the smaller set a one-shot CLI command needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

from datastorage.observability.metrics import Metrics
from datastorage.persistence import database, migrations, redis_store
from datastorage.persistence import workflows as workflow_store
from datastorage.persistence.audit_events import ChainHasher
from datastorage.persistence.catalog_changes import CatalogListener
from datastorage.persistence.circuit_breaker import CircuitBreaker
from datastorage.persistence.dlq import DeadLetterQueue
from datastorage.persistence.dlq_fallback import DlqFallback
from datastorage.persistence.dlq_monitor import DlqMonitor
from datastorage.persistence.dlq_replay import (
    DlqDrainer,
    NotificationStore,
    ReplayConfig,
    consumer_name,
)
from datastorage.persistence.partitions import PartitionMaintainer
from datastorage.persistence.writer import GroupCommitWriter, WriterConfig
from datastorage.resolvers import notifications as resolve_notifications
from datastorage.resolvers.context import Services, rules_from
from datastorage.resolvers.event_schemas import EventSchemaError
from datastorage.resolvers.self_audit import SelfAudit
from datastorage.resolvers.validation import EventRules
from datastorage.resolvers.workflow_index import WorkflowIndex
from datastorage.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def event_rules(settings: Settings) -> EventRules:
    """The validation rules, with registered event_data schemas checked (bad ones stop start-up)."""
    try:
        return rules_from(settings)
    except EventSchemaError as exc:
        raise SettingsError(f"DATASTORAGE_AUDIT_EVENT_SCHEMAS_DIR: {exc}") from None


def delay_exit_signals(services: Services, delay_s: float) -> None:
    """Put readiness first in the server's SIGTERM handling.

    The server (uvicorn) stops accepting connections as soon as its handler runs; load
    balancers still route to the pod until they see readiness fail. So the first SIGTERM only
    turns readiness to 503 and hands over to the server's handler `delay_s` later; a second
    signal hands over at once. SIGINT (Ctrl-C at a terminal; no load balancer to tell) stops
    the server at once. Runs inside the server, after it installed its handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        server_handler = signal.getsignal(signum)
        if not callable(server_handler):
            continue

        def handler(
            received: int, frame: FrameType | None, server_handler: Any = server_handler
        ) -> None:
            if services.shutting_down or received == signal.SIGINT:
                services.shutting_down = True
                server_handler(received, frame)
                return
            services.shutting_down = True
            log.info(
                "%s: readiness now answers 503; stopping in %.1fs",
                signal.Signals(received).name, delay_s,
            )  # fmt: skip
            loop.call_soon_threadsafe(loop.call_later, delay_s, server_handler, received, None)

        signal.signal(signum, handler)


async def start_services(
    settings: Settings, metrics: Metrics, rules: EventRules
) -> tuple[Services, PartitionMaintainer]:
    db = await _open_database(settings, settings.database.pool_size)
    pending = await _migrate(db, auto=settings.database.auto_migrate)
    maintainer = _partition_maintainer(settings, db, metrics)
    if not pending:
        await maintainer.run_once()
    maintainer.start()
    writer = _writer(settings, db, metrics, maintainer)
    writer.start()
    metrics.watch(metrics.writer_queue_depth, lambda: writer.queued)
    metrics.watch(metrics.db_pool_size, lambda: db.size)
    metrics.watch(metrics.db_pool_in_use, lambda: db.in_use)
    metrics.watch(metrics.circuit_breaker_state.labels("postgresql"), lambda: writer.breaker.state)
    services = Services(
        settings=settings,
        database=db,
        writer=writer,
        metrics=metrics,
        rules=rules,
        started_at=time.monotonic(),
        redis=redis_store.open_redis(settings.redis.url) if settings.redis.url else None,
        migrations_pending=pending,
    )
    if services.redis is not None:
        _start_dlq(services)
    services.self_audit = SelfAudit(writer, metrics)
    _start_catalog_index(services)
    return services, maintainer


@contextlib.asynccontextmanager
async def command_services(settings: Settings) -> AsyncIterator[Services]:
    """Services for a one-shot command (`datastorage workflows ...`): PostgreSQL and a writer for
    the self-audit events, nothing else. Running servers hear its catalog changes by NOTIFY."""
    if not settings.database.url:
        raise SettingsError("DATASTORAGE_DATABASE_URL: required for this command")
    rules = event_rules(settings)
    metrics = Metrics()
    # One connection for the command itself, the rest for the writer's flushers.
    db = await _open_database(settings, settings.writer.flushers + 1)
    try:
        if await _migrate(db, auto=settings.database.auto_migrate):
            raise SettingsError(
                "DATASTORAGE_DATABASE_AUTO_MIGRATE is false and migrations are pending: "
                "run `datastorage migrate` first"
            )
        # Not started: it only creates a missing partition when the writer needs one.
        writer = _writer(settings, db, metrics, _partition_maintainer(settings, db, metrics))
        writer.start()
        self_audit = SelfAudit(writer, metrics)
        try:
            yield Services(
                settings=settings,
                database=db,
                writer=writer,
                metrics=metrics,
                rules=rules,
                started_at=time.monotonic(),
                self_audit=self_audit,
            )
        finally:
            budget = settings.shutdown.timeout_s
            await self_audit.drain(budget)
            await writer.wait_idle(budget)
            await writer.close(budget)
    finally:
        await db.close()


async def _open_database(settings: Settings, size: int) -> database.Database:
    db_settings = settings.database
    assert db_settings.url is not None
    return await database.open_database(
        db_settings.url,
        db_settings.read_url,
        size=size,
        statement_timeout_ms=db_settings.statement_timeout_ms,
        connect_timeout_s=db_settings.connect_timeout_s,
    )


def _partition_maintainer(
    settings: Settings, db: database.Database, metrics: Metrics
) -> PartitionMaintainer:
    return PartitionMaintainer(
        db.pool,
        backfill_days=settings.audit.backfill_days,
        months_ahead=settings.audit.partitions_ahead,
        interval_s=settings.audit.partition_check_interval_s,
        on_checked=metrics.partitions_ahead.set,
    )


def _writer(
    settings: Settings, db: database.Database, metrics: Metrics, maintainer: PartitionMaintainer
) -> GroupCommitWriter:
    writer_settings = settings.writer
    return GroupCommitWriter(
        db.pool,
        ChainHasher(settings.audit.hash_key.encode() if settings.audit.hash_key else None),
        _writer_config(settings),
        metrics,
        repair=lambda: _repair(maintainer),
        breaker=CircuitBreaker(writer_settings.breaker_failures, writer_settings.breaker_open_s),
    )


def _start_dlq(services: Services) -> None:
    """Wire the Redis DLQ: the writer's fallback, its monitor, and this process's drainers."""
    assert services.redis is not None
    settings = services.settings
    dlq = DeadLetterQueue(services.redis, settings.dlq.max_len)
    monitor = DlqMonitor(dlq, services.metrics, settings.dlq.monitor_interval_s)
    fallback = DlqFallback(dlq, monitor, services.metrics, settings.writer.retry_after_s)
    services.writer.set_fallback(fallback.events)
    services.notification_fallback = fallback.notification
    # Several replay loops per process: each waits on Redis or PostgreSQL in turn, so one loop
    # leaves both idle half the time (measured: one loop 4.5k events/s, two 10.9k).
    base = consumer_name()
    drainers = [
        DlqDrainer(
            dlq,
            services.writer,
            services.metrics,
            ReplayConfig(
                batch=settings.dlq.replay_batch,
                max_retries=settings.dlq.max_retries,
                claim_idle_ms=int(settings.dlq.claim_idle_s * 1000),
                claim_every_s=min(10.0, settings.dlq.claim_idle_s),
            ),
            store_notification=_notification_store(services),
            consumer=f"{base}-{index}",
        )
        for index in range(settings.dlq.replay_concurrency)
    ]
    services.dlq, services.dlq_monitor, services.drainers = dlq, monitor, drainers
    monitor.start()
    for drainer in drainers:
        drainer.start()


def _start_catalog_index(services: Services) -> None:
    """The workflow search index, kept coherent by the catalog's NOTIFY (see workflow_index)."""
    assert services.settings.database.url is not None
    pool = services.database.pool  # the primary: a replica may not have the change yet
    index = WorkflowIndex(
        lambda: workflow_store.latest_workflows_for_search(pool),
        on_load=services.metrics.workflow_index_loads.inc,
    )
    listener = CatalogListener(services.settings.database.url, index.invalidate)
    index.listening = lambda: listener.connected
    services.workflow_index, services.catalog_listener = index, listener
    listener.start()


def _notification_store(services: Services) -> NotificationStore:
    async def store(payload: dict[str, Any]) -> bool:
        return await resolve_notifications.replay_notification(services, payload)

    return store


async def _migrate(db: database.Database, *, auto: bool) -> bool:
    """Apply migrations when `auto`; returns whether some are still pending."""
    async with db.pool.acquire() as connection:
        if auto:
            applied = await migrations.migrate(connection)
            if applied:
                log.info(
                    "applied migrations %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
                )
            return False
        return bool(await migrations.pending_migrations(connection))


async def _repair(maintainer: PartitionMaintainer) -> None:
    await maintainer.run_once()


def _writer_config(settings: Settings) -> WriterConfig:
    writer = settings.writer
    return WriterConfig(
        max_batch=writer.max_batch,
        max_wait_s=writer.max_wait_ms / 1000,
        queue_max=writer.queue_max,
        flushers=writer.flushers,
        enqueue_timeout_s=writer.enqueue_timeout_s,
        retry_after_s=writer.retry_after_s,
    )


async def stop_services(services: Services, maintainer: PartitionMaintainer) -> None:
    """The end of a graceful shutdown; by now the server answers no more requests.

    Readiness already turned 503 (the signal handler did it before the propagation delay), and
    in-flight requests have finished. Every step runs even if an earlier one failed.
    """
    services.shutting_down = True
    budgets = services.settings.shutdown
    drainers, redis = services.drainers, services.redis
    listener, self_audit = services.catalog_listener, services.self_audit
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("stop the catalog listener", listener.stop if listener else _nothing),
        (
            "write pending self-audit events",
            (lambda: self_audit.drain(budgets.timeout_s)) if self_audit else _nothing,
        ),
        ("flush the writer", lambda: services.writer.wait_idle(budgets.timeout_s)),
        ("stop DLQ replay", lambda: asyncio.gather(*(d.stop() for d in drainers))),
        (
            "drain the DLQ",
            lambda: asyncio.gather(*(d.drain(budgets.dlq_budget_s) for d in drainers)),
        ),
        ("close the writer", services.writer.close),
        ("stop the DLQ monitor", services.dlq_monitor.stop if services.dlq_monitor else _nothing),
        ("stop partition maintenance", maintainer.stop),
        ("close Redis", (lambda: redis_store.close(redis)) if redis else _nothing),
        ("close PostgreSQL pools", services.database.close),
    ]
    for name, step in steps:
        try:
            await step()
        except Exception:
            log.exception("shutdown step failed: %s", name)


async def _nothing() -> None:
    return None
