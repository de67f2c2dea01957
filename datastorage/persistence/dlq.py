"""The dead-letter queue on Redis Streams: where acknowledged writes wait when PostgreSQL cannot.

Legacy key names: `audit:dlq:{events,notifications}` hold what waits for replay, and
`audit:dead-letter:{events,notifications}` what replay gave up on (with the reason). Nothing is
ever trimmed: an enqueue that would take a stream over its capacity is refused as a whole, and
the request is answered 503 instead of 202.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from datastorage.persistence.redis_store import Redis

GROUP = "data-storage-retry-workers"


@dataclass(frozen=True, slots=True)
class StreamPair:
    """A DLQ stream and its dead-letter stream."""

    name: str  # short label for metrics and logs
    queue: str
    dead: str


EVENTS = StreamPair("events", "audit:dlq:events", "audit:dead-letter:events")
NOTIFICATIONS = StreamPair(
    "notifications", "audit:dlq:notifications", "audit:dead-letter:notifications"
)
STREAMS = (EVENTS, NOTIFICATIONS)


class DlqUnavailable(Exception):
    """Redis did not answer: nothing was queued."""


class DlqFull(Exception):
    """The stream has no room for the whole batch: nothing was queued."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    message: bytes | None  # None: deleted while still pending, only the acknowledgement is left


# Capacity check and XADDs in one atomic script: one round trip per batch, and no replica can
# slip entries in between the check and the adds (a MULTI cannot branch on XLEN).
_ENQUEUE = """
-- Returns the depth after the adds, or -1 - depth when refused.
local depth = redis.call('XLEN', KEYS[1])
if depth + #ARGV - 1 > tonumber(ARGV[1]) then return -1 - depth end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'message', ARGV[i]) end
return depth + #ARGV - 1
"""

# Move dead letters back into the queue: check room, add the (reset) messages, delete the dead
# entries, atomically, so an entry is never in both streams nor in neither.
# KEYS: queue, dead; ARGV: capacity, n, message 1..n, dead id 1..n.
_REVIVE = """
local n = tonumber(ARGV[2])
if redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[1]) then return -1 end
for i = 1, n do
    redis.call('XADD', KEYS[1], '*', 'message', ARGV[2 + i])
    redis.call('XDEL', KEYS[2], ARGV[2 + n + i])
end
return n
"""


