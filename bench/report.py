"""Turning measurements into summary rows (with targets) and a plain-text table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.stats import ratio


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    unit: str
    ours: float | None
    baseline: float | None
    baseline_name: str
    ratio: float | None
    target: str
    passed: bool | None  # None: informational, no target
    note: str = ""
    goal: bool = False  # a goal rather than a hard target: missed shows as MISS, not FAIL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _passes(checks: Sequence[bool | None]) -> bool | None:
    if any(check is None for check in checks):
        return None
    return all(bool(check) for check in checks)


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _compared(
    name: str, result: dict[str, Any], baseline_name: str, target: str, passed: bool | None
) -> Row:
    return Row(
        workload=name,
        unit=result["unit"],
        ours=result["ours"],
        baseline=result["baseline"],
        baseline_name=baseline_name,
        ratio=result["ratio"],
        target=target,
        passed=passed,
        note="; ".join(
            part
            for part in (
                f"non-2xx {result['ours_detail']['non_2xx']}",
                _noise(result["ours_detail"], result["baseline_detail"]),
            )
            if part
        ),
    )


NOISE_CORES = 0.3
_NEIGHBOUR_KEYS = ("other_procs_cores", "postgres_other_cores", "unattributed_cores")


def neighbour_cores(detail: dict[str, Any]) -> float:
    """Cores used during a measurement by work that is neither ours nor the baseline's."""
    cpu = detail.get("cpu") or {}
    return round(sum(max(0.0, float(cpu.get(key, 0.0))) for key in _NEIGHBOUR_KEYS), 2)


def _noise(*details: dict[str, Any]) -> str:
    worst = max(neighbour_cores(detail) for detail in details)
    return f"NOISY: neighbours used up to {worst:.2f} cores" if worst >= NOISE_CORES else ""


def _info(name: str, unit: str, value: float | None, note: str = "", **extra: Any) -> Row:
    fields: dict[str, Any] = {
        "workload": name,
        "unit": unit,
        "ours": value,
        "baseline": None,
        "baseline_name": "",
        "ratio": None,
        "target": "(info)",
        "passed": None,
        "note": note,
    }
    return Row(**{**fields, **extra})


def summary_rows(workloads: dict[str, dict[str, Any]]) -> list[Row]:
    """One row per selected workload (plus the writer's rows after ingest_single)."""
    rows: list[Row] = []
    for name, result in workloads.items():
        if "error" in result:
            rows.append(_info(name, "", None, "ERROR: " + result["error"], passed=False, target=""))
        elif name == "ingest_single":
            checks = [_at_least(result["ours"], 5000), _at_least(result["ratio"], 0.5)]
            rows.append(
                _compared(
                    name, result, "plain Starlette+orjson", ">= 5000/s and >= 0.5x", _passes(checks)
                )
            )
            writer = result["writer"]
            rows.append(
                _info(
                    "  writer mean batch",
                    "events/flush",
                    writer["mean_batch_size"],
                    f"{writer['flushes']} flushes, mean flush {writer['mean_flush_ms']} ms",
                )
            )
            dropped = writer["events_dropped_total"]
            rows.append(
                _info("  events dropped", "count", dropped, target="== 0", passed=dropped == 0)
            )
        elif name == "ingest_batch":
            ratio_ok = _at_least(result["ratio"], 0.7)
            rows.append(_compared(name, result, "raw asyncpg COPY", ">= 0.7x", ratio_ok))
        elif name == "page_rest":
            ratio_ok = _at_least(result["ratio"], 0.5)
            rows.append(_compared(name, result, "raw asyncpg+orjson", ">= 0.5x", ratio_ok))
        elif name == "page_graphql":
            ratio_ok = _at_least(result["ratio"], 0.5)
            rows.append(_compared(name, result, "REST (page_rest)", ">= 0.5x", ratio_ok))
        elif name == "page_raw":
            rows.append(_info(name, "req/s", result["ours"], "is the baseline of page_rest"))
        elif name == "startup":
            times = ", ".join(f"{seconds:.2f}" for seconds in result["seconds"])
            rows.append(_info(name, "s to ready", result["median_s"], f"median of {times}"))
        elif name in ("search_rest", "search_graphql"):
            rows.extend(_search_rows(name, result))
        elif name == "dlq_ingest":
            rows.extend(_dlq_ingest_rows(name, result))
        elif name == "dlq_replay":
            rows.extend(_dlq_replay_rows(name, result))
    return rows


DLQ_INGEST_TARGET = 20_000  # events/s into the DLQ with PostgreSQL down (batch endpoint)
DLQ_REPLAY_TARGET = 10_000  # events/s from PostgreSQL back up until the DLQ is empty


