"""The chain heads this process last saw committed: a hint that lets a flush skip reading them.

Correctness never rests on it: the one-statement append checks every head it assumed and
refuses the flush when one has moved (another replica or flusher wrote to that correlation),
and the writer then takes the locking path, whose result refreshes the hint.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

# A correlation's chain before its first event.
GENESIS: tuple[int, str] = (0, "")


class ChainHeadCache:
    """Correlation id → (last chain_seq, last hash), bounded; the least recently written go first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._heads: dict[str, tuple[int, str]] = {}

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, correlation_id: str) -> tuple[int, str]:
        """The last head seen, or the genesis when none was (the append verifies either)."""
        return self._heads.get(correlation_id, GENESIS)

    def remember(self, heads: Iterable[tuple[str, tuple[int, str]]]) -> None:
        """Record heads that are committed; call only after the transaction that wrote them."""
        for correlation_id, head in heads:
            # Re-inserting moves the key to the end, so eviction from the front drops the
            # correlations written longest ago.
            self._heads.pop(correlation_id, None)
            self._heads[correlation_id] = head
        overflow = len(self._heads) - self._capacity
        if overflow > 0:
            for stale in list(islice(self._heads, overflow)):
                del self._heads[stale]

    def forget(self, correlation_ids: Iterable[str]) -> None:
        """Drop heads that turned out stale."""
        for correlation_id in correlation_ids:
            self._heads.pop(correlation_id, None)
