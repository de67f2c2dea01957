"""Operator commands on the DLQ: status, and replaying dead letters once their cause is fixed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datastorage.persistence import redis_store
from datastorage.persistence.dlq import STREAMS, DeadLetterQueue, StreamPair, StreamStatus
from datastorage.persistence.dlq_messages import DlqMessage, UndecodableEntry, decode_message


@dataclass(frozen=True, slots=True)
class StreamReport:
    status: StreamStatus
    consumers: int
    unacknowledged: int


async def dlq_report(redis_url: str, capacity: int) -> list[StreamReport]:
    client = redis_store.open_redis(redis_url)
    try:
        dlq = DeadLetterQueue(client, capacity)
        reports = []
        for stream in STREAMS:
            consumers, pending = await dlq.consumers(stream)
            reports.append(StreamReport(await dlq.status(stream), consumers, pending))
        return reports
    finally:
        await redis_store.close(client)


@dataclass(slots=True)
class ReviveResult:
    total: int = 0  # dead letters seen
    revived: int = 0
    skipped: int = 0  # undecodable: left where they are, for a person to look at


async def revive_dead_letters(
    redis_url: str,
    capacity: int,
    streams: tuple[StreamPair, ...],
    limit: int | None,
    on_progress: Callable[[StreamPair, ReviveResult, int], None],
    chunk: int = 100,
) -> dict[str, ReviveResult]:
    """Move dead letters back into their queue (retry count reset) for the drainers to replay.

    Raises DlqFull when the queue has no room for the next chunk; what was moved stays moved.
    """
    client = redis_store.open_redis(redis_url)
    results: dict[str, ReviveResult] = {}
    try:
        dlq = DeadLetterQueue(client, capacity)
        for stream in streams:
            result = results[stream.name] = ReviveResult()
            waiting = (await dlq.status(stream)).dead_letters
            if limit is not None:
                waiting = min(waiting, limit)
            after = "-"
            while result.revived < waiting:
                entries = await dlq.dead_letters(
                    stream, after, min(chunk, waiting - result.revived)
                )
                if not entries:
                    break
                after = entries[-1].id
                batch = []
                for entry in entries:
                    result.total += 1
                    try:
                        message = decode_message(entry.message or b"")
                    except UndecodableEntry:
                        result.skipped += 1
                        continue
                    if message.type == "undecodable":
                        result.skipped += 1
                        continue
                    revived = DlqMessage(
                        message.type,
                        message.payload,
                        message.timestamp,
                        0,
                        f"revived after: {message.last_error}",
                    )
                    batch.append((entry, revived.encode()))
                await dlq.revive(stream, batch)
                result.revived += len(batch)
                on_progress(stream, result, waiting)
        return results
    finally:
        await redis_store.close(client)
