"""Catalog change notifications: every replica hears when any replica changes the catalog.

A trigger on `remediation_workflows` (migration 0005) runs `pg_notify` in the writing
transaction, so the notification is delivered when the change commits, never for a rollback. Each process
LISTENs on one dedicated connection and marks its in-memory search index stale. A lost listener
connection may have missed notifications, so losing it and getting it back also mark the index
stale; until it is back, the index reloads on a short timer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from datastorage.persistence.database import APPLICATION_NAME

log = logging.getLogger(__name__)

CHANNEL = "datastorage_workflow_catalog"


class CatalogListener:
    """One LISTEN connection that calls `on_change` for every change it may have missed."""

    def __init__(self, url: str, on_change: Callable[[], None], *, retry_s: float = 1.0) -> None:
        self._url = url
        self._on_change = on_change
        self._retry_s = retry_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-listener")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)

    async def _run(self) -> None:
        while not self._stopping:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._url,
                    timeout=5,
                    server_settings={"application_name": f"{APPLICATION_NAME}-listener"},
                )
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.info("catalog listener cannot connect (%s); retrying", type(exc).__name__)
                await asyncio.sleep(self._retry_s)
                continue
            try:
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._heard)
                self.connected = True
                # Changes made while we were not listening are unknown: reload.
                self._on_change()
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.info("catalog listener lost its connection (%s)", type(exc).__name__)
            finally:
                self.connected = False
                self._on_change()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
            await asyncio.sleep(self._retry_s)

    def _heard(self, *_: object) -> None:
        self._on_change()
