"""Small numeric helpers: latency percentiles and rounding for the report."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence


class LatencyRecorder:
    """Keeps every sample (seconds); a few hundred thousand doubles is cheap."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: array[float] = array("d")

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def summary_ms(self) -> dict[str, float | None]:
        return latency_summary_ms(sorted(self.samples))


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples (q in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary_ms(ordered: Sequence[float]) -> dict[str, float | None]:
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(ordered, 50) * 1000, 3),
        "p95": round(percentile(ordered, 95) * 1000, 3),
        "p99": round(percentile(ordered, 99) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
    }


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or baseline == 0:
        return None
    return round(ours / baseline, 3)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
