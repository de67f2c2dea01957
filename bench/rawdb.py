"""Direct PostgreSQL work: database setup, the preload, and the raw-asyncpg baselines."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from bench import events, sysinfo
from bench.stats import LatencyRecorder

# The event columns a page returns, the same set the service's REST answer carries.
PAGE_COLUMNS = """
    event_id, event_date, event_timestamp, event_version, event_type, event_category,
    event_action, event_outcome, actor_type, actor_id, host(actor_ip) AS actor_ip, resource_type,
    resource_id, resource_name, correlation_id, parent_event_id, namespace, cluster_name,
    severity, duration_ms, error_code, error_message, retention_days, is_sensitive,
    event_data::text AS event_data, trace_id, span_id, chain_seq, event_hash,
    previous_event_hash, hash_algorithm, legal_hold, legal_hold_reason, legal_hold_placed_by,
    legal_hold_placed_at, ingested_at
"""
PAGE_SQL = (
    f"SELECT {PAGE_COLUMNS} FROM audit_events WHERE event_type = $1 AND correlation_id = $2 "
    "ORDER BY event_timestamp DESC, event_id DESC LIMIT 50"
)
PAGE_SIZE = 50


async def recreate_database(admin_dsn: str, name: str) -> None:
    """Drop `name` if it exists and create it empty (only ever a ds_bench* database)."""
    _check_bench_name(name)
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    _check_bench_name(name)
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _check_bench_name(name: str) -> None:
    if not name.startswith("ds_bench") or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to touch database {name!r}: only ds_bench* names are ours")


async def table_rows(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_events"))
    finally:
        await connection.close()


async def settings(dsn: str, names: Sequence[str]) -> dict[str, str]:
    """`SHOW name` for each of `names`."""
    connection = await asyncpg.connect(dsn)
    try:
        return {name: str(await connection.fetchval(f"SHOW {name}")) for name in names}
    finally:
        await connection.close()


async def postgres_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


@dataclass(slots=True)
class PreloadResult:
    rows: int
    seconds: float
    analyze_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "analyze_seconds": round(self.analyze_seconds, 2),
        }


async def preload(dsn: str, rows: int, *, seed: int, connections: int = 2) -> PreloadResult:
    """COPY `rows` synthetic events (whole correlations) into audit_events, then VACUUM ANALYZE."""
    total = events.correlation_count(rows)
    chunk = 200  # correlations per COPY call: 20,000 rows
    now = events.utc_now()
    started = time.perf_counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for first in range(0, total, chunk):
        queue.put_nowait(first)

    async def loader() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            while not queue.empty():
                first = queue.get_nowait()
                count = min(chunk, total - first)
                records = list(events.preload_rows(first, count, seed=seed, now=now))
                await connection.copy_records_to_table(
                    "audit_events", records=records, columns=events.COPY_COLUMNS
                )
        finally:
            await connection.close()

    await asyncio.gather(*(loader() for _ in range(connections)))
    loaded = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM (ANALYZE) audit_events")
    finally:
        await connection.close()
    return PreloadResult(
        rows=total * events.ROWS_PER_CORRELATION,
        seconds=loaded - started,
        analyze_seconds=time.perf_counter() - loaded,
    )


async def copy_catalog(
    dsn: str, rows: Sequence[tuple[Any, ...]], columns: Sequence[str]
) -> tuple[float, float]:
    """COPY the workflow catalog into remediation_workflows in one statement (its statement
    trigger NOTIFYs the service once, at commit), then ANALYZE; (copy seconds, analyze seconds)."""
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "remediation_workflows", records=rows, columns=list(columns)
        )
        copied = time.perf_counter()
        await connection.execute("ANALYZE remediation_workflows")
        return copied - started, time.perf_counter() - copied
    finally:
        await connection.close()


async def catalog_counts(dsn: str) -> dict[str, int]:
    """Latest versions by status, as stored."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT status, count(*) FROM remediation_workflows WHERE is_latest_version "
            "GROUP BY status"
        )
        return {str(row[0]): int(row[1]) for row in rows}
    finally:
        await connection.close()


@dataclass(slots=True)
class RawResult:
    """Outcome of an in-process raw-asyncpg loop."""

    operations: int
    items: int
    seconds: float
    cpu: dict[str, Any]
    latency: LatencyRecorder
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


async def timed_loop(
    connections: Sequence[Any],
    operation: Any,
    *,
    warmup_s: float,
    duration_s: float,
    max_operations: int,
    database: str | None,
    errors: tuple[type[BaseException], ...] = (asyncpg.PostgresError, OSError),
    trees: dict[int, str] | None = None,
) -> RawResult:
    """Run `operation(connection, worker_index)` on every connection until the time is up.

    Counts only what completes inside the measured window (after the warm-up). `errors` are the
    exceptions counted as failed operations; `trees` labels servers in the CPU split.
    """
    latency = LatencyRecorder()
    state = {"operations": 0, "items": 0, "errors": 0}
    samples: list[str] = []
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    measure_from = clock() + warmup_s
    stop_at = measure_from + duration_s

    async def worker(index: int, connection: asyncpg.Connection) -> None:
        while True:
            begun = clock()
            if begun >= stop_at or state["operations"] >= max_operations:
                return
            try:
                items = await operation(connection, index)
            except errors as exc:
                if clock() >= measure_from:
                    state["errors"] += 1
                    if len(samples) < 5:
                        samples.append(repr(exc))
                continue
            ended = clock()
            # Like wrk: what completes inside the measured window counts.
            if measure_from <= ended <= stop_at:
                state["operations"] += 1
                state["items"] += items
                latency.add(ended - begun)

    tasks = [
        asyncio.create_task(worker(index, connection))
        for index, connection in enumerate(connections)
    ]
    await asyncio.sleep(max(0.0, measure_from - clock()))
    # Snapshots while the connections are open, so their backends' CPU is counted.
    # The harness process ("harness" in the CPU split) is the baseline itself here.
    before = sysinfo.cpu_snapshot(database=database, trees=trees)
    await asyncio.gather(*tasks)
    after = sysinfo.cpu_snapshot(database=database, trees=trees)
    cpu = sysinfo.cpu_delta(before, after, clock() - measure_from)
    return RawResult(
        operations=state["operations"],
        items=state["items"],
        seconds=duration_s,
        cpu=sysinfo.with_other(cpu),
        latency=latency,
        errors=state["errors"],
        error_samples=samples,
    )


