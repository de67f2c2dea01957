"""GraphQL `dlq`: the dead-letter queue as operators see it."""

from __future__ import annotations

import strawberry

from datastorage.resolvers import dlq
from datastorage.resolvers.context import Context


@strawberry.type(description="One DLQ stream and its dead-letter stream.")
class DlqStream:
    name: str = strawberry.field(description="events or notifications")
    stream: str = strawberry.field(description="Redis key of the queue")
    depth: int = strawberry.field(description="Entries waiting for replay")
    capacity: int = strawberry.field(description="Entries at which writes are refused (503)")
    capacity_ratio: float
    oldest_age_seconds: float = strawberry.field(description="Age of the oldest waiting entry")
    dead_letters: int = strawberry.field(description="Entries replay gave up on")


@strawberry.type(description="The Redis dead-letter queue and the PostgreSQL circuit breaker.")
class DlqStatus:
    available: bool = strawberry.field(description="False when Redis is absent or down")
    circuit_breaker: str = strawberry.field(description="closed, open or half_open")
    streams: list[DlqStream]


@strawberry.type
class DlqQuery:
    @strawberry.field(description="DLQ depth, capacity, oldest entry and dead letters, read now.")
    async def dlq(self, info: strawberry.Info[Context]) -> DlqStatus:
        report = await dlq.dlq_status(info.context)
        return DlqStatus(
            available=report.available,
            circuit_breaker=report.circuit_breaker,
            streams=[
                DlqStream(
                    name=status.stream.name,
                    stream=status.stream.queue,
                    depth=status.depth,
                    capacity=status.capacity,
                    capacity_ratio=round(status.ratio, 4),
                    oldest_age_seconds=round(status.oldest_age_s, 3),
                    dead_letters=status.dead_letters,
                )
                for status in report.streams
            ],
        )
