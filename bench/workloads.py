"""The workloads: each measures the service and its baseline in the same run, on this machine."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import uvloop

from bench import events, promtext, rawdb, sysinfo
from bench.loadgen import RequestSet, WrkResult, run_wrk
from bench.procs import ManagedProcess, ProcessRegistry, http_request, wait_ready
from bench.stats import median, ratio

T = TypeVar("T")

WORKLOADS = (
    "startup",
    "ingest_single",
    "ingest_batch",
    "page_rest",
    "page_graphql",
    "page_raw",
    "search_rest",
    "search_graphql",
    "dlq_ingest",
    "dlq_replay",
)
# Run on a private PostgreSQL cluster the harness stops and starts (bench/dlq.py).
DLQ_WORKLOADS = ("dlq_ingest", "dlq_replay")
READY_PATH = "/health/ready"
EVENTS_PATH = "/api/v1/audit/events"
BATCH_PATH = "/api/v1/audit/events/batch"
GRAPHQL_PATH = "/graphql"
PAGE_QUERY = (
    "query Page($f: AuditEventFilter){ auditEvents(filter:$f, first:50){ edges{ node{ "
    "eventId eventType eventTimestamp eventCategory eventAction eventOutcome actorId "
    "resourceType resourceId correlationId eventData } } pageInfo{ hasNextPage endCursor } } }"
)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, like the servers do."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


class CheckFailed(RuntimeError):
    """A sanity check of a workload's requests failed before measuring."""


@dataclass(frozen=True, slots=True)
class Profile:
    """Sizes and durations of one run."""

    name: str
    warmup_s: float
    duration_s: float
    preload_rows: int
    single_connections: int = 64
    batch_connections: int = 4
    batch_size: int = 1000
    batch_bodies: int = 8
    single_bodies: int = 4096
    page_connections: int = 16
    page_correlations: int = 256
    startup_repeats: int = 3
    search_connections: tuple[int, ...] = (20, 100)
    search_bodies: int = 400
    large_bucket_bodies: int = 100
    seed: int = 20240601