async def copy_baseline(
    dsn: str,
    batches: Sequence[Sequence[dict[str, Any]]],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> RawResult:
    """`concurrency` connections each COPYing 1,000-row batches (fresh ids) into audit_events."""
    templates = [events.row_templates(batch) for batch in batches]
    connections = [await asyncpg.connect(dsn) for _ in range(concurrency)]
    counter = [0]

    async def copy_batch(connection: asyncpg.Connection, index: int) -> int:
        counter[0] += 1
        rows = events.rows_from_templates(templates[counter[0] % len(templates)])
        await connection.copy_records_to_table(
            "audit_events", records=rows, columns=events.COPY_COLUMNS
        )
        return len(rows)

    try:
        return await timed_loop(
            connections,
            copy_batch,
            warmup_s=warmup_s,
            duration_s=duration_s,
            max_operations=10_000_000,
            database=_database(dsn),
        )
    finally:
        for connection in connections:
            await connection.close()


async def copy_rows(
    dsn: str,
    batches: Sequence[Sequence[dict[str, Any]]],
    total: int,
    *,
    concurrency: int,
    trees: dict[int, str] | None = None,
) -> RawResult:
    """COPY exactly `total` rows (fresh ids, batches of the given content) on `concurrency`
    connections, as fast as they go; timed from the first COPY to the last commit."""
    templates = [events.row_templates(batch) for batch in batches]
    size = len(templates[0])
    chunks = [min(size, total - first) for first in range(0, total, size)]
    connections = [await asyncpg.connect(dsn) for _ in range(concurrency)]
    latency = LatencyRecorder()
    copied = [0, 0]  # batches, rows
    clock = time.perf_counter

    async def worker(connection: asyncpg.Connection) -> None:
        while chunks:
            count = chunks.pop()
            rows = events.rows_from_templates(templates[copied[0] % len(templates)][:count])
            copied[0] += 1
            begun = clock()
            await connection.copy_records_to_table(
                "audit_events", records=rows, columns=events.COPY_COLUMNS
            )
            latency.add(clock() - begun)
            copied[1] += count

    try:
        before = sysinfo.cpu_snapshot(database=_database(dsn), trees=trees)
        started = clock()
        await asyncio.gather(*(worker(connection) for connection in connections))
        seconds = clock() - started
        after = sysinfo.cpu_snapshot(database=_database(dsn), trees=trees)
    finally:
        for connection in connections:
            await connection.close()
    return RawResult(
        operations=copied[0],
        items=copied[1],
        seconds=seconds,
        cpu=sysinfo.with_other(sysinfo.cpu_delta(before, after, seconds)),
        latency=latency,
    )


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID class, which orjson does not know.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode_page(records: Sequence[asyncpg.Record]) -> bytes:
    """The page as JSON, event_data embedded as-is (what a plain handler would send)."""
    data = []
    for record in records:
        row = dict(record)
        row["event_data"] = orjson.Fragment(row["event_data"])
        data.append(row)
    return orjson.dumps({"data": data}, default=_default)


async def page_baseline(
    dsn: str,
    correlations: Sequence[str],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> tuple[RawResult, int]:
    """`concurrency` connections running the page query and encoding each page with orjson.

    Returns the result and the byte size of one encoded page (for comparison with the HTTP ones).
    """
    connections = [
        await asyncpg.connect(dsn, server_settings={"timezone": "UTC"}) for _ in range(concurrency)
    ]
    counter = [0]
    sizes: list[int] = []

    async def page(connection: asyncpg.Connection, index: int) -> int:
        counter[0] += 1
        correlation = correlations[counter[0] % len(correlations)]
        records = await connection.fetch(PAGE_SQL, events.PAGE_EVENT_TYPE, correlation)
        body = encode_page(records)
        if not sizes:
            sizes.append(len(body))
        return len(records)

    try:
        result = await timed_loop(
            connections,
            page,
            warmup_s=warmup_s,
            duration_s=duration_s,
            max_operations=100_000_000,
            database=_database(dsn),
        )
    finally:
        for connection in connections:
            await connection.close()
    return result, sizes[0] if sizes else 0


async def page_rows(dsn: str, correlation: str) -> int:
    """How many rows the page query returns for `correlation` (a sanity check)."""
    connection = await asyncpg.connect(dsn)
    try:
        return len(await connection.fetch(PAGE_SQL, events.PAGE_EVENT_TYPE, correlation))
    finally:
        await connection.close()


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _database(dsn: str) -> str:
    return dsn.rsplit("/", 1)[-1]
