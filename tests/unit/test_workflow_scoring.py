"""Workflow label scoring and ranking: hard filters, legacy weights, ordering (no database)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Mapping, Sequence

import pytest

from datastorage.resolvers.workflow_scoring import (
    DETECTED_LABELS,
    MAX_TOP_K,
    MandatoryLabels,
    RankedWorkflow,
    SearchQuery,
    WorkflowCandidate,
    build_index,
    index_key,
    passes_hard_filters,
    rank,
    score,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
WORKED_EXAMPLE: dict[str, bool | str] = {
    "gitOpsManaged": True,
    "gitOpsTool": "argocd",
    "pdbProtected": True,
}


def wid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def workflow(
    n: int = 1,
    *,
    detected: Mapping[str, bool | str] | None = None,
    custom: Mapping[str, Sequence[str]] | None = None,
    signal_type: str = "OOMKilled",
    severity: str = "critical",
    component: str = "pod",
    environment: tuple[str, ...] = ("production",),
    priority: str = "P0",
    status: str = "active",
    latest: bool = True,
    created: dt.datetime = T0,
) -> WorkflowCandidate:
    return WorkflowCandidate(
        workflow_id=wid(n),
        created_at=created,
        status=status,
        is_latest_version=latest,
        labels=MandatoryLabels(signal_type, severity, component, environment, priority),
        detected_labels=detected or {},
        custom_labels=custom or {},
    )


def query(
    detected: Mapping[str, bool | str] | None = None,
    *,
    failed: Sequence[str] = (),
    custom: Mapping[str, Sequence[str]] | None = None,
    statuses: Sequence[str] = ("active",),
    top_k: int = 10,
    min_score: float = 0.0,
) -> SearchQuery:
    return SearchQuery(
        signal_type="OOMKilled",
        severity="critical",
        component="pod",
        environment="production",
        priority="P0",
        detected_labels=detected,
        failed_detections=failed,
        custom_labels=custom or {},
        statuses=statuses,
        top_k=top_k,
        min_score=min_score,
    )


def ids(results: list[RankedWorkflow]) -> list[uuid.UUID]:
    return [result.workflow_id for result in results]


def boost_and_penalty(
    searched: Mapping[str, bool | str], found: Mapping[str, bool | str]
) -> tuple[float, float]:
    scored = score(query(searched), workflow(detected=found))
    return scored.label_boost, scored.label_penalty


# --- weights -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "weight", "final"),
    [
        ("gitOpsManaged", 0.10, 0.51),
        ("pdbProtected", 0.05, 0.505),
        ("networkIsolated", 0.03, 0.503),
        ("helmManaged", 0.02, 0.502),
        ("stateful", 0.02, 0.502),
        ("hpaEnabled", 0.02, 0.502),
    ],
)
def test_boolean_label_boosts_by_its_weight(label: str, weight: float, final: float) -> None:
    scored = score(query({label: True}), workflow(detected={label: True}))
    assert (scored.label_boost, scored.label_penalty) == (weight, 0.0)
    assert scored.final_score == final
    assert scored.confidence == final


def test_gitops_boost_ranks_first() -> None:
    gitops = workflow(1, detected={"gitOpsManaged": True}, created=T0 - dt.timedelta(days=1))
    plain = workflow(2)
    first, second = rank(query({"gitOpsManaged": True}), [plain, gitops])
    assert (first.workflow_id, first.rank, first.label_boost, first.final_score) == (
        wid(1),
        1,
        0.10,
        0.51,
    )
    assert (second.workflow_id, second.rank, second.label_penalty) == (wid(2), 2, 0.10)


def test_pdb_boost_ranks_above_no_pdb() -> None:
    results = rank(
        query({"pdbProtected": True}), [workflow(1), workflow(2, detected={"pdbProtected": True})]
    )
    assert ids(results) == [wid(2), wid(1)]
    assert [r.label_boost for r in results] == [0.05, 0.0]
    assert [r.label_penalty for r in results] == [0.0, 0.0]  # pdbProtected never penalises


@pytest.mark.parametrize("found", [{"gitOpsManaged": False}, {}])
def test_gitops_mismatch_costs_a_penalty(found: Mapping[str, bool | str]) -> None:
    scored = score(query({"gitOpsManaged": True}), workflow(detected=found))
    assert (scored.label_boost, scored.label_penalty, scored.final_score) == (0.0, 0.10, 0.49)


@pytest.mark.parametrize("label", ["gitOpsManaged", "pdbProtected", "stateful"])
def test_boolean_false_in_search_neither_boosts_nor_penalises(label: str) -> None:
    assert boost_and_penalty({label: False}, {label: True}) == (0.0, 0.0)
    assert boost_and_penalty({label: False}, {}) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("searched", "found", "boost", "penalty"),
    [
        ("argocd", "argocd", 0.10, 0.0),  # exact
        ("*", "flux", 0.05, 0.0),  # search wildcard: half weight for any value
        ("*", "*", 0.05, 0.0),
        ("argocd", "*", 0.05, 0.0),  # workflow wildcard: half weight, never a penalty
        ("argocd", "flux", 0.0, 0.10),  # different concrete value
        ("argocd", None, 0.0, 0.10),  # workflow without a value
        ("argocd", "", 0.0, 0.10),  # an empty string is no value
        ("*", None, 0.0, 0.0),  # a search wildcard never penalises
        ("*", "", 0.0, 0.0),
    ],
)
def test_gitops_tool(searched: str, found: str | None, boost: float, penalty: float) -> None:
    have = {} if found is None else {"gitOpsTool": found}
    assert boost_and_penalty({"gitOpsTool": searched}, have) == (boost, penalty)


@pytest.mark.parametrize(
    ("searched", "found", "boost"),
    [
        ("istio", "istio", 0.05),
        ("*", "linkerd", 0.025),
        ("*", "*", 0.025),
        ("istio", "*", 0.025),
        ("istio", "linkerd", 0.0),  # serviceMesh has no penalty
        ("istio", None, 0.0),
        ("*", None, 0.0),
    ],
)
def test_service_mesh_has_half_weight_wildcards_and_no_penalty(
    searched: str, found: str | None, boost: float
) -> None:
    have = {} if found is None else {"serviceMesh": found}
    assert boost_and_penalty({"serviceMesh": searched}, have) == (boost, 0.0)


def test_all_eight_detected_labels_add_up_to_039_exactly() -> None:
    everything: dict[str, bool | str] = {label: True for label in DETECTED_LABELS}
    everything.update(gitOpsTool="argocd", serviceMesh="istio")
    scored = score(query(everything), workflow(detected=everything))
    assert (scored.label_boost, scored.label_penalty, scored.final_score) == (0.39, 0.0, 0.539)


def test_worked_example_from_the_spec() -> None:
    a = workflow(1, detected=WORKED_EXAMPLE, created=T0 - dt.timedelta(days=30))
    b = workflow(2)
    first, second = rank(query(WORKED_EXAMPLE), [b, a])
    assert (first.workflow_id, first.final_score, first.label_boost, first.label_penalty) == (
        wid(1),
        0.525,
        0.25,
        0.0,
    )
    assert (second.workflow_id, second.final_score, second.label_boost, second.label_penalty) == (
        wid(2),
        0.48,
        0.0,
        0.20,
    )


def test_a_custom_label_match_adds_0005_to_the_final_score() -> None:
    a = workflow(1, detected=WORKED_EXAMPLE, custom={"team": ["payments"]})
    scored = score(query(WORKED_EXAMPLE, custom={"team": ["payments"]}), a)
    assert (scored.final_score, scored.label_boost) == (0.53, 0.30)


@pytest.mark.parametrize(
    ("found", "boost"),
    [
        ({"team": ["payments"]}, 0.05),
        ({"team": ["search", "payments"]}, 0.05),
        ({"team": ["*"]}, 0.025),
        ({"team": ["payments", "*"]}, 0.05),  # exact wins over the wildcard, no double count
        ({"team": ["search"]}, 0.0),
        ({"team": []}, 0.0),
        ({"owner": ["payments"]}, 0.0),  # another key
        ({}, 0.0),
    ],
)
def test_custom_label_boost(found: Mapping[str, Sequence[str]], boost: float) -> None:
    scored = score(query(custom={"team": ["payments"]}), workflow(custom=found))
    assert (scored.label_boost, scored.label_penalty) == (boost, 0.0)


def test_each_searched_custom_value_counts() -> None:
    searched = {"constraint": ["cost-constrained", "stateful-safe"], "team": ["payments"]}
    found = {"constraint": ["stateful-safe", "cost-constrained"], "team": ["*"]}
    scored = score(query(custom=searched), workflow(custom=found))
    assert (scored.label_boost, scored.final_score) == (0.125, 0.5125)


def test_label_boost_may_exceed_039_with_custom_labels() -> None:
    everything: dict[str, bool | str] = {label: True for label in DETECTED_LABELS}
    everything.update(gitOpsTool="argocd", serviceMesh="istio")
    custom = {f"k{i}": [f"v{i}"] for i in range(4)}
    scored = score(query(everything, custom=custom), workflow(detected=everything, custom=custom))
    assert (scored.label_boost, scored.final_score) == (0.59, 0.559)


def test_final_score_is_capped_at_one() -> None:
    custom = {f"k{i}": [f"v{i}"] for i in range(101)}  # 101 x 0.05 = 5.05 > 5.0
    scored = score(query(custom=custom), workflow(custom=custom))
    assert scored.final_score == 1.0
    assert scored.confidence == 1.0
    assert scored.label_boost == 5.05  # raw units are reported uncapped


# --- failed detections ---------------------------------------------------------------------------


@pytest.mark.parametrize("label", DETECTED_LABELS)
def test_failed_detection_skips_the_label_entirely(label: str) -> None:
    searched: Mapping[str, bool | str] = {
        label: "argocd" if label == "gitOpsTool" else "istio" if label == "serviceMesh" else True
    }
    matching = score(query(searched, failed=[label]), workflow(detected=searched))
    missing = score(query(searched, failed=[label]), workflow())
    for scored in (matching, missing):
        assert (scored.label_boost, scored.label_penalty, scored.final_score) == (0.0, 0.0, 0.5)
        assert scored.breakdown == ()


def test_failed_detection_skips_only_the_labels_it_names() -> None:
    scored = score(query(WORKED_EXAMPLE, failed=["gitOpsManaged"]), workflow())
    assert (scored.label_boost, scored.label_penalty) == (0.0, 0.10)  # gitOpsTool still penalised
    assert [c.label for c in scored.breakdown] == ["gitOpsTool"]


# --- breakdown -----------------------------------------------------------------------------------


def test_breakdown_explains_every_contribution_in_table_order() -> None:
    searched: dict[str, bool | str] = {
        "gitOpsManaged": True,
        "gitOpsTool": "argocd",
        "serviceMesh": "*",
        "stateful": True,
    }
    found: dict[str, bool | str] = {"gitOpsTool": "flux", "serviceMesh": "istio", "stateful": True}
    custom_found = {"team": ["*"], "app": ["api"]}
    scored = score(
        query(searched, custom={"team": ["payments"], "app": ["api"]}),
        workflow(detected=found, custom=custom_found),
    )
    rows = [(c.label, c.kind, c.weight, c.source) for c in scored.breakdown]
    assert rows == [
        ("gitOpsManaged", "penalty", 0.10, "detected"),
        ("gitOpsTool", "penalty", 0.10, "detected"),
        ("serviceMesh", "boost", 0.025, "detected"),
        ("stateful", "boost", 0.02, "detected"),
        ("app", "boost", 0.05, "custom"),  # custom keys in sorted order
        ("team", "boost", 0.025, "custom"),
    ]
    reasons = [c.reason for c in scored.breakdown]
    assert "unset" in reasons[0]
    assert "'argocd'" in reasons[1] and "'flux'" in reasons[1]
    assert "half weight" in reasons[2] and "'istio'" in reasons[2]
    assert "'*'" in reasons[5]
    boosts = sum(c.weight for c in scored.breakdown if c.kind == "boost")
    penalties = sum(c.weight for c in scored.breakdown if c.kind == "penalty")
    assert boosts == pytest.approx(scored.label_boost)
    assert penalties == pytest.approx(scored.label_penalty)
    assert (scored.label_boost, scored.label_penalty, scored.final_score) == (0.12, 0.20, 0.492)


def test_ranked_results_carry_the_breakdown() -> None:
    (result,) = rank(query(WORKED_EXAMPLE), [workflow(detected=WORKED_EXAMPLE)])
    assert [(c.label, c.weight) for c in result.breakdown] == [
        ("gitOpsManaged", 0.10),
        ("gitOpsTool", 0.10),
        ("pdbProtected", 0.05),
    ]


# --- hard filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "admitted"),
    [
        (workflow(), True),
        (workflow(status="disabled"), False),
        (workflow(status="deprecated"), False),
        (workflow(status="archived"), False),
        (workflow(latest=False), False),
        (workflow(signal_type="CrashLoopBackOff"), False),
        (workflow(signal_type="oomkilled"), False),
        (workflow(signal_type="*"), False),  # signal_type has no wildcard
        (workflow(severity="*"), True),
        (workflow(severity="high"), False),
        (workflow(component="*"), True),
        (workflow(component="node"), False),
        (workflow(priority="*"), True),
        (workflow(priority="P1"), False),
        (workflow(environment=("staging", "production")), True),
        (workflow(environment=("*",)), True),
        (workflow(environment=("staging", "*")), True),
        (workflow(environment=("staging", "test")), False),
    ],
)
def test_hard_filters(candidate: WorkflowCandidate, admitted: bool) -> None:
    assert passes_hard_filters(query(), candidate) is admitted
    assert ids(rank(query(), [candidate])) == ([candidate.workflow_id] if admitted else [])


def test_statuses_widen_the_status_filter() -> None:
    candidates = [workflow(1), workflow(2, status="disabled"), workflow(3, status="archived")]
    widened = query(statuses=("active", "disabled"))
    assert sorted(ids(rank(widened, candidates))) == [wid(1), wid(2)]
    assert ids(rank(query(statuses=("archived",)), candidates)) == [wid(3)]


def test_score_does_not_apply_hard_filters() -> None:
    scored = score(
        query({"pdbProtected": True}),
        workflow(status="archived", latest=False, detected={"pdbProtected": True}),
    )
    assert scored.final_score == 0.505


# --- ranking -------------------------------------------------------------------------------------


def test_min_score_keeps_scores_at_or_above_the_threshold() -> None:
    a = workflow(1, detected=WORKED_EXAMPLE)  # 0.525
    b = workflow(2)  # 0.48
    assert ids(rank(query(WORKED_EXAMPLE, min_score=0.525), [a, b])) == [wid(1)]
    assert ids(rank(query(WORKED_EXAMPLE, min_score=0.48), [a, b])) == [wid(1), wid(2)]
    assert rank(query(WORKED_EXAMPLE, min_score=0.53), [a, b]) == []


def test_top_k_limits_and_clamps_to_100() -> None:
    candidates = [workflow(n) for n in range(1, 151)]
    assert len(rank(query(), candidates)) == 10  # the default
    assert len(rank(query(top_k=3), candidates)) == 3
    clamped = rank(query(top_k=1000), candidates)
    assert len(clamped) == MAX_TOP_K == 100
    assert [r.rank for r in clamped] == list(range(1, 101))


def test_zero_matches_is_an_empty_list() -> None:
    assert rank(query(), []) == []
    assert rank(query(), [workflow(signal_type="NodeNotReady"), workflow(latest=False)]) == []


def test_ties_break_by_created_at_desc_then_workflow_id_asc() -> None:
    older = workflow(1, created=T0 - dt.timedelta(microseconds=1))
    newer_high_id = workflow(9, created=T0)
    newer_low_id = workflow(5, created=T0)
    better_but_oldest = workflow(
        7, detected={"pdbProtected": True}, created=T0 - dt.timedelta(days=9)
    )
    results = rank(
        query({"pdbProtected": True}), [older, newer_high_id, better_but_oldest, newer_low_id]
    )
    assert ids(results) == [wid(7), wid(5), wid(9), wid(1)]
    assert [r.rank for r in results] == [1, 2, 3, 4]


def test_workflow_id_order_is_uuid_byte_order() -> None:
    # Canonical lowercase text sorts like the 128-bit value, which is how PostgreSQL orders uuid.
    low = uuid.UUID("0fffffff-ffff-ffff-ffff-ffffffffffff")
    high = uuid.UUID("a0000000-0000-0000-0000-000000000000")
    candidates = [
        WorkflowCandidate(
            u, T0, "active", True, MandatoryLabels("OOMKilled", "*", "*", ("*",), "*")
        )
        for u in (high, low)
    ]
    assert ids(rank(query(), candidates)) == [low, high]


def test_naive_created_at_is_taken_as_utc() -> None:
    naive = workflow(1, created=T0.replace(tzinfo=None) + dt.timedelta(seconds=1))
    aware = workflow(2, created=T0)
    assert naive.created_us == aware.created_us + 1_000_000
    assert ids(rank(query(), [aware, naive])) == [wid(1), wid(2)]


def test_order_is_identical_across_calls_and_input_order() -> None:
    rnd = random.Random(20260301)
    tools = ["argocd", "flux", "*", ""]
    candidates = [
        workflow(
            n,
            detected={
                "gitOpsManaged": rnd.random() < 0.5,
                "gitOpsTool": rnd.choice(tools),
                "pdbProtected": rnd.random() < 0.5,
            },
            custom={"team": [rnd.choice(["payments", "*", "search"])]},
            created=T0 - dt.timedelta(seconds=rnd.randrange(3)),  # many exact ties
        )
        for n in rnd.sample(range(1, 10**6), 300)
    ]
    search = query(WORKED_EXAMPLE, custom={"team": ["payments"]}, top_k=100)
    expected = rank(search, candidates)
    assert len(expected) == 100
    for _ in range(5):
        assert rank(search, candidates) == expected
        shuffled = candidates[:]
        rnd.shuffle(shuffled)
        assert rank(search, shuffled) == expected
    keys = [
        (-r.final_score, -by_id(candidates, r.workflow_id).created_us, r.workflow_id)
        for r in expected
    ]
    assert keys == sorted(keys)


def by_id(candidates: list[WorkflowCandidate], workflow_id: uuid.UUID) -> WorkflowCandidate:
    return next(c for c in candidates if c.workflow_id == workflow_id)


def test_capped_scores_tie_and_fall_back_to_created_at() -> None:
    many = {f"k{i}": [f"v{i}"] for i in range(101)}
    more = {**many, "extra": ["x"]}
    older_more = workflow(1, custom=more, created=T0 - dt.timedelta(hours=1))
    newer_many = workflow(2, custom=many, created=T0)
    results = rank(query(custom=more), [older_more, newer_many])
    assert [(r.workflow_id, r.final_score) for r in results] == [(wid(2), 1.0), (wid(1), 1.0)]


# --- index ---------------------------------------------------------------------------------------


def test_index_buckets_by_signal_type() -> None:
    oom = [workflow(1), workflow(2, latest=False)]
    crash = [workflow(3, signal_type="CrashLoopBackOff")]
    index = build_index([oom[0], crash[0], oom[1]])
    assert index == {"OOMKilled": tuple(oom), "CrashLoopBackOff": tuple(crash)}
    assert index_key(crash[0]) == "CrashLoopBackOff"
    everything = oom + crash
    assert rank(query(), index.get("OOMKilled", ())) == rank(query(), everything)