def _dlq_ingest_rows(name: str, result: dict[str, Any]) -> list[Row]:
    ours, single = result["ours_detail"], result["single_detail"]
    row = _compared(
        name,
        result,
        "raw pipelined XADD",
        f">= {DLQ_INGEST_TARGET}/s",
        _at_least(result["ours"], DLQ_INGEST_TARGET),
    )
    rows = [row]
    rows.append(
        _info(
            "  single POSTs",
            "events/s",
            result["single"],
            f"{single['connections']} conns; non-2xx {single['non_2xx']}",
        )
    )
    not_202 = ours["checks"]["answers_not_202"] + single["checks"]["answers_not_202"]
    rows.append(_info("  answers not 202", "count", not_202, target="== 0", passed=not_202 == 0))
    gap = ours["checks"]["stream_minus_acked"] + single["checks"]["stream_minus_acked"]
    matches = ours["checks"]["stream_matches_acked"] and single["checks"]["stream_matches_acked"]
    rows.append(
        _info(
            "  stream - acked",
            "events",
            gap,
            f"stream grew {ours['stream_growth'] + single['stream_growth']:,}; "
            f"acked = {ours['checks']['acked_basis']}",
            target="== 0" if result["metrics_cover_all_workers"] else "in-flight only",
            passed=matches,
        )
    )
    return rows


def _dlq_replay_rows(name: str, result: dict[str, Any]) -> list[Row]:
    ours = result["ours_detail"]
    notes = [f"{ours['events']:,} events"]
    if ours["first_replay_s"] is not None:
        notes.append(f"first replay after {ours['first_replay_s']:.1f}s")
    if ours["steady_events_per_s"] is not None:
        notes.append(f"then {ours['steady_events_per_s']:,.0f}/s")
    noise = _noise(ours, result["baseline_detail"])
    if noise:
        notes.append(noise)
    row = Row(
        workload=name,
        unit=result["unit"],
        ours=result["ours"],
        baseline=result["baseline"],
        baseline_name="raw asyncpg COPY, same rows",
        ratio=result["ratio"],
        target=f">= {DLQ_REPLAY_TARGET}/s",
        passed=_at_least(result["ours"], DLQ_REPLAY_TARGET),
        note="; ".join(notes),
    )
    gap = ours["rows_minus_queued"]
    lost = ours["dead_lettered"]
    return [
        row,
        _info(
            "  rows - queued",
            "rows",
            gap,
            f"rows written {ours['rows_written']:,}; dead-lettered {lost}",
            target="== 0",
            passed=gap == 0 and lost == 0,
        ),
    ]


def _search_rows(name: str, result: dict[str, Any]) -> list[Row]:
    ours, goal = result["ours_detail"], result["goal"]
    p95 = ours["latency_ms"]["p95"]
    row = _compared(
        f"{name} ({result['connections']} conns)",
        result,
        "plain Starlette GET",
        f">= {goal['searches_per_s']}/s, p95 < {goal['p95_ms_below']:g} ms",
        goal["passed"],
    )
    rows = [
        Row(
            **{
                **row.as_dict(),
                "unit": "searches/s",
                "note": "; ".join(
                    part for part in (f"p95 {p95:.1f} ms{_in_service(ours)}", row.note) if part
                ),
                "goal": True,
            }
        )
    ]
    for connections, level in result["levels"].items():
        detail = level["ours_detail"]
        rows.append(
            _info(
                f"  {connections} conns",
                "searches/s",
                level["ours"],
                f"p95 {detail['latency_ms']['p95']:.1f} ms{_in_service(detail)}; "
                f"non-2xx {detail['non_2xx']}",
                baseline=level["baseline"],
                baseline_name="plain GET",
                ratio=level["ratio"],
            )
        )
    for key, label in (
        ("large_bucket", "  2,000-wf bucket"),
        ("with_breakdown", "  +scoreBreakdown"),
    ):
        if key in result:
            detail = result[key]
            rows.append(
                _info(
                    f"{label} ({detail['connections']} conns)",
                    "searches/s",
                    detail["requests_per_s"],
                    f"p95 {detail['latency_ms']['p95']:.1f} ms; non-2xx {detail['non_2xx']}",
                )
            )
    audit = ours["audit"]
    behind = audit["searches_answered"] - audit["rows_at_end"]
    rows.append(
        _info(
            "  audit rows/search",
            "rows",
            audit["rows_per_search"],
            f"{audit['rows_written']:,} rows for {audit['searches_answered']:,} searches "
            f"({audit['rows_per_s']:,.0f}/s)"
            + (
                f", writer batch {audit['writer_mean_batch']}"
                if audit["writer_mean_batch"] is not None
                else ""
            )
            + (f"; {behind:,} not yet written when wrk stopped" if behind > 0 else ""),
        )
    )
    return rows


