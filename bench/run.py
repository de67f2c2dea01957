"""Benchmark harness: `python -m bench.run [--quick] [--only NAME[,NAME]] [--out FILE]`.

Starts the service (and the baselines) on loopback ports, measures every selected workload beside
its baseline in the same run, prints a table and writes all numbers to a JSON file. Every process
it starts is stopped on exit, also on Ctrl-C and on errors. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench import dlq, loadgen, rawdb, report, search, sysinfo
from bench.procs import ProcessRegistry, free_ports, terminate_on_signals
from bench.workloads import DLQ_WORKLOADS, WORKLOADS, Harness, Profile, run_async

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"
HTTP_WORKLOADS = {
    "ingest_single",
    "ingest_batch",
    "page_rest",
    "page_graphql",
    *search.SEARCH_WORKLOADS,
    *DLQ_WORKLOADS,
}
PAGE_WORKLOADS = {"page_rest", "page_graphql", "page_raw"}

FULL = Profile(name="full", warmup_s=3.0, duration_s=12.0, preload_rows=1_000_000)
QUICK = Profile(
    name="quick",
    warmup_s=1.0,
    duration_s=3.0,
    preload_rows=50_000,
    single_bodies=1024,
    page_correlations=64,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="DataStorage benchmark harness"
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1-2 minutes)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated workloads to run (default: all): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--duration", type=float, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each measured run")
    parser.add_argument("--rows", type=int, help="rows to preload for the page workloads")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("DATASTORAGE_WORKERS", "1")),
        help="uvicorn workers for the service and the baseline app (default: 1)",
    )
    parser.add_argument("--port-base", type=int, default=18080, help="first loopback port to try")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server (no database part)",
    )
    parser.add_argument("--db-name", default="ds_bench", help="database to (re)create: ds_bench*")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument(
        "--dlq-redis-url",
        default="redis://127.0.0.1:6379/10",
        help="Redis database of the DLQ workloads (flushed before and after; not 0)",
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        default=dlq.DEFAULT_PG_BIN,
        help="PostgreSQL server binaries (initdb, pg_ctl) for the DLQ workloads' private cluster",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the benchmark database in place at the end"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for other work on the machine to calm down (< 0.3 cores)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 3 when a target is missed (default: 0 unless a workload errored)",
    )
    args = parser.parse_args(argv)
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in selected if name not in WORKLOADS]
    if unknown:
        parser.error(
            f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    if "dlq_replay" in selected and "dlq_ingest" not in selected:
        selected.append("dlq_ingest")  # replay drains what ingest queued
    args.selected = [name for name in WORKLOADS if not selected or name in selected]
    if set(DLQ_WORKLOADS) & set(args.selected):
        problem = dlq.check_redis_url(args.dlq_redis_url, args.redis_url)
        if problem:
            parser.error(problem)
    if not args.db_name.startswith("ds_bench"):
        parser.error("--db-name must start with ds_bench (the harness drops and recreates it)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def build_profile(args: argparse.Namespace) -> Profile:
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.duration is not None:
        changes["duration_s"] = max(1.0, args.duration)
    if args.warmup is not None:
        changes["warmup_s"] = max(1.0, args.warmup)
    if args.rows is not None:
        changes["preload_rows"] = max(10_000, args.rows)
    if not changes:
        return base
    fields = {name: getattr(base, name) for name in base.__dataclass_fields__}
    return Profile(**{**fields, **changes, "name": base.name + "+custom"})


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = build_profile(args)
    if HTTP_WORKLOADS & set(args.selected):
        try:
            loadgen.find_wrk()
        except loadgen.WrkMissing as exc:
            print(exc, file=sys.stderr)
            return 2

    server_port, baseline_port = free_ports(args.port_base, 2)
    admin_dsn = f"{args.pg}/postgres"
    dsn = f"{args.pg}/{args.db_name}"
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "finished_at": None,
        "complete": False,
        "profile": {name: getattr(profile, name) for name in profile.__dataclass_fields__},
        "selected": args.selected,
        "machine": sysinfo.machine_info(REPO),
        "config": {
            "workers": args.workers,
            "server_port": server_port,
            "baseline_port": baseline_port,
            "database": dsn,
            "redis": args.redis_url,
            "dlq_redis": args.dlq_redis_url,
            "pg_bin": str(args.pg_bin),
            "loadgen": loadgen.wrk_version(),
            "service_env": {
                key: value
                for key, value in os.environ.items()
                if key.startswith("DATASTORAGE_")
                and not key.endswith(("_URL", "_KEY", "_FILE", "PASSWORD"))
            },
        },
        "setup": {},
        "workloads": {},
        "summary": [],
        "notes": [],
    }
    registry = ProcessRegistry(log_dir=REPO / "bench" / "results" / "logs")
    for old_log in registry.log_dir.glob("*.log"):
        old_log.unlink()
    harness = Harness(
        repo=REPO,
        profile=profile,
        registry=registry,
        admin_dsn=admin_dsn,
        dsn=dsn,
        redis_url=args.redis_url,
        server_port=server_port,
        baseline_port=baseline_port,
        workers=args.workers,
        log=log,
    )
    dlq_bench = dlq.DlqBench(
        harness, pg_bin=args.pg_bin, redis_url=args.dlq_redis_url, port_base=args.port_base + 10
    )
    search_bench = search.SearchBench(harness)
    shared = any(name not in DLQ_WORKLOADS for name in args.selected)
    log(
        f"bench: profile {profile.name}, workloads {', '.join(args.selected)}; "
        f"service on :{server_port}, baseline on :{baseline_port}, database {args.db_name}"
    )
    interrupted = False
    try:
        with terminate_on_signals():
            results["setup"] = set_up(harness, args, search_bench, shared=shared)
            run_workloads(harness, args.selected, results, dlq_bench, search_bench)
        results["complete"] = True
    except KeyboardInterrupt:
        interrupted = True
        log("bench: interrupted; stopping everything it started")
    except Exception as exc:
        results["notes"].append("run aborted: " + "".join(traceback.format_exception(exc)))
        log(f"bench: aborted: {exc}")
    finally:
        with terminate_on_signals():
            for _attempt in range(2):  # a second Ctrl-C must not leave the private cluster behind
                try:
                    results["notes"].extend(dlq_bench.close())
                    break
                except KeyboardInterrupt:
                    continue
                except Exception as exc:
                    results["notes"].append(f"DLQ clean-up failed: {exc!r}")
                    break
        harness.stop_server()
        registry.stop_all()
        if shared and not args.keep_db:
            try:
                run_async(rawdb.drop_database(admin_dsn, args.db_name))
            except Exception as exc:
                results["notes"].append(f"could not drop {args.db_name}: {exc}")
    results["notes"].extend(harness.notes)
    digest_after = sysinfo.source_digest(REPO / "datastorage")
    if digest_after != results["machine"]["service_source_sha256"]:
        results["notes"].append(
            "the service's source changed during the run "
            f"({results['machine']['service_source_sha256']} -> {digest_after}); "
            "workloads after a restart may have run newer code"
        )
    results["interrupted"] = interrupted
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows = report.summary_rows(results["workloads"])
    results["summary"] = [row.as_dict() for row in rows]
    write_results(args.out, results)
    print()
    print(report.format_table(rows))
    print()
    print(report.format_latency(results["workloads"]))
    print()
    for note in results["notes"]:
        print("note:", note)
    print(f"results: {args.out}  (process logs: {registry.log_dir})")
    if interrupted:
        return 130
    if not results["complete"] or any(row.passed is False and "ERROR" in row.note for row in rows):
        return 1
    if args.strict and any(row.passed is False for row in rows):
        return 3
    return 0


def set_up(
    harness: Harness,
    args: argparse.Namespace,
    search_bench: search.SearchBench,
    *,
    shared: bool,
) -> dict[str, Any]:
    """Fresh database, schema via the service's own start, preload when a page workload runs,
    the workflow catalog when a search workload runs.

    Without `shared` (only DLQ workloads, which bring their own cluster) the shared PostgreSQL
    is not used at all.
    """
    setup: dict[str, Any] = {}
    busy = wait_quiet(args.wait_quiet)
    setup["background_busy_cores"] = busy
    if busy > 0.25:
        note = (
            f"the machine was already busy ({busy} cores) before the run started: "
            "other work shares these cores, so the numbers are noisier than usual"
        )
        harness.notes.append(note)
        log("setup: warning: " + note)
    if not shared:
        return setup
    log(f"setup: recreating database {args.db_name}")
    run_async(rawdb.recreate_database(harness.admin_dsn, args.db_name))
    setup["postgres_version"] = run_async(rawdb.postgres_version(harness.dsn))
    log("setup: first start of the service (applies migrations, creates partitions)")
    setup["first_start_s"] = round(harness.start_server(), 3)
    if PAGE_WORKLOADS & set(args.selected):
        rows = harness.profile.preload_rows
        log(f"setup: preloading {rows:,} rows with COPY")
        loaded = run_async(rawdb.preload(harness.dsn, rows, seed=harness.profile.seed))
        setup["preload"] = loaded.as_dict()
        log(f"setup: preloaded {loaded.rows:,} rows in {loaded.seconds:.1f}s")
    if set(search.SEARCH_WORKLOADS) & set(args.selected):
        log("setup: loading the workflow catalog")
        setup["catalog"] = search_bench.load()
    return setup


def wait_quiet(limit_s: float) -> float:
    """The machine's busy cores while the harness idles; waits up to `limit_s` for < 0.3."""
    deadline = time.monotonic() + limit_s
    busy = sysinfo.background_busy_cores(2.0)
    while busy >= 0.3 and time.monotonic() < deadline:
        log(f"setup: the machine is busy ({busy} cores of other work); waiting")
        time.sleep(5)
        busy = sysinfo.background_busy_cores(2.0)
    return busy


