"""The workflow search workloads: label searches over a 10,000-workflow catalog, REST and GraphQL.

    search_rest     POST /api/v1/workflows/search at 20 and 100 connections (wrk, a few hundred
                    different bodies rotated), plus one run on the 2,000-workflow bucket (info)
    search_graphql  POST /graphql `searchWorkflows`, same searches, same connections, plus one run
                    that also selects `scoreBreakdown` (info)

The baseline of both is a plain Starlette GET answering a small JSON document
(`bench/baseline_app.py`, same uvicorn loop, parser and worker count), at the same connections.
Every search also makes the service write one self-audit event (`workflow.catalog.search_completed`)
through its group-commit writer, in the background: each measured run counts the rows
`audit_events` gained, so that write is visible beside the searches.

The catalog (`bench/catalog.py`) is COPYed into `remediation_workflows` in one statement; the
table's statement trigger NOTIFYs the service, whose index reloads on the next search. A sample
of the same generated bodies first goes through `POST /api/v1/workflows`, so the generator stays
within the service's validation rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import catalog, promtext, rawdb
from bench.catalog import Catalog, Search
from bench.loadgen import RequestSet
from bench.procs import http_request
from bench.stats import ratio
from bench.workloads import GRAPHQL_PATH, CheckFailed, Harness, run_async

SEARCH_PATH = "/api/v1/workflows/search"
WORKFLOWS_PATH = "/api/v1/workflows"
SMALL_PATH = "/api/v1/small"  # the baseline app's GET
SEARCH_WORKLOADS = ("search_rest", "search_graphql")
GOAL_RATE = 3_000  # searches/s at GOAL_CONNECTIONS
GOAL_P95_MS = 15.0
GOAL_CONNECTIONS = 20
VALIDATE_EVERY = 500  # every 500th generated workflow is created through the REST API (20)
_RESULT_FIELDS = "rank finalScore workflowId workflowName version title confidence"
SEARCH_QUERY = (
    "query Search($input: WorkflowSearchInput!){ searchWorkflows(input:$input){ __typename "
    f"... on WorkflowSearchResponse{{ totalResults workflows{{ {_RESULT_FIELDS} }} }} "
    "... on ValidationFailed{ message } } }"
)
BREAKDOWN_QUERY = (
    "query Search($input: WorkflowSearchInput!){ searchWorkflows(input:$input){ __typename "
    f"... on WorkflowSearchResponse{{ totalResults workflows{{ {_RESULT_FIELDS} labelBoost "
    "labelPenalty scoreBreakdown{ label kind weight reason source } } } "
    "... on ValidationFailed{ message } } }"
)
# Fields of `audit` taken from /metrics (meaningless with several workers, see `measure`).
METRIC_AUDIT_KEYS = (
    "searches_in_service",
    "self_audit_written",
    "self_audit_failed",
    "writer_queue_at_end",
    "writer_flushes",
    "writer_mean_batch",
)
SETTLE_S = 1.0  # audit_events must not grow for this long after a run (background writes done)


def server_quantiles(
    before: promtext.Scrape, after: promtext.Scrape, route: str
) -> dict[str, float | None]:
    """p50/p95/p99 of the service's own request timing over a run (from handler entry to the
    last byte written: no queueing in the socket or the event loop before it), as the upper
    bound of the histogram bucket holding each; None past the last finite bucket."""
    buckets = promtext.delta_by_label(
        before,
        after,
        "datastorage_http_request_duration_seconds_bucket",
        "le",
        route=route,
        method="POST",
    )
    bounds = sorted((float(le), count) for le, count in buckets.items() if le != "+Inf")
    total = buckets.get("+Inf", 0)
    found: dict[str, float | None] = {}
    for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        rank = share * total
        found[name] = next(
            (round(1000 * bound, 2) for bound, count in bounds if count >= rank and total), None
        )
    return found


@dataclass(slots=True)
class SearchBench:
    """The catalog, the search bodies and the measurements shared by the two workloads."""

    harness: Harness
    catalog: Catalog | None = None
    searches: list[Search] = field(default_factory=list)
    large_searches: list[Search] = field(default_factory=list)
    loaded: dict[str, Any] = field(default_factory=dict)
    rankings: dict[str, list[list[str]]] = field(default_factory=dict)
    baselines: dict[int, dict[str, Any]] = field(default_factory=dict)

    # -- the catalog -------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """Generate the catalog, create a sample through the API, COPY the rest; first search."""
        h, profile = self.harness, self.harness.profile
        h.ensure_server()
        started = time.perf_counter()
        self.catalog = built = catalog.build_catalog(seed=profile.seed)
        rows = catalog.copy_rows(built, seed=profile.seed)
        generated_s = time.perf_counter() - started
        self.searches = catalog.build_searches(built, profile.search_bodies, seed=profile.seed)
        self.large_searches = catalog.build_searches(
            built,
            profile.large_bucket_bodies,
            seed=profile.seed + 1,
            signal_types=[catalog.LARGE_SIGNAL],
        )

        sample = list(range(0, len(built.bodies), VALIDATE_EVERY))
        h.log(f"  catalog: {len(sample)} workflows through POST {WORKFLOWS_PATH} (validation)")
        posted_at = time.perf_counter()
        for index in sample:
            status, answer = http_request(
                h.server_port, "POST", WORKFLOWS_PATH, orjson.dumps(built.bodies[index])
            )
            if status != 201:
                raise CheckFailed(
                    f"the service refused generated workflow {index} ({status}): {answer[:500]!r}"
                )
        post_s = time.perf_counter() - posted_at
        sampled = set(sample)
        copied = [row for index, row in enumerate(rows) if index not in sampled]

        h.log(f"  catalog: COPY {len(copied):,} workflows into remediation_workflows")
        loads_before = h.scrape().value("datastorage_workflow_index_loads_total")
        copy_s, analyze_s = run_async(rawdb.copy_catalog(h.dsn, copied, catalog.CATALOG_COLUMNS))
        counts = run_async(rawdb.catalog_counts(h.dsn))
        stored = sum(counts.values())
        if stored != len(built.bodies):
            raise CheckFailed(f"the catalog holds {stored} latest workflows, expected {len(rows)}")
        # The first search after the load reloads the index (the COPY's NOTIFY made it stale).
        first = time.perf_counter()
        status, answer = http_request(
            h.server_port, "POST", SEARCH_PATH, orjson.dumps(self.searches[0].rest_body())
        )
        first_search_ms = 1000 * (time.perf_counter() - first)
        if status != 200:
            raise CheckFailed(f"the first search answered {status}: {answer[:500]!r}")
        loads = h.scrape().value("datastorage_workflow_index_loads_total") - loads_before
        self.loaded = {
            **built.describe(),
            "stored_by_status": counts,
            "generate_s": round(generated_s, 2),
            "posted": len(sample),
            "post_ms_each": round(1000 * post_s / len(sample), 1),
            "copied": len(copied),
            "copy_s": round(copy_s, 3),
            "analyze_s": round(analyze_s, 3),
            "load_s": round(post_s + copy_s + analyze_s, 2),
            "first_search_ms": round(first_search_ms, 1),
            # With several workers the scrapes may reach different processes.
            "index_loads_after_copy": round(loads) if h.workers == 1 else None,
        }
        h.log(
            f"  catalog: {stored:,} workflows in {self.loaded['load_s']:.2f}s "
            f"(COPY {copy_s:.2f}s, ANALYZE {analyze_s:.2f}s, {len(sample)} POSTs {post_s:.2f}s); "
            f"first search (index reload) {first_search_ms:.0f} ms"
        )
        return self.loaded

    # -- request sets and sanity checks --------------------------------------------------------

    def requests(self, kind: str, searches: list[Search], query: str = SEARCH_QUERY) -> RequestSet:
        if kind == "rest":
            bodies = [orjson.dumps(search.rest_body()) for search in searches]
            return RequestSet("POST", paths=[SEARCH_PATH], bodies=bodies)
        bodies = [
            orjson.dumps({"query": query, "variables": search.graphql_variables()})
            for search in searches
        ]
        return RequestSet("POST", paths=[GRAPHQL_PATH], bodies=bodies)

    def sanity(self, kind: str, requests: RequestSet, label: str) -> dict[str, Any]:
        """Every body once: 200, no GraphQL error, results; the rankings, for REST vs GraphQL."""
        h = self.harness
        path = requests.paths[0]
        found: list[int] = []
        totals: list[int] = []
        sizes: list[int] = []
        ranking: list[list[str]] = []
        started = time.perf_counter()
        for body in requests.bodies:
            status, answer = http_request(h.server_port, "POST", path, body)
            document = orjson.loads(answer) if status == 200 else {}
            if kind == "rest":
                if status != 200:
                    raise CheckFailed(f"a search answered {status}: {answer[:500]!r}")
                workflows, total = document["workflows"], document["total_results"]
                ids = [str(item["workflow_id"]) for item in workflows]
            else:
                data = (document.get("data") or {}).get("searchWorkflows") or {}
                if status != 200 or document.get("errors") or "workflows" not in data:
                    raise CheckFailed(f"a GraphQL search answered {status}: {answer[:500]!r}")
                workflows, total = data["workflows"], data["totalResults"]
                ids = [str(item["workflowId"]) for item in workflows]
            if [item["rank"] for item in workflows] != list(range(1, len(workflows) + 1)):
                raise CheckFailed(f"{kind} search ranks are not 1..n: {answer[:300]!r}")
            found.append(len(workflows))
            totals.append(total)
            sizes.append(len(answer))
            ranking.append(ids)
        count = len(found)
        empty = sum(1 for n in found if n == 0)
        if empty > count // 2:
            raise CheckFailed(f"{empty} of {count} {kind} searches found nothing")
        self.rankings[label] = ranking
        return {
            "bodies": count,
            "empty": empty,
            "non_empty_pct": round(100 * (count - empty) / count, 1),
            "mean_results": round(sum(found) / count, 2),
            "mean_total_results": round(sum(totals) / count, 2),
            "max_total_results": max(totals),
            "mean_response_bytes": round(sum(sizes) / count),
            "mean_body_bytes": round(sum(map(len, requests.bodies)) / count),
            "check_s": round(time.perf_counter() - started, 2),
        }

    # -- measuring -----------------------------------------------------------------------------

    def settled_rows(self, timeout_s: float = 60.0) -> tuple[int, float]:
        """audit_events' row count once the background writes have caught up (the writer's queue
        empty and the count unchanged for SETTLE_S); and how long that took."""
        h = self.harness
        started = time.monotonic()
        last, since = run_async(rawdb.table_rows(h.dsn)), time.monotonic()
        while time.monotonic() - started < timeout_s:
            time.sleep(0.1)
            now = run_async(rawdb.table_rows(h.dsn))
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= SETTLE_S:
                if h.scrape().value("datastorage_writer_queue_depth") == 0:
                    break
                since = time.monotonic()
        return last, round(time.monotonic() - started, 2)

    def measure(self, kind: str, requests: RequestSet, connections: int) -> dict[str, Any]:
        """Warm-up, then one measured wrk run with the audit rows it caused."""
        h = self.harness
        server = h.ensure_server()
        h.warm_up(h.server_port, requests, connections)
        rows_before, _ = self.settled_rows()
        before = h.scrape()
        result, cpu = h.measured_wrk(h.server_port, requests, connections, {server.pid: "service"})
        after = h.scrape()
        rows_at_end = run_async(rawdb.table_rows(h.dsn))
        rows_after, settle_s = self.settled_rows()
        final = h.scrape()
        answered = result.requests - result.non_2xx
        route = SEARCH_PATH if kind == "rest" else GRAPHQL_PATH

        def delta(name: str, scrape: promtext.Scrape = after, **labels: str) -> float:
            return scrape.value(name, **labels) - before.value(name, **labels)

        searches = delta("datastorage_workflow_search_duration_seconds_count")
        flushes = delta("datastorage_audit_batch_size_count", final)
        flushed = delta("datastorage_audit_batch_size_sum", final)
        rows_written = rows_after - rows_before
        detail: dict[str, Any] = {
            **result.as_dict(),
            "unit": "searches/s",
            "requests_per_s": round(answered / result.duration_s, 1),
            "non_2xx": result.non_2xx,
            "connections": connections,
            "bodies": len(requests.bodies),
            "status_counts": promtext.delta_by_label(
                before, after, "datastorage_http_requests_total", "status", route=route
            ),
            "audit": {
                "searches_answered": answered,
                "searches_in_service": round(searches),
                "rows_written": rows_written,
                "rows_per_search": round(rows_written / answered, 3) if answered else None,
                "rows_per_s": round(rows_written / result.duration_s, 1),
                "self_audit_written": round(
                    delta("datastorage_self_audit_events_total", final, result="written")
                ),
                "self_audit_failed": round(
                    delta("datastorage_self_audit_events_total", final, result="failed")
                ),
                # Rows committed by the time wrk stopped, and the writer's queue then: under
                # saturation the background writes fall behind and catch up afterwards.
                "rows_at_end": rows_at_end - rows_before,
                "writer_queue_at_end": round(after.value("datastorage_writer_queue_depth")),
                "settle_s": settle_s,
                "writer_flushes": round(flushes),
                "writer_mean_batch": round(flushed / flushes, 1) if flushes else None,
                "metrics_cover_all_workers": h.workers == 1,
            },
            "mean_search_ms_in_service": round(
                1000 * delta("datastorage_workflow_search_duration_seconds_sum") / searches, 3
            )
            if searches
            else None,
            "cpu": cpu,
        }
        detail["server_duration_ms"] = server_quantiles(before, after, route)
        if kind == "graphql":
            detail["graphql_outcomes"] = promtext.delta_by_label(
                before, after, "datastorage_graphql_operations_total", "outcome"
            )
        if h.workers > 1:
            # Each scrape reaches whichever worker accepts it: before and after may come from
            # different processes, so their differences mean nothing. Only wrk's numbers and
            # the row counts (from the database) stand.
            for key in ("status_counts", "mean_search_ms_in_service", "graphql_outcomes"):
                if key in detail:
                    detail[key] = None
            detail["server_duration_ms"] = dict.fromkeys(("p50", "p95", "p99"))
            for key in METRIC_AUDIT_KEYS:
                detail["audit"][key] = None
        latency = result.latency_ms()
        h.log(
            f"    {connections} conns: {detail['requests_per_s']:,.0f} searches/s, p50 "
            f"{latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms; "
            f"audit rows +{rows_written:,}"
            + (
                f"; in-service p99 <= {detail['server_duration_ms']['p99']} ms"
                if h.workers == 1
                else ""
            )
        )
        return detail

    def baseline(self) -> dict[int, dict[str, Any]]:
        """The plain GET at every search concurrency, measured once for both workloads."""
        h, profile = self.harness, self.harness.profile
        missing = [c for c in profile.search_connections if c not in self.baselines]
        if not missing:
            return self.baselines
        h.log("  baseline: plain Starlette GET (small JSON)")
        requests = RequestSet("GET", paths=[SMALL_PATH])
        process = h.start_baseline_app()
        try:
            status, answer = http_request(h.baseline_port, "GET", SMALL_PATH)
            if status != 200:
                raise CheckFailed(f"baseline app answered {status}: {answer[:200]!r}")
            for connections in missing:
                h.warm_up(h.baseline_port, requests, connections)
                result, cpu = h.measured_wrk(
                    h.baseline_port, requests, connections, {process.pid: "baseline_app"}
                )
                self.baselines[connections] = {
                    **result.as_dict(),
                    "requests_per_s": round(
                        (result.requests - result.non_2xx) / result.duration_s, 1
                    ),
                    "non_2xx": result.non_2xx,
                    "connections": connections,
                    "response_bytes": len(answer),
                    "cpu": cpu,
                }
                h.log(
                    f"    {connections} conns: {self.baselines[connections]['requests_per_s']:,.0f}"
                    " req/s"
                )
        finally:
            h.registry.stop(process)
        return self.baselines

    # -- the workloads -------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self.catalog is None:
            self.load()

    def _levels(self, kind: str, requests: RequestSet) -> dict[int, dict[str, Any]]:
        return {
            connections: self.measure(kind, requests, connections)
            for connections in self.harness.profile.search_connections
        }

    def rest(self) -> dict[str, Any]:
        self._ensure_loaded()
        h = self.harness
        requests = self.requests("rest", self.searches)
        sanity = self.sanity("rest", requests, "rest")
        h.log(
            f"  ours: POST {SEARCH_PATH}, {sanity['bodies']} bodies "
            f"({sanity['non_empty_pct']}% non-empty, {sanity['mean_results']} results each)"
        )
        levels = self._levels("rest", requests)
        large_requests = self.requests("rest", self.large_searches)
        large_sanity = self.sanity("rest", large_requests, "rest-large")
        h.log(
            f"  ours (info): the {catalog.LARGE_BUCKET:,}-workflow bucket, "
            f"{large_sanity['mean_total_results']} matches per search"
        )
        large = self.measure("rest", large_requests, GOAL_CONNECTIONS)
        large["sanity"] = large_sanity
        return self._result("rest", levels, sanity, {"large_bucket": large})

    def graphql(self) -> dict[str, Any]:
        self._ensure_loaded()
        h = self.harness
        requests = self.requests("graphql", self.searches)
        sanity = self.sanity("graphql", requests, "graphql")
        if "rest" in self.rankings:
            sanity["same_ranking_as_rest"] = self.rankings["rest"] == self.rankings["graphql"]
            if not sanity["same_ranking_as_rest"]:
                raise CheckFailed("GraphQL and REST ranked the same searches differently")
        h.log(
            f"  ours: POST {GRAPHQL_PATH} searchWorkflows, {sanity['bodies']} bodies "
            f"({sanity['non_empty_pct']}% non-empty)"
        )
        levels = self._levels("graphql", requests)
        breakdown_requests = self.requests("graphql", self.searches, BREAKDOWN_QUERY)
        breakdown_sanity = self.sanity("graphql", breakdown_requests, "graphql-breakdown")
        h.log("  ours (info): also selecting scoreBreakdown, labelBoost, labelPenalty")
        breakdown = self.measure("graphql", breakdown_requests, GOAL_CONNECTIONS)
        breakdown["sanity"] = breakdown_sanity
        return self._result("graphql", levels, sanity, {"with_breakdown": breakdown})

    def _result(
        self,
        kind: str,
        levels: dict[int, dict[str, Any]],
        sanity: dict[str, Any],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        base = self.baseline()
        goal_level = GOAL_CONNECTIONS if GOAL_CONNECTIONS in levels else min(levels)
        ours = levels[goal_level]
        p95 = ours["latency_ms"]["p95"]
        rate_ok = ours["requests_per_s"] >= GOAL_RATE
        p95_ok = p95 < GOAL_P95_MS
        result: dict[str, Any] = {
            "unit": "searches/s",
            "ours": ours["requests_per_s"],
            "baseline": base[goal_level]["requests_per_s"],
            "ratio": ratio(ours["requests_per_s"], base[goal_level]["requests_per_s"]),
            "connections": goal_level,
            "ours_detail": ours,
            "baseline_detail": base[goal_level],
            "levels": {
                str(connections): {
                    "ours": detail["requests_per_s"],
                    "baseline": base[connections]["requests_per_s"],
                    "ratio": ratio(detail["requests_per_s"], base[connections]["requests_per_s"]),
                    "ours_detail": detail,
                    "baseline_detail": base[connections],
                }
                for connections, detail in levels.items()
                if connections != goal_level
            },
            "goal": {
                "connections": goal_level,
                "searches_per_s": GOAL_RATE,
                "p95_ms_below": GOAL_P95_MS,
                "rate_ok": rate_ok,
                "p95_ok": p95_ok,
                "passed": rate_ok and p95_ok,
            },
            "sanity": sanity,
            "catalog": self.loaded,
            **extra,
        }
        return result