class DeadLetterQueue:
    """Stream operations of the DLQ; every Redis failure surfaces as DlqUnavailable."""

    def __init__(self, client: Redis, capacity: int) -> None:
        self.client = client
        self.capacity = capacity
        self._enqueue = client.register_script(_ENQUEUE)
        self._revive = client.register_script(_REVIVE)

    async def enqueue(self, stream: StreamPair, messages: list[bytes]) -> int:
        """Queue every message or none (DlqFull, DlqUnavailable); returns the stream's depth."""
        try:
            depth = int(await self._enqueue(keys=[stream.queue], args=[self.capacity, *messages]))
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        if depth < 0:
            raise DlqFull(
                f"{stream.queue} holds {-1 - depth} of {self.capacity} entries; "
                f"{len(messages)} more do not fit"
            )
        return depth

    async def ensure_group(self, stream: StreamPair) -> None:
        try:
            await self.client.xgroup_create(stream.queue, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise DlqUnavailable(f"Redis: {exc}") from None
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None

    async def read(
        self, stream: StreamPair, consumer: str, count: int, *, pending: bool
    ) -> list[Entry]:
        """New entries for `consumer` (or, with `pending`, those it holds unacknowledged)."""
        answer: Any
        try:
            answer = await self.client.xreadgroup(
                GROUP,
                consumer,
                {stream.queue: "0" if pending else ">"},
                count=count,
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted (e.g. by an operator)
                await self.ensure_group(stream)
                return []
            raise DlqUnavailable(f"Redis: {exc}") from None
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        return _entries(answer[0][1] if answer else [])

    async def claim_abandoned(
        self, stream: StreamPair, consumer: str, min_idle_ms: int, count: int
    ) -> list[Entry]:
        """Take over entries another consumer read and never acknowledged (it died)."""
        answer: Any
        try:
            answer = await self.client.xautoclaim(
                stream.queue, GROUP, consumer, min_idle_ms, start_id="0-0", count=count
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                await self.ensure_group(stream)
                return []
            raise DlqUnavailable(f"Redis: {exc}") from None
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        return _entries(answer[1])

    async def remove(self, stream: StreamPair, ids: list[str]) -> None:
        """Acknowledge and delete entries whose content is now stored (one round trip)."""
        if not ids:
            return
        await self._transaction(
            lambda pipe: (pipe.xack(stream.queue, GROUP, *ids), pipe.xdel(stream.queue, *ids))
        )

    async def bury(self, stream: StreamPair, entry: Entry, message: bytes) -> None:
        """Move an entry to the dead letters (with its reason in `message`), atomically."""
        await self._transaction(
            lambda pipe: (
                pipe.xadd(stream.dead, {"message": message}),
                pipe.xack(stream.queue, GROUP, entry.id),
                pipe.xdel(stream.queue, entry.id),
            )
        )

    async def requeue(self, stream: StreamPair, entry: Entry, message: bytes) -> None:
        """Replace an entry by an updated copy at the end of the queue (its retry count grew)."""
        await self._transaction(
            lambda pipe: (
                pipe.xadd(stream.queue, {"message": message}),
                pipe.xack(stream.queue, GROUP, entry.id),
                pipe.xdel(stream.queue, entry.id),
            )
        )

    async def dead_letters(self, stream: StreamPair, after: str, count: int) -> list[Entry]:
        """Dead letters after entry id `after` (exclusive; "-" for the first), oldest first."""
        raw: Any
        try:
            raw = await self.client.xrange(
                stream.dead, min="-" if after == "-" else f"({after}", count=count
            )
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        return _entries(raw)

    async def revive(self, stream: StreamPair, entries: list[tuple[Entry, bytes]]) -> None:
        """Put dead letters back in the queue with new messages (DlqFull if they do not fit)."""
        if not entries:
            return
        args: list[int | bytes | str] = [self.capacity, len(entries)]
        args += [message for _, message in entries]
        args += [entry.id for entry, _ in entries]
        try:
            moved = int(await self._revive(keys=[stream.queue, stream.dead], args=args))
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        if moved < 0:
            raise DlqFull(f"{stream.queue} has no room for {len(entries)} more entries")

    async def consumers(self, stream: StreamPair) -> tuple[int, int]:
        """(consumers in the group, entries read but not yet acknowledged)."""
        try:
            groups = await self.client.xinfo_groups(stream.queue)
        except ResponseError:
            return 0, 0  # no stream yet
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        for group in groups:
            name = group.get("name")
            if name in (GROUP, GROUP.encode()):
                return int(group.get("consumers", 0)), int(group.get("pending", 0))
        return 0, 0

    async def status(self, stream: StreamPair) -> StreamStatus:
        """Depth, dead letters and the age of the oldest waiting entry, in one round trip."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xlen(stream.queue)
                pipe.xlen(stream.dead)
                pipe.xrange(stream.queue, count=1)
                depth, dead, oldest = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None
        age = 0.0
        if oldest:
            first_id = oldest[0][0].decode() if isinstance(oldest[0][0], bytes) else oldest[0][0]
            age = max(0.0, time.time() - int(first_id.split("-", 1)[0]) / 1000)
        return StreamStatus(stream, int(depth), self.capacity, int(dead), age)

    async def _transaction(self, build: Callable[[Pipeline], object]) -> None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                build(pipe)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DlqUnavailable(f"Redis: {type(exc).__name__}") from None


@dataclass(frozen=True, slots=True)
class StreamStatus:
    stream: StreamPair
    depth: int
    capacity: int
    dead_letters: int
    oldest_age_s: float

    @property
    def ratio(self) -> float:
        return self.depth / self.capacity if self.capacity else 0.0


def _entries(raw: list[tuple[bytes, dict[bytes, bytes] | None]]) -> list[Entry]:
    entries = []
    for entry_id, fields in raw:
        message = None if fields is None else fields.get(b"message", b"")
        entries.append(
            Entry(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, message)
        )
    return entries