def run_workloads(
    harness: Harness,
    selected: Sequence[str],
    results: dict[str, Any],
    dlq_bench: dlq.DlqBench,
    search_bench: search.SearchBench,
) -> None:
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "startup": harness.startup,
        "page_raw": lambda: _raw_result(harness.page_raw()),
        "page_rest": lambda: report.page_result(harness.page_http("rest"), harness.page_raw()),
        "page_graphql": lambda: report.page_result(
            harness.page_http("graphql"), harness.page_http("rest")
        ),
        "search_rest": search_bench.rest,
        "search_graphql": search_bench.graphql,
        "ingest_single": harness.ingest_single,
        "ingest_batch": harness.ingest_batch,
        "dlq_ingest": dlq_bench.ingest,
        "dlq_replay": dlq_bench.replay,
    }
    # Pages first, on exactly the preloaded table; then the searches (each writes a self-audit
    # row); then the ingest workloads add rows; the DLQ workloads last, on their own cluster
    # (replay drains what dlq_ingest queued).
    order = (
        "startup",
        "page_raw",
        "page_rest",
        "page_graphql",
        "search_rest",
        "search_graphql",
        "ingest_single",
        "ingest_batch",
        "dlq_ingest",
        "dlq_replay",
    )
    for name in order:
        if name not in selected:
            continue
        if name in DLQ_WORKLOADS:
            harness.stop_server()  # the shared service would only idle beside them
        log(f"workload {name}")
        started = time.perf_counter()
        try:
            result = runners[name]()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
            harness.notes.append(f"{name} failed:\n" + "".join(traceback.format_exception(exc)))
            log(f"  {name} failed: {exc}")
        result["wall_s"] = round(time.perf_counter() - started, 1)
        results["workloads"][name] = result
        _log_result(name, result)


def _raw_result(measurement: dict[str, Any]) -> dict[str, Any]:
    return {"unit": "req/s", "ours": measurement["requests_per_s"], "ours_detail": measurement}


def _log_result(name: str, result: dict[str, Any]) -> None:
    if "error" in result:
        return
    if name == "startup":
        log(f"  median {result['median_s']:.3f}s to ready")
        return
    text = f"  ours {result['ours']:,.1f} {result['unit']}"
    if result.get("baseline") is not None:
        text += f", baseline {result['baseline']:,.1f}, ratio {result['ratio']:.2f}"
    log(text)


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    raise SystemExit(main())
