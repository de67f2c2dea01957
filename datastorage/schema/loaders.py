"""Per-request DataLoaders: one SQL statement per batch of keys, never one per object."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from datastorage.domain import AuditEventRecord
from datastorage.resolvers import audit
from datastorage.resolvers.context import Context


def event_loader(ctx: Context) -> DataLoader[uuid.UUID, AuditEventRecord | None]:
    """The request's loader of events by id (created on first use)."""
    loader = ctx.loaders.get("events")
    if loader is None:

        async def load(keys: Sequence[uuid.UUID]) -> list[AuditEventRecord | None]:
            return await audit.get_events(ctx, keys)

        loader = DataLoader(load_fn=load, max_batch_size=1000)
        ctx.loaders["events"] = loader
    return loader
