"""Synthetic audit events: request bodies for the HTTP workloads and rows for COPY.

Everything is generated from a seeded RNG so two runs load the same shapes of data; timestamps
are relative to "now" because the service only accepts (and only has partitions for) recent ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# Columns written by COPY, in this order (the table's NOT NULL columns plus a few nullable ones).
COPY_COLUMNS = (
    "event_id", "event_date", "event_timestamp", "event_version", "event_type", "event_category",
    "event_action", "event_outcome", "actor_type", "actor_id", "resource_type", "resource_id",
    "correlation_id", "namespace", "severity", "duration_ms", "retention_days", "is_sensitive",
    "event_data", "chain_seq", "event_hash", "previous_event_hash", "hash_algorithm",
)  # fmt: skip

# The event type every page query filters on; most rows of a correlation have it.
PAGE_EVENT_TYPE = "gateway.signal.received"
# Rows per correlation in the preload, and how many of them carry PAGE_EVENT_TYPE (≥ 50).
ROWS_PER_CORRELATION = 100
PAGE_TYPE_ROWS_PER_CORRELATION = 60
OTHER_TYPES = (
    ("signalprocessing.signal.enriched", "signalprocessing", "enriched"),
    ("analysis.investigation.completed", "analysis", "completed"),
    ("aiagent.recommendation.created", "aiagent", "created"),
    ("workflow.selection.completed", "workflow", "completed"),
    ("workflowexecution.step.finished", "workflowexecution", "finished"),
    ("notification.message.sent", "notification", "sent"),
    ("approval.request.decided", "approval", "decided"),
    ("effectiveness.assessment.recorded", "effectiveness", "recorded"),
)
ALERTS = ("HighMemoryUsage", "PodCrashLooping", "NodeNotReady", "DiskPressure", "HighLatency")
SEVERITIES = ("critical", "warning", "info")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_data(rng: random.Random, correlation_id: str) -> dict[str, Any]:
    """About 300 bytes of realistic, non-repeating payload."""
    return {
        "signal": {
            "name": rng.choice(ALERTS),
            "fingerprint": f"{rng.getrandbits(128):032x}",
            "severity": rng.choice(SEVERITIES),
            "source": "prometheus",
        },
        "labels": {
            "namespace": f"prod-{rng.randrange(40)}",
            "pod": f"api-{rng.getrandbits(40):010x}-{rng.getrandbits(20):05x}",
            "cluster": f"cluster-{rng.randrange(8)}",
        },
        "remediation_request": correlation_id,
        "received_at": rfc3339(utc_now()),
        "attempt": rng.randrange(1, 5),
    }


def event_body(
    rng: random.Random,
    correlation_id: str,
    *,
    now: dt.datetime,
    max_age: dt.timedelta = dt.timedelta(days=2),
) -> dict[str, Any]:
    """One POST body (no event_id, so every request is a new row)."""
    age = dt.timedelta(seconds=rng.uniform(60, max_age.total_seconds()))
    return {
        "version": "1.0",
        "event_type": PAGE_EVENT_TYPE,
        "event_timestamp": rfc3339(now - age),
        "event_category": "gateway",
        "event_action": "received",
        "event_outcome": "success",
        "correlation_id": correlation_id,
        "event_data": event_data(rng, correlation_id),
    }


def single_bodies(count: int, *, seed: int, tag: str) -> list[bytes]:
    """`count` single-event bodies, each for its own correlation."""
    rng = random.Random(seed)
    now = utc_now()
    return [
        orjson.dumps(event_body(rng, f"bench-{tag}-{index}", now=now)) for index in range(count)
    ]


def batch_events(
    batches: int, size: int, *, seed: int, tag: str, correlations_per_batch: int = 100
) -> list[list[dict[str, Any]]]:
    """`batches` lists of `size` events; batches use disjoint correlation ids."""
    rng = random.Random(seed)
    now = utc_now()
    return [
        [
            event_body(rng, f"bench-{tag}-{batch}-{index % correlations_per_batch}", now=now)
            for index in range(size)
        ]
        for batch in range(batches)
    ]


@dataclass(frozen=True, slots=True)
class RowTemplate:
    """An event as a COPY row without its event_id (the baseline adds a fresh one per row)."""

    tail: tuple[Any, ...]


def row_templates(events: Sequence[dict[str, Any]]) -> list[RowTemplate]:
    """COPY rows (minus event_id) carrying the same content as the HTTP bodies."""
    templates = []
    for seq, body in enumerate(events, start=1):
        moment = dt.datetime.fromisoformat(body["event_timestamp"])
        templates.append(
            RowTemplate(
                (
                    moment.astimezone(dt.UTC).date(),
                    moment,
                    body["version"],
                    body["event_type"],
                    body["event_category"],
                    body["event_action"],
                    body["event_outcome"],
                    "service",
                    f"{body['event_category']}-service",
                    body["event_category"],
                    body["correlation_id"],
                    body["correlation_id"],
                    None,
                    None,
                    None,
                    2555,
                    False,
                    orjson.dumps(body["event_data"]).decode(),
                    seq,
                    hashlib.sha256(str(seq).encode()).hexdigest(),
                    "",
                    "sha256",
                )
            )
        )
    return templates


def rows_from_templates(templates: Sequence[RowTemplate]) -> list[tuple[Any, ...]]:
    """A batch of rows with fresh event ids (what a plain bulk loader does per batch)."""
    new_id = uuid.uuid4
    return [(new_id(), *template.tail) for template in templates]


# ---------------------------------------------------------------------------------------------
# Preload for the page workloads


def correlation_count(rows: int) -> int:
    return max(1, rows // ROWS_PER_CORRELATION)


def page_correlation(index: int) -> str:
    return f"bench-page-{index:07d}"


def page_query_correlations(rows: int, count: int, *, seed: int) -> list[str]:
    """Correlations the page workloads ask for, spread over the whole preload."""
    total = correlation_count(rows)
    rng = random.Random(seed)
    picked = rng.sample(range(total), min(count, total))
    return [page_correlation(index) for index in picked]


def preload_rows(
    first_correlation: int, correlations: int, *, seed: int, now: dt.datetime
) -> Iterator[tuple[Any, ...]]:
    """Rows of `correlations` correlations, each with ROWS_PER_CORRELATION events over the last 6 days.

    Each correlation has PAGE_TYPE_ROWS_PER_CORRELATION events of PAGE_EVENT_TYPE and the rest of
    other types; its events form a hash chain ordered by time, like the service writes them.
    """
    rng = random.Random(seed * 1_000_003 + first_correlation)
    window = 6 * 86_400 - 3_600  # seconds: the last 6 days, minus an hour of safety
    oldest = now - dt.timedelta(seconds=window)
    for index in range(first_correlation, first_correlation + correlations):
        correlation_id = page_correlation(index)
        start = rng.uniform(0, window - 7_200)
        offsets = sorted(start + rng.uniform(0, 7_200) for _ in range(ROWS_PER_CORRELATION))
        kinds = [True] * PAGE_TYPE_ROWS_PER_CORRELATION + [False] * (
            ROWS_PER_CORRELATION - PAGE_TYPE_ROWS_PER_CORRELATION
        )
        rng.shuffle(kinds)
        previous = ""
        data = orjson.dumps(event_data(rng, correlation_id)).decode()
        for seq, (offset, is_page_type) in enumerate(zip(offsets, kinds, strict=True), start=1):
            moment = oldest + dt.timedelta(seconds=offset)
            if is_page_type:
                event_type, category, action = PAGE_EVENT_TYPE, "gateway", "received"
            else:
                event_type, category, action = OTHER_TYPES[seq % len(OTHER_TYPES)]
            event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            digest = hashlib.sha256(previous.encode() + event_id.bytes).hexdigest()
            yield (
                event_id,
                moment.date(),
                moment,
                "1.0",
                event_type,
                category,
                action,
                "failure" if seq % 17 == 0 else "success",
                "service",
                f"{category}-service",
                "remediationrequest",
                correlation_id,
                correlation_id,
                f"prod-{index % 40}",
                SEVERITIES[seq % 3],
                rng.randrange(1, 5_000),
                2555,
                False,
                data,
                seq,
                digest,
                previous,
                "sha256",
            )
            previous = digest
