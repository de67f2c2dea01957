"""Prometheus metrics: one registry per app (no global state), named `datastorage_*`."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class Metrics:
    """Every metric the service exports; gauges that mirror live state read it on scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._write_results: dict[str, Counter] = {}
        r = self.registry
        self.http_requests = Counter(
            "datastorage_http_requests_total", "HTTP requests by route, method and status",
            ("route", "method", "status"), registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "datastorage_http_request_duration_seconds", "HTTP request latency by route",
            ("route", "method"), buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.graphql_operations = Counter(
            "datastorage_graphql_operations_total", "GraphQL operations by name and outcome",
            ("operation", "outcome"), registry=r,
        )  # fmt: skip
        self.events_written = Counter(
            "datastorage_audit_events_written_total", "Audit events committed to PostgreSQL",
            ("category", "outcome"), registry=r,
        )  # fmt: skip
        self.events_duplicate = Counter(
            "datastorage_audit_events_duplicate_total",
            "Writes of an event_id that was already stored (idempotent retries)", registry=r,
        )  # fmt: skip
        self.events_dropped = Counter(
            "datastorage_audit_events_dropped_total",
            "Acknowledged events that were lost; any non-zero value is a bug", registry=r,
        )  # fmt: skip
        self.write_results = Counter(
            "datastorage_audit_write_requests_total",
            "Write requests by result (stored, queued, rejected, unavailable, error)", ("result",), registry=r,
        )  # fmt: skip
        self.validation_failures = Counter(
            "datastorage_validation_failures_total", "Rejected input by field", ("field",), registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "datastorage_audit_batch_size", "Events per group-commit flush",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.write_latency = Histogram(
            "datastorage_audit_write_duration_seconds", "Duration of one group-commit flush",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.flush_failures = Counter(
            "datastorage_audit_flush_failures_total", "Failed flush attempts by kind",
            ("kind",), registry=r,
        )  # fmt: skip
        self.writer_queue_depth = Gauge(
            "datastorage_writer_queue_depth", "Events waiting in the group-commit queue", registry=r
        )
        self.db_pool_size = Gauge(
            "datastorage_db_pool_size", "PostgreSQL pool capacity", registry=r
        )
        self.db_pool_in_use = Gauge(
            "datastorage_db_pool_in_use", "PostgreSQL connections in use", registry=r
        )
        self.partitions_ahead = Gauge(
            "datastorage_partitions_ahead", "Months after the current one that already have a partition",
            registry=r,
        )  # fmt: skip

        self.dlq_depth = Gauge(
            "datastorage_dlq_depth", "Entries waiting in a DLQ stream", ("stream",), registry=r
        )
        self.dlq_capacity_ratio = Gauge(
            "datastorage_dlq_capacity_ratio", "DLQ depth / capacity (1.0 = writes refused)",
            ("stream",), registry=r,
        )  # fmt: skip
        self.dlq_oldest_age = Gauge(
            "datastorage_dlq_oldest_age_seconds", "Age of the oldest entry waiting in a DLQ stream",
            ("stream",), registry=r,
        )  # fmt: skip
        self.dlq_dead_letters = Gauge(
            "datastorage_dlq_dead_letters",
            "Entries in a dead-letter stream",
            ("stream",),
            registry=r,
        )
        self.dlq_capacity_threshold = Gauge(
            "datastorage_dlq_capacity_threshold",
            "Capacity ratios at which the service warns (for alert rules)", ("level",), registry=r,
        )  # fmt: skip
        self.dlq_enqueued = Counter(
            "datastorage_dlq_enqueued_total", "Entries queued on the DLQ", ("stream",), registry=r
        )
        self.dlq_refused = Counter(
            "datastorage_dlq_refused_total",
            "Entries the DLQ could not take (full or Redis unavailable); their requests got 503",
            ("stream", "reason"), registry=r,
        )  # fmt: skip
        self.dlq_replayed = Counter(
            "datastorage_dlq_replayed_total", "DLQ entries stored in PostgreSQL by replay",
            ("stream",), registry=r,
        )  # fmt: skip
        self.dlq_dead_lettered = Counter(
            "datastorage_dlq_dead_lettered_total", "DLQ entries moved to the dead-letter stream",
            ("stream", "reason"), registry=r,
        )  # fmt: skip
        self.dlq_replay_lag = Histogram(
            "datastorage_dlq_replay_lag_seconds", "Time from DLQ enqueue to replayed commit",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400), registry=r,
        )  # fmt: skip
        self.circuit_breaker_state = Gauge(
            "datastorage_circuit_breaker_state",
            "Circuit breaker around a dependency: 0 closed, 1 open, 2 half-open",
            ("dependency",), registry=r,
        )  # fmt: skip

        self.self_audit_events = Counter(
            "datastorage_self_audit_events_total",
            "The service's own audit events (catalog changes, searches) by result (written, failed)",
            ("result",), registry=r,
        )  # fmt: skip
        self.workflow_search_latency = Histogram(
            "datastorage_workflow_search_duration_seconds",
            "Label search time inside the service (index lookup, scoring, ranking)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.workflow_index_loads = Counter(
            "datastorage_workflow_index_loads_total",
            "Reloads of the in-memory workflow search index", registry=r,
        )  # fmt: skip

    def write_result(self, result: str) -> Counter:
        """The counter child of one write result (cached: labels() is costly per request)."""
        child = self._write_results.get(result)
        if child is None:
            child = self._write_results[result] = self.write_results.labels(result)
        return child

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Make `gauge` read live state at scrape time."""
        gauge.set_function(read)

    def count_written(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Count committed events by (category, outcome), one increment per distinct pair."""
        for (category, outcome), count in Tally(pairs).items():
            self.events_written.labels(category, outcome).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
