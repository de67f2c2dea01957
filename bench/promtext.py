"""Just enough of the Prometheus text format to read the service's /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> Iterator[Sample]:
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        yield Sample(name, dict(_LABEL.findall(labels or "")), number)


@dataclass(frozen=True, slots=True)
class Scrape:
    samples: tuple[Sample, ...]

    @classmethod
    def of(cls, text: str) -> Scrape:
        return cls(tuple(parse(text)))

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels` (0 when absent)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for sample in self.samples:
            if sample.name != name or label not in sample.labels:
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                key = sample.labels[label]
                totals[key] = totals.get(key, 0.0) + sample.value
        return totals


def delta_by_label(
    before: Scrape, after: Scrape, name: str, label: str, **labels: str
) -> dict[str, int]:
    old = before.by_label(name, label, **labels)
    new = after.by_label(name, label, **labels)
    return {
        key: round(value - old.get(key, 0.0))
        for key, value in new.items()
        if value != old.get(key, 0.0)
    }