def _in_service(detail: dict[str, Any]) -> str:
    """The service's own p99 (histogram bucket bound), to set beside wrk's percentiles."""
    p99 = (detail.get("server_duration_ms") or {}).get("p99")
    return "" if p99 is None else f" (in-service p99 <= {p99:g} ms)"


def search_sides(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The latency table's lines of a search workload: each concurrency, ours and baseline."""
    connections = result["connections"]
    sides = [(f"ours {connections}c", result["ours_detail"])]
    sides += [(f"ours {c}c", level["ours_detail"]) for c, level in result["levels"].items()]
    sides.append((f"baseline {connections}c", result["baseline_detail"]))
    sides += [(f"baseline {c}c", level["baseline_detail"]) for c, level in result["levels"].items()]
    if "large_bucket" in result:
        sides.append(("ours 2,000-wf bucket", result["large_bucket"]))
    if "with_breakdown" in result:
        sides.append(("ours +breakdown", result["with_breakdown"]))
    return sides


def page_result(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A page workload's result: its measurement beside its baseline's."""
    return {
        "unit": "req/s",
        "ours": ours["requests_per_s"],
        "baseline": baseline["requests_per_s"],
        "ratio": ratio(ours["requests_per_s"], baseline["requests_per_s"]),
        "ours_detail": ours,
        "baseline_detail": baseline,
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _verdict(passed: bool | None, goal: bool = False) -> str:
    if passed is False and goal:
        return "MISS"
    return {True: "PASS", False: "FAIL", None: "-"}[passed]


def format_table(rows: Sequence[Row]) -> str:
    header = (
        "workload",
        "unit",
        "ours",
        "baseline",
        "ratio",
        "target",
        "result",
        "baseline is / note",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.workload,
                row.unit,
                _number(row.ours),
                _number(row.baseline),
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                row.target,
                _verdict(row.passed, row.goal),
                "; ".join(part for part in (row.baseline_name, row.note) if part),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in (2, 3, 4) else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


_CPU_NAMES = {
    "service_cores": "service",
    "baseline_app_cores": "app",
    "harness_cores": "harness",
    "postgres_bench_cores": "pg",
    "redis_cores": "redis",
    "loadgen_cores": "wrk",
    "postgres_other_cores": "pg-other",
    "other_procs_cores": "other",
    "kernel_irq_cores": "irq",
    "unattributed_cores": "unattrib",
    "steal_cores": "steal",
    "machine_busy_cores": "busy",
}


def _cpu_text(cpu: dict[str, Any]) -> str:
    """Cores by consumer, biggest first; the machine's busy total last."""
    parts = [
        (name, cpu[key])
        for key, name in _CPU_NAMES.items()
        if key in cpu and key != "machine_busy_cores" and abs(cpu[key]) >= 0.02
    ]
    parts.sort(key=lambda part: -part[1])
    text = " ".join(f"{name}={value:.2f}" for name, value in parts)
    return f"{text} | busy={cpu.get('machine_busy_cores', 0):.2f}"


def format_latency(workloads: dict[str, dict[str, Any]]) -> str:
    """Latency percentiles and where the CPU went, for ours and the baseline of each workload."""
    header = ("workload", "side", "rate", "p50 ms", "p95 ms", "p99 ms", "errors", "cpu (cores)")
    lines = [header]
    for name, result in workloads.items():
        if "error" in result or name == "startup":
            continue
        sides: list[tuple[str, dict[str, Any]]] = []
        if name == "page_raw":
            sides.append(("raw", result["ours_detail"]))
        elif "levels" in result:
            sides.extend(search_sides(result))
        else:
            sides.append(("ours", result["ours_detail"]))
            if "single_detail" in result:
                sides.append(("ours single", result["single_detail"]))
            sides.append(("baseline", result["baseline_detail"]))
        for side, detail in sides:
            latency = detail.get("latency_ms") or {}
            rate = (
                detail.get("requests_per_s")
                or detail.get("batches_per_s")
                or detail.get("events_per_s")
            )
            errors = detail.get("non_2xx", detail.get("errors", 0))
            if isinstance(errors, dict):
                errors = sum(errors.values())
            cpu = detail.get("cpu") or {}
            cpu_text = _cpu_text(cpu)
            lines.append(
                (
                    name,
                    side,
                    _number(rate),
                    _number(latency.get("p50")),
                    _number(latency.get("p95")),
                    _number(latency.get("p99")),
                    str(errors),
                    cpu_text,
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)
