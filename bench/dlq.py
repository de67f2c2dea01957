"""The DLQ workloads: writes queued on Redis while PostgreSQL is down, and their replay.

They need a PostgreSQL the harness may stop and start, so they run on a private cluster
(`initdb --no-sync` into a temporary directory, a free port, started and stopped with `pg_ctl`,
as the `postgres` user when the harness runs as root) and a service of their own pointed at it
and at a Redis database of its own (flushed before and after). The shared servers are never
reconfigured or stopped. Everything is removed at the end, also on errors and Ctrl-C
(`DlqBench.close`, called from the harness's `finally`).

    dlq_ingest  PostgreSQL down: POST batches (and single events) answered 202 from the DLQ,
                beside raw pipelined XADD of the same message bytes (redis-py asyncio).
    dlq_replay  PostgreSQL back: time until the DLQ stream is empty, beside raw asyncpg COPY of
                as many rows into the same table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bench import events, promtext, rawdb, sysinfo
from bench.loadgen import RequestSet, WrkResult, run_wrk
from bench.procs import ManagedProcess, free_ports, http_request, wait_ready
from bench.stats import ratio
from bench.workloads import BATCH_PATH, EVENTS_PATH, READY_PATH, CheckFailed, Harness, run_async

DEFAULT_PG_BIN = Path(os.environ.get("DATASTORAGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "ds_bench_dlq"
QUEUE = "audit:dlq:events"
DEAD = "audit:dead-letter:events"
NOTIFICATIONS_QUEUE = "audit:dlq:notifications"
BASELINE_STREAM = "bench:dlq:xadd-baseline"
# Service settings for these workloads, unless the environment already sets them.
SERVICE_ENV = {
    # Room for everything a full run queues (~0.5M events), so nothing is refused as "full".
    "DATASTORAGE_DLQ_MAX_LEN": "5000000",
    # Half-open probes every 0.5 s: replay can start soon after PostgreSQL is back.
    "DATASTORAGE_WRITER_BREAKER_OPEN_S": "0.5",
    "DATASTORAGE_DATABASE_CONNECT_TIMEOUT_S": "2",
    "DATASTORAGE_SHUTDOWN_DELAY_S": "0",
    "DATASTORAGE_SHUTDOWN_DLQ_BUDGET_S": "2",
}
# postgresql.conf additions: where it listens, plus the shared server's own non-defaults
# (autovacuum off, UTC). fsync, synchronous_commit, shared_buffers (128 MB) and WAL sizes keep
# their defaults, as on the shared server, so the numbers compare with the other workloads.
PG_CONF = """
port = {port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
cluster_name = 'ds_bench_dlq'
autovacuum = off
timezone = 'UTC'
log_timezone = 'UTC'
"""
SETTLE_S = 0.3  # the stream must stay unchanged this long after a load run ends
POLL_S = 0.05
STALL_S = 60.0  # replay fails when the stream does not shrink for this long


class DlqSetupFailed(RuntimeError):
    """The private PostgreSQL or the DLQ's Redis database could not be prepared."""


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; its commands then run as the `postgres` system user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PrivatePostgres:
    """A throw-away cluster: `stop()` is the outage (`-m immediate`: a crash as clients see it)."""

    def __init__(self, pg_bin: Path, port: int, log_dir: Path) -> None:
        self.pg_bin = pg_bin
        self.port = port
        self.log_dir = log_dir
        self.root = Path(tempfile.mkdtemp(prefix="ds-bench-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.running = False

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            _as_postgres(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if completed.returncode != 0:
            raise DlqSetupFailed(
                f"{Path(argv[0]).name} exited with {completed.returncode}:\n"
                f"{completed.stdout[-1500:]}{completed.stderr[-1500:]}\n{self.log_tail()}"
            )
        return completed

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [str(self.pg_bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            timeout_s=120,
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(PG_CONF.format(port=self.port, socket_dir=self.root))

    def start(self) -> float:
        """Start and wait until it accepts connections; returns the seconds that took."""
        started = time.perf_counter()
        self.running = True  # from here on a postmaster may exist: stop() it when cleaning up
        self._run(
            [str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
             "-w", "-t", "60", "start"],
            timeout_s=90,
        )  # fmt: skip
        return time.perf_counter() - started

    def stop(self, mode: str = "immediate") -> float:
        started = time.perf_counter()
        self._run(
            [str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
             "stop"],
            timeout_s=90,
        )  # fmt: skip
        self.running = False
        return time.perf_counter() - started

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def destroy(self) -> list[str]:
        """Stop it if it may run, keep its log in the harness's log directory, delete it all."""
        problems: list[str] = []
        if self.running or (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (DlqSetupFailed, subprocess.TimeoutExpired, OSError) as exc:
                problems.append(f"could not stop the private PostgreSQL in {self.root}: {exc}")
        with contextlib.suppress(OSError):
            self.log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log, self.log_dir / "postgres-dlq.log")
        if not problems:
            shutil.rmtree(self.root, ignore_errors=True)
        return problems


def _redis_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def check_redis_url(url: str, service_url: str) -> str | None:
    """Why `url` may not be the DLQ workloads' Redis database (it is flushed), or None."""
    if not url.startswith("redis://"):
        return "--dlq-redis-url must be a redis:// URL"
    if _redis_db(url) == 0:
        return "--dlq-redis-url must name a database other than 0 (the harness flushes it)"
    if url.rstrip("/") == service_url.rstrip("/"):
        return "--dlq-redis-url must differ from --redis-url (it is flushed)"
    return None


@dataclass(slots=True)
class LoadRun:
    """One measured wrk run against the DLQ service, with the stream's and the service's view."""

    wrk: WrkResult
    cpu: dict[str, Any]
    connections: int
    per_request: int
    stream_growth: int
    answered: dict[str, int]  # the service's own status counts for the route
    enqueued: int  # datastorage_dlq_enqueued_total{stream="events"} over the run

    @property
    def acked_events(self) -> int:
        """Events of the 2xx answers wrk received (inside its window)."""
        return (self.wrk.requests - self.wrk.non_2xx) * self.per_request

    @property
    def answered_202_events(self) -> int:
        """Events of every 202 the service sent, also those wrk stopped waiting for."""
        return self.answered.get("202", 0) * self.per_request

    @property
    def events_per_s(self) -> float:
        return self.acked_events / self.wrk.duration_s if self.wrk.duration_s else 0.0

    def checks(self, exact: bool) -> dict[str, Any]:
        """The stream must hold exactly what the service acknowledged, one entry per event.

        With one worker its /metrics count every 202 it sent, also those wrk stopped waiting
        for: the check is exact. With several, a scrape reaches one worker only; then the
        stream may exceed wrk's count by what was in flight when wrk stopped (one request per
        connection), never fall short of it.
        """
        not_202 = sum(count for status, count in self.answered.items() if status != "202")
        not_202 += self.wrk.non_2xx + self.wrk.socket_errors
        if exact:
            gap = self.stream_growth - self.answered_202_events
            ok = gap == 0
        else:
            gap = self.stream_growth - self.acked_events
            ok = 0 <= gap <= self.connections * self.per_request
        return {
            "answers_not_202": not_202,
            "stream_minus_acked": gap,
            "stream_matches_acked": ok,
            "acked_basis": "the service's 202 answers (/metrics)"
            if exact
            else "wrk's 2xx, plus at most one request per connection in flight",
        }

    def as_dict(self, exact: bool) -> dict[str, Any]:
        return {
            **self.wrk.as_dict(),
            "non_2xx": self.wrk.non_2xx,
            "events_per_s": round(self.events_per_s, 1),
            "status_counts": self.answered,
            "acked_events": self.acked_events,
            "answered_202_events": self.answered_202_events,
            "stream_growth": self.stream_growth,
            "dlq_enqueued_total": self.enqueued,
            "checks": self.checks(exact),
            "cpu": self.cpu,
        }


@dataclass(slots=True)
class DlqBench:
    """State shared by dlq_ingest and dlq_replay: the private cluster, the service, the queue."""

    harness: Harness
    pg_bin: Path
    redis_url: str
    port_base: int
    pg: PrivatePostgres | None = None
    server: ManagedProcess | None = None
    port: int = 0
    client: redis.Redis | None = None
    redis_pid: int | None = None
    rows_before: int = 0
    queued: int | None = None  # stream length after dlq_ingest, what replay must store
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # -- setup and teardown --------------------------------------------------------------

    @property
    def dsn(self) -> str:
        assert self.pg is not None
        return self.pg.dsn(DATABASE)

    def trees(self) -> dict[int, str]:
        """CPU labels: the private cluster counts as our PostgreSQL (`pg`), Redis as `redis`."""
        trees: dict[int, str] = {}
        if self.pg is not None and (postmaster := self.pg.postmaster_pid()) is not None:
            trees[postmaster] = "postgres_bench"
        if self.redis_pid is not None:
            trees[self.redis_pid] = "redis"
        return trees

    def _redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def xlen(self, key: str = QUEUE) -> int:
        return int(self._redis().xlen(key))

    def setup(self) -> dict[str, Any]:
        h = self.harness
        if not (self.pg_bin / "initdb").exists():
            raise DlqSetupFailed(
                f"PostgreSQL server binaries not found in {self.pg_bin} (set --pg-bin); the DLQ "
                "workloads need initdb and pg_ctl to run a cluster they may stop"
            )
        self.client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        info = self._redis().info("server")
        pid = int(info.get("process_id", 0))
        comm = Path(f"/proc/{pid}/comm")
        self.redis_pid = pid if comm.exists() and "redis" in comm.read_text() else None
        keys = int(self._redis().dbsize())
        self._redis().flushdb()
        persistence = {
            name: self._redis().config_get(name).get(name)
            for name in ("appendonly", "appendfsync", "save", "maxmemory")
        }
        self.port = free_ports(self.port_base, 1)[0]
        (pg_port,) = free_ports(self.port + 1, 1)
        self.pg = PrivatePostgres(self.pg_bin, pg_port, h.registry.log_dir)
        h.log(f"  private PostgreSQL on :{pg_port} in {self.pg.root}")
        self.pg.create()
        self.pg.start()
        run_async(rawdb.recreate_database(self.pg.dsn("postgres"), DATABASE))
        settings = run_async(
            rawdb.settings(
                self.dsn,
                ("server_version", "fsync", "synchronous_commit", "shared_buffers", "autovacuum"),
            )
        )
        self.env = {key: os.environ.get(key, value) for key, value in SERVICE_ENV.items()}
        env = h.server_env()
        env.update(self.env)
        env["DATASTORAGE_DATABASE_URL"] = self.dsn
        env["DATASTORAGE_REDIS_URL"] = self.redis_url
        h.log(f"  service on :{self.port} (PostgreSQL :{pg_port}, Redis {self.redis_url})")
        self.server = h.registry.start(
            "datastorage-dlq", h.server_argv(self.port), env=env, cwd=h.repo
        )
        first_start = wait_ready(self.server, self.port, READY_PATH, timeout_s=120)
        return {
            "postgres": {"port": pg_port, "data_dir": str(self.pg.data), **settings},
            "redis": {
                "url": self.redis_url,
                "version": info.get("redis_version"),
                "keys_flushed": keys,
                **persistence,
            },
            "service_port": self.port,
            "service_env": self.env,
            "first_start_s": round(first_start, 3),
        }

    def close(self) -> list[str]:
        """Stop the service, remove the private cluster, flush the DLQ's Redis database."""
        problems: list[str] = []
        # Each part is forgotten only once it is done, so a second call finishes the job.
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.harness.registry.stop(self.server, timeout_s=15.0)
            self.server = None
        if self.pg is not None:
            problems.extend(self.pg.destroy())
            self.pg = None
        if self.client is not None:
            client, self.client = self.client, None
            try:
                client.flushdb()
            except (RedisError, OSError) as exc:
                problems.append(f"could not flush {self.redis_url}: {exc}")
            finally:
                client.close()
        return problems

    # -- helpers -----------------------------------------------------------------------

    def scrape(self) -> promtext.Scrape:
        status, body = http_request(self.port, "GET", "/metrics")
        if status != 200:
            raise CheckFailed(f"/metrics answered {status}")
        return promtext.Scrape.of(body.decode())

    def server_alive(self) -> ManagedProcess:
        if self.server is None or not self.server.alive():
            tail = self.server.log_tail() if self.server is not None else ""
            raise CheckFailed(f"the DLQ service is not running:\n{tail}")
        return self.server

    def settle(self, timeout_s: float = 15.0) -> int:
        """Wait until requests still in flight after a load run are queued; the stream length."""
        deadline = time.monotonic() + timeout_s
        last, since = self.xlen(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(POLL_S)
            now = self.xlen()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= SETTLE_S:
                break
        return last

    def load_run(self, requests: RequestSet, connections: int, per_request: int) -> LoadRun:
        h = self.harness
        server = self.server_alive()
        route = BATCH_PATH if per_request > 1 else EVENTS_PATH
        run_wrk(self.port, requests, connections=connections, duration_s=h.profile.warmup_s)
        before_len = self.settle()
        before = self.scrape()
        result, cpu = h.measured_wrk(
            self.port,
            requests,
            connections,
            {server.pid: "service"},
            timeout_s=30,
            database=DATABASE,
            trees=self.trees(),
        )
        after_len = self.settle()
        after = self.scrape()
        return LoadRun(
            wrk=result,
            cpu=cpu,
            connections=connections,
            per_request=per_request,
            stream_growth=after_len - before_len,
            answered=promtext.delta_by_label(
                before, after, "datastorage_http_requests_total", "status", route=route
            ),
            enqueued=round(
                after.value("datastorage_dlq_enqueued_total", stream="events")
                - before.value("datastorage_dlq_enqueued_total", stream="events")
            ),
        )

    # -- dlq_ingest ----------------------------------------------------------------------

    def ingest(self) -> dict[str, Any]:
        h, profile = self.harness, self.harness.profile
        environment = self.setup()
        self.batches = events.batch_events(
            profile.batch_bodies, profile.batch_size, seed=profile.seed, tag="dlq"
        )
        bodies = [orjson.dumps(batch) for batch in self.batches]
        singles = events.single_bodies(profile.single_bodies, seed=profile.seed, tag="dlq-single")

        status, answer = http_request(self.port, "POST", EVENTS_PATH, singles[0])
        if status != 201:
            raise CheckFailed(f"with PostgreSQL up the service answered {status}: {answer[:300]!r}")
        self.rows_before = run_async(rawdb.table_rows(self.dsn))

        assert self.pg is not None
        h.log("  stopping PostgreSQL (pg_ctl -m immediate)")
        environment["pg_stop_s"] = round(self.pg.stop("immediate"), 3)

        # Each body once, answered 202; the entries they made are the baseline's messages.
        first_202_s = None
        for index, body in enumerate(bodies):
            started = time.perf_counter()
            status, answer = http_request(self.port, "POST", BATCH_PATH, body, timeout_s=60)
            document = orjson.loads(answer) if status == 202 else {}
            if status != 202 or len(document.get("event_ids", [])) != profile.batch_size:
                raise CheckFailed(
                    f"with PostgreSQL down the service answered {status}: {answer[:300]!r}"
                )
            if index == 0:
                first_202_s = round(time.perf_counter() - started, 3)
        messages = self._queued_messages(len(bodies) * profile.batch_size)
        scrape = self.scrape()
        environment["first_202_s"] = first_202_s
        environment["breaker_state"] = scrape.value(
            "datastorage_circuit_breaker_state", dependency="postgresql"
        )
        sample = orjson.loads(messages[0])
        if sample.get("type") != "audit_event" or "event_id" not in sample.get("payload", {}):
            raise CheckFailed(f"unexpected DLQ entry: {messages[0][:300]!r}")
        baseline_batches = [
            messages[first : first + profile.batch_size]
            for first in range(0, len(messages), profile.batch_size)
        ]

        h.log(
            f"  baseline: raw pipelined XADD (redis-py asyncio, MULTI, {profile.batch_size} "
            f"per pipeline, {profile.batch_connections} connections)"
        )
        base = run_async(
            xadd_baseline(
                self.redis_url,
                baseline_batches,
                concurrency=profile.batch_connections,
                warmup_s=profile.warmup_s,
                duration_s=profile.duration_s,
                trees=self.trees(),
            )
        )
        baseline_len = self.xlen(BASELINE_STREAM)
        self._redis().unlink(BASELINE_STREAM)

        exact = h.workers == 1
        h.log(
            f"  ours: POST /api/v1/audit/events/batch ({profile.batch_size} events, "
            f"{profile.batch_connections} connections), PostgreSQL down"
        )
        batch_requests = RequestSet("POST", paths=[BATCH_PATH], bodies=bodies)
        batch = self.load_run(batch_requests, profile.batch_connections, profile.batch_size)
        h.log(f"    {batch.events_per_s:,.0f} events/s")

        h.log(f"  ours (info): POST /api/v1/audit/events, {profile.single_connections} connections")
        single_requests = RequestSet("POST", paths=[EVENTS_PATH], bodies=singles)
        single = self.load_run(single_requests, profile.single_connections, 1)
        h.log(f"    {single.events_per_s:,.0f} events/s")

        self.queued = self.xlen()
        environment["message_bytes_mean"] = round(sum(map(len, messages)) / len(messages), 1)
        base_rate = base.items_per_s
        return {
            "unit": "events/s",
            "ours": round(batch.events_per_s, 1),
            "baseline": round(base_rate, 1),
            "ratio": ratio(batch.events_per_s, base_rate),
            "connections": profile.batch_connections,
            "batch_size": profile.batch_size,
            "body_bytes": len(bodies[0]),
            "ours_detail": batch.as_dict(exact),
            "baseline_detail": {
                "batches_per_s": round(base.ops_per_s, 1),
                "events": base.items,
                "events_per_s": round(base_rate, 1),
                "latency_ms": base.latency.summary_ms(),
                "errors": base.errors,
                "error_samples": base.error_samples,
                "stream_length": baseline_len,
                "pipeline": "MULTI/EXEC, one XADD per event",
                "cpu": base.cpu,
            },
            "single": round(single.events_per_s, 1),
            "single_detail": {
                **single.as_dict(exact),
                "connections": profile.single_connections,
                "body_bytes": len(singles[0]),
            },
            "queued_total": self.queued,
            "metrics_cover_all_workers": exact,
            "environment": environment,
        }

    def _queued_messages(self, count: int) -> list[bytes]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self._redis().xrange(QUEUE, count=count)  # type: ignore[assignment]
        messages = [fields[b"message"] for _, fields in entries]
        if len(messages) != count:
            raise CheckFailed(f"the DLQ holds {len(messages)} entries, expected {count}")
        return messages

    # -- dlq_replay ----------------------------------------------------------------------

    def replay(self) -> dict[str, Any]:
        h, profile = self.harness, self.harness.profile
        if self.queued is None or self.pg is None:
            raise CheckFailed("dlq_replay needs the queue dlq_ingest leaves (it did not run)")
        server = self.server_alive()
        queued = self.xlen()
        before = self.scrape()
        trees = self.trees()
        h.log(f"  starting PostgreSQL; {queued:,} events wait in {QUEUE}")
        cpu_before = sysinfo.cpu_snapshot({server.pid: "service"}, DATABASE, trees)
        pg_start_s = self.pg.start()
        up_at = time.perf_counter()
        progress, first_replay_s = self._wait_drained(queued, up_at)
        drained_at = time.perf_counter()
        drain_s = drained_at - up_at
        trees = self.trees()  # the postmaster is a new process
        cpu_after = sysinfo.cpu_snapshot({server.pid: "service"}, DATABASE, trees)
        cpu = sysinfo.with_other(sysinfo.cpu_delta(cpu_before, cpu_after, drain_s))
        time.sleep(0.5)  # the last XACK+XDEL came after the commit; metrics follow
        after = self.scrape()
        rows_written = run_async(rawdb.table_rows(self.dsn)) - self.rows_before
        dead = self.xlen(DEAD)
        notifications = self.xlen(NOTIFICATIONS_QUEUE)
        rate = queued / drain_s if drain_s else 0.0
        steady_s = drain_s - first_replay_s if first_replay_s is not None else None
        h.log(
            f"    drained in {drain_s:.1f}s ({rate:,.0f} events/s); rows written {rows_written:,}"
        )

        h.log(
            f"  baseline: raw asyncpg copy_records_to_table of {queued:,} rows, "
            f"{profile.batch_size} per COPY, {profile.batch_connections} connections"
        )
        base = run_async(
            rawdb.copy_rows(
                self.dsn, self.batches, queued, concurrency=profile.batch_connections, trees=trees
            )
        )
        exact = h.workers == 1
        replayed = round(
            after.value("datastorage_dlq_replayed_total", stream="events")
            - before.value("datastorage_dlq_replayed_total", stream="events")
        )
        return {
            "unit": "events/s",
            "ours": round(rate, 1),
            "baseline": round(base.items_per_s, 1),
            "ratio": ratio(rate, base.items_per_s),
            "events": queued,
            "ours_detail": {
                "events": queued,
                "events_per_s": round(rate, 1),
                "pg_start_s": round(pg_start_s, 3),
                "first_replay_s": first_replay_s,
                "drain_s": round(drain_s, 3),
                "steady_events_per_s": round(queued / steady_s, 1) if steady_s else None,
                "rows_written": rows_written,
                "rows_minus_queued": rows_written - queued,
                "replayed_total": replayed,
                "metrics_cover_all_workers": exact,
                "dead_lettered": dead,
                "notifications_left": notifications,
                "replay_batch": int(os.environ.get("DATASTORAGE_DLQ_REPLAY_BATCH", "500")),
                "progress": progress,
                "cpu": cpu,
            },
            "baseline_detail": {
                "events": base.items,
                "seconds": round(base.seconds, 3),
                "events_per_s": round(base.items_per_s, 1),
                "batches": base.operations,
                "latency_ms": base.latency.summary_ms(),
                "errors": base.errors,
                "connections": profile.batch_connections,
                "cpu": base.cpu,
            },
        }

    def _wait_drained(self, queued: int, up_at: float) -> tuple[list[list[float]], float | None]:
        """Poll the stream until empty; (seconds, length) about every second, first progress."""
        cap_s = 120.0 + queued / 1000  # at least 1,000 events/s, or it is a failure
        progress: list[list[float]] = [[0.0, float(queued)]]
        first_replay_s = None
        last, last_change = queued, time.perf_counter()
        while True:
            now = time.perf_counter()
            length = self.xlen()
            if length != last:
                last, last_change = length, now
                if first_replay_s is None and length < queued:
                    first_replay_s = round(now - up_at, 3)
            if now - up_at >= len(progress):
                progress.append([round(now - up_at, 2), float(length)])
            if length == 0:
                progress.append([round(now - up_at, 2), 0.0])
                return progress, first_replay_s
            if now - last_change > STALL_S or now - up_at > cap_s:
                tail = self.server.log_tail() if self.server is not None else ""
                raise CheckFailed(
                    f"replay stalled: {length:,} of {queued:,} entries still queued after "
                    f"{now - up_at:.0f}s; service log:\n{tail}"
                )
            self.server_alive()
            time.sleep(POLL_S)


async def xadd_baseline(
    url: str,
    batches: Sequence[Sequence[bytes]],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    trees: dict[int, str] | None = None,
) -> rawdb.RawResult:
    """`concurrency` connections, each sending one MULTI pipeline of XADDs per batch."""
    clients = [aioredis.Redis.from_url(url, socket_timeout=30) for _ in range(concurrency)]
    counter = [0]

    async def add_batch(client: aioredis.Redis, index: int) -> int:
        counter[0] += 1
        batch = batches[counter[0] % len(batches)]
        async with client.pipeline(transaction=True) as pipe:
            for message in batch:
                pipe.xadd(BASELINE_STREAM, {"message": message})
            await pipe.execute()
        return len(batch)

    try:
        for client in clients:
            await client.ping()
        return await rawdb.timed_loop(
            clients,
            add_batch,
            warmup_s=warmup_s,
            duration_s=duration_s,
            max_operations=10_000_000,
            database=None,
            errors=(RedisError, OSError),
            trees=trees,
        )
    finally:
        for client in clients:
            await client.aclose()