@dataclass(slots=True)
class Harness:
    """Owns the processes, the database and the measurements of one run."""

    repo: Path
    profile: Profile
    registry: ProcessRegistry
    admin_dsn: str
    dsn: str
    redis_url: str
    server_port: int
    baseline_port: int
    workers: int
    log: Callable[[str], None]
    server: ManagedProcess | None = None
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- processes ------------------------------------------------------------------------

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATASTORAGE_DATABASE_URL"] = self.dsn
        env["DATASTORAGE_REDIS_URL"] = self.redis_url
        env["DATASTORAGE_WORKERS"] = str(self.workers)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def server_argv(self, port: int | None = None) -> list[str]:
        script = Path(sys.executable).with_name("datastorage")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "datastorage.cli"]
        port = self.server_port if port is None else port
        return [*command, "serve", "--port", str(port), "--workers", str(self.workers)]

    def start_server(self, name: str = "datastorage") -> float:
        """Start the service and wait for readiness; returns seconds to ready."""
        if self.server is not None:
            raise RuntimeError("the service is already running")
        self.server = self.registry.start(
            name, self.server_argv(), env=self.server_env(), cwd=self.repo
        )
        try:
            return wait_ready(self.server, self.server_port, READY_PATH, timeout_s=120)
        except BaseException:
            self.stop_server()
            raise

    def stop_server(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            self.registry.stop(server)

    def ensure_server(self) -> ManagedProcess:
        if self.server is None or not self.server.alive():
            if self.server is not None:
                self.notes.append(f"the service had exited; log tail:\n{self.server.log_tail()}")
                self.stop_server()
            self.start_server()
        assert self.server is not None
        return self.server

    def start_baseline_app(self) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "uvicorn", "bench.baseline_app:app",
            "--host", "127.0.0.1", "--port", str(self.baseline_port),
            "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
            "--workers", str(self.workers), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.repo) + os.pathsep + env.get("PYTHONPATH", "")
        process = self.registry.start("baseline_app", argv, env=env, cwd=self.repo)
        try:
            wait_ready(process, self.baseline_port, READY_PATH, timeout_s=60)
        except BaseException:
            self.registry.stop(process)
            raise
        return process

    def scrape(self) -> promtext.Scrape:
        status, body = http_request(self.server_port, "GET", "/metrics")
        if status != 200:
            raise CheckFailed(f"/metrics answered {status}")
        return promtext.Scrape.of(body.decode())

    # -- measuring helpers ------------------------------------------------------------------

    def database_name(self) -> str:
        return self.dsn.rsplit("/", 1)[-1]

    def warm_up(self, port: int, requests: RequestSet, connections: int) -> None:
        run_wrk(port, requests, connections=connections, duration_s=self.profile.warmup_s)

    def measured_wrk(
        self,
        port: int,
        requests: RequestSet,
        connections: int,
        groups: dict[int, str],
        *,
        timeout_s: float = 10.0,
        database: str | None = None,
        trees: dict[int, str] | None = None,
    ) -> tuple[WrkResult, dict[str, Any]]:
        """One measured wrk run, with CPU accounting (`groups`: process groups we started;
        `database`: whose PostgreSQL backends are ours; `trees`: servers by pid, see sysinfo)."""
        database = self.database_name() if database is None else database
        before = sysinfo.cpu_snapshot(groups, database, trees)
        started = time.perf_counter()
        result = run_wrk(
            port,
            requests,
            connections=connections,
            duration_s=self.profile.duration_s,
            timeout_s=timeout_s,
        )
        wall = time.perf_counter() - started
        after = sysinfo.cpu_snapshot(groups, database, trees)
        cpu = sysinfo.cpu_delta(before, after, wall)
        cpu["loadgen_cores"] = round(result.cpu_seconds / wall, 2) if wall else 0.0
        return result, sysinfo.with_other(cpu)

    # -- startup ------------------------------------------------------------------------------

    def startup(self) -> dict[str, Any]:
        """Median time from exec to /health/ready 200, with migrations already applied."""
        self.stop_server()
        times = []
        for attempt in range(self.profile.startup_repeats):
            seconds = self.start_server(name=f"datastorage-startup-{attempt}")
            times.append(round(seconds, 3))
            self.stop_server()
            self.log(f"    start {attempt + 1}: {seconds:.3f}s")
        return {"seconds": times, "median_s": round(median(times), 3), "workers": self.workers}

    # -- ingest ---------------------------------------------------------------------------------

    def ingest_single(self) -> dict[str, Any]:
        profile = self.profile
        bodies = events.single_bodies(profile.single_bodies, seed=profile.seed, tag="single")
        requests = RequestSet("POST", paths=[EVENTS_PATH], bodies=bodies)

        self.log("  baseline: plain Starlette + orjson app")
        baseline_process = self.start_baseline_app()
        try:
            status, answer = http_request(self.baseline_port, "POST", EVENTS_PATH, bodies[0])
            if status != 201:
                raise CheckFailed(f"baseline app answered {status}: {answer[:200]!r}")
            self.warm_up(self.baseline_port, requests, profile.single_connections)
            base, base_cpu = self.measured_wrk(
                self.baseline_port,
                requests,
                profile.single_connections,
                {baseline_process.pid: "baseline_app"},
            )
        finally:
            self.registry.stop(baseline_process)

        self.log("  ours: POST /api/v1/audit/events")
        server = self.ensure_server()
        status, answer = http_request(self.server_port, "POST", EVENTS_PATH, bodies[0])
        if status != 201:
            raise CheckFailed(f"the service answered {status}: {answer[:300]!r}")
        self.warm_up(self.server_port, requests, profile.single_connections)
        time.sleep(0.5)
        rows_before = run_async(rawdb.table_rows(self.dsn))
        scrape_before = self.scrape()
        ours, cpu = self.measured_wrk(
            self.server_port, requests, profile.single_connections, {server.pid: "service"}
        )
        scrape_after = self.scrape()
        time.sleep(0.5)
        rows_after = run_async(rawdb.table_rows(self.dsn))

        acked = ours.requests - ours.non_2xx
        flushes = scrape_after.value("datastorage_audit_batch_size_count") - scrape_before.value(
            "datastorage_audit_batch_size_count"
        )
        flushed = scrape_after.value("datastorage_audit_batch_size_sum") - scrape_before.value(
            "datastorage_audit_batch_size_sum"
        )
        flush_seconds = scrape_after.value(
            "datastorage_audit_write_duration_seconds_sum"
        ) - scrape_before.value("datastorage_audit_write_duration_seconds_sum")
        dropped = scrape_after.value("datastorage_audit_events_dropped_total")
        ours_rate = acked / ours.duration_s
        base_rate = (base.requests - base.non_2xx) / base.duration_s
        return {
            "unit": "events/s",
            "ours": round(ours_rate, 1),
            "baseline": round(base_rate, 1),
            "ratio": ratio(ours_rate, base_rate),
            "connections": profile.single_connections,
            "body_bytes": len(bodies[0]),
            "ours_detail": {
                **ours.as_dict(),
                "non_2xx": ours.non_2xx,
                "status_counts": promtext.delta_by_label(
                    scrape_before,
                    scrape_after,
                    "datastorage_http_requests_total",
                    "status",
                    route=EVENTS_PATH,
                    method="POST",
                ),
                "rows_written": rows_after - rows_before,
                "acked_events": acked,
                "table_rows_before": rows_before,
                "cpu": cpu,
            },
            "baseline_detail": {**base.as_dict(), "non_2xx": base.non_2xx, "cpu": base_cpu},
            "writer": {
                "flushes": round(flushes),
                "events_flushed": round(flushed),
                "mean_batch_size": round(flushed / flushes, 2) if flushes else None,
                "mean_flush_ms": round(1000 * flush_seconds / flushes, 2) if flushes else None,
                "histogram": _histogram_delta(
                    scrape_before, scrape_after, "datastorage_audit_batch_size"
                ),
                "events_dropped_total": dropped,
                "metrics_cover_all_workers": self.workers == 1,
            },
        }

    def ingest_batch(self) -> dict[str, Any]:
        profile = self.profile
        batches = events.batch_events(
            profile.batch_bodies, profile.batch_size, seed=profile.seed, tag="batch"
        )
        bodies = [orjson.dumps(batch) for batch in batches]
        requests = RequestSet("POST", paths=[BATCH_PATH], bodies=bodies)

        self.log(f"  ours: POST /api/v1/audit/events/batch ({profile.batch_size} events)")
        server = self.ensure_server()
        status, answer = http_request(self.server_port, "POST", BATCH_PATH, bodies[0], timeout_s=60)
        if status != 201 or len(orjson.loads(answer).get("event_ids", [])) != profile.batch_size:
            raise CheckFailed(f"the service answered {status}: {answer[:300]!r}")
        self.warm_up(self.server_port, requests, profile.batch_connections)
        time.sleep(0.5)
        rows_before = run_async(rawdb.table_rows(self.dsn))
        scrape_before = self.scrape()
        ours, cpu = self.measured_wrk(
            self.server_port,
            requests,
            profile.batch_connections,
            {server.pid: "service"},
            timeout_s=30,
        )
        scrape_after = self.scrape()
        time.sleep(0.5)
        rows_after = run_async(rawdb.table_rows(self.dsn))
        acked = (ours.requests - ours.non_2xx) * profile.batch_size
        ours_rate = acked / ours.duration_s

        self.log("  baseline: raw asyncpg copy_records_to_table")
        base = run_async(
            rawdb.copy_baseline(
                self.dsn,
                batches,
                concurrency=profile.batch_connections,
                warmup_s=profile.warmup_s,
                duration_s=profile.duration_s,
            )
        )
        base_rate = base.items_per_s
        return {
            "unit": "events/s",
            "ours": round(ours_rate, 1),
            "baseline": round(base_rate, 1),
            "ratio": ratio(ours_rate, base_rate),
            "connections": profile.batch_connections,
            "batch_size": profile.batch_size,
            "body_bytes": len(bodies[0]),
            "ours_detail": {
                **ours.as_dict(),
                "non_2xx": ours.non_2xx,
                "status_counts": promtext.delta_by_label(
                    scrape_before,
                    scrape_after,
                    "datastorage_http_requests_total",
                    "status",
                    route=BATCH_PATH,
                    method="POST",
                ),
                "rows_written": rows_after - rows_before,
                "acked_events": acked,
                "table_rows_before": rows_before,
                "events_dropped_total": scrape_after.value(
                    "datastorage_audit_events_dropped_total"
                ),
                "cpu": cpu,
            },
            "baseline_detail": {
                "batches_per_s": round(base.ops_per_s, 1),
                "events": base.items,
                "latency_ms": base.latency.summary_ms(),
                "errors": base.errors,
                "error_samples": base.error_samples,
                "cpu": base.cpu,
            },
        }

    # -- pages ----------------------------------------------------------------------------------

    def page_correlations(self) -> list[str]:
        return events.page_query_correlations(
            self.profile.preload_rows, self.profile.page_correlations, seed=self.profile.seed
        )

    def page_raw(self) -> dict[str, Any]:
        if "page_raw" in self.measurements:
            return self.measurements["page_raw"]
        correlations = self.page_correlations()
        rows = run_async(rawdb.page_rows(self.dsn, correlations[0]))
        if rows != rawdb.PAGE_SIZE:
            raise CheckFailed(f"the page query returned {rows} rows, expected {rawdb.PAGE_SIZE}")
        self.log(f"  raw asyncpg: {self.profile.page_connections} connections + orjson")
        result, page_bytes = run_async(
            rawdb.page_baseline(
                self.dsn,
                correlations,
                concurrency=self.profile.page_connections,
                warmup_s=self.profile.warmup_s,
                duration_s=self.profile.duration_s,
            )
        )
        measurement = {
            "unit": "req/s",
            "requests_per_s": round(result.ops_per_s, 1),
            "requests": result.operations,
            "rows_per_page": result.items / result.operations if result.operations else None,
            "page_bytes": page_bytes,
            "latency_ms": result.latency.summary_ms(),
            "errors": result.errors,
            "error_samples": result.error_samples,
            "connections": self.profile.page_connections,
            "cpu": result.cpu,
        }
        self.measurements["page_raw"] = measurement
        return measurement

    def page_http(self, kind: str) -> dict[str, Any]:
        """REST or GraphQL page of 50 events, wrk with rotating correlations."""
        key = f"page_{kind}"
        if key in self.measurements:
            return self.measurements[key]
        correlations = self.page_correlations()
        server = self.ensure_server()
        if kind == "rest":
            paths = [
                EVENTS_PATH
                + "?"
                + urlencode(
                    {"event_type": events.PAGE_EVENT_TYPE, "correlation_id": c, "limit": 50}
                )
                for c in correlations
            ]
            requests = RequestSet("GET", paths=paths)
            status, answer = http_request(self.server_port, "GET", paths[0])
            page_bytes = len(answer)
            if status != 200:
                raise CheckFailed(f"REST page answered {status}: {answer[:300]!r}")
            count = len(orjson.loads(answer)["data"])
        else:
            bodies = [
                orjson.dumps(
                    {
                        "query": PAGE_QUERY,
                        "variables": {
                            "f": {"eventType": events.PAGE_EVENT_TYPE, "correlationId": c}
                        },
                    }
                )
                for c in correlations
            ]
            requests = RequestSet("POST", paths=[GRAPHQL_PATH], bodies=bodies)
            status, answer = http_request(self.server_port, "POST", GRAPHQL_PATH, bodies[0])
            page_bytes = len(answer)
            document = orjson.loads(answer) if status == 200 else {}
            if status != 200 or document.get("errors"):
                raise CheckFailed(f"GraphQL page answered {status}: {answer[:500]!r}")
            count = len(document["data"]["auditEvents"]["edges"])
        if count != rawdb.PAGE_SIZE:
            raise CheckFailed(f"{kind} page held {count} events, expected {rawdb.PAGE_SIZE}")
        self.log(f"  {kind}: {self.profile.page_connections} connections")
        self.warm_up(self.server_port, requests, self.profile.page_connections)
        scrape_before = self.scrape()
        result, cpu = self.measured_wrk(
            self.server_port, requests, self.profile.page_connections, {server.pid: "service"}
        )
        scrape_after = self.scrape()
        route = EVENTS_PATH if kind == "rest" else GRAPHQL_PATH
        measurement: dict[str, Any] = {
            **result.as_dict(),
            "unit": "req/s",
            # Only successful pages count (wrk's own rate includes error answers).
            "requests_per_s": round((result.requests - result.non_2xx) / result.duration_s, 1),
            "non_2xx": result.non_2xx,
            "status_counts": promtext.delta_by_label(
                scrape_before,
                scrape_after,
                "datastorage_http_requests_total",
                "status",
                route=route,
                method="GET" if kind == "rest" else "POST",
            ),
            "page_bytes": page_bytes,
            "connections": self.profile.page_connections,
            "cpu": cpu,
        }
        if kind == "graphql":
            measurement["graphql_outcomes"] = promtext.delta_by_label(
                scrape_before, scrape_after, "datastorage_graphql_operations_total", "outcome"
            )
        self.measurements[key] = measurement
        return measurement


def _histogram_delta(before: promtext.Scrape, after: promtext.Scrape, name: str) -> dict[str, int]:
    """Cumulative bucket counts of a histogram over the interval, by upper bound ("le")."""
    return promtext.delta_by_label(before, after, f"{name}_bucket", "le")
