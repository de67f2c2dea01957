"""Workflow label search: hard filters, the legacy label score, and deterministic ranking (pure).

Weights are kept as integers in units of 1/10,000 (`0.10` is 1000), so every sum is exact and ties
compare exactly. Conversion to float happens once per reported number, by a correctly rounded
integer division: `52500 / 100000` is the same double as the literal `0.525` the spec and legacy
callers expect (summing float weights would give 0.5249999999999999).

Where the spec leaves room:
- A boolean detected label counts only when the search says `true`, as in the legacy service
  (its searches could not say `false`: the field was omitted).
- An empty string is no value, on either side: it never matches, and a search asking for a concrete
  gitOpsTool penalises it like a missing one ("a different concrete value or none").
- `failed_detections` skips exactly the labels it names.
"""

from __future__ import annotations

import datetime as dt
import heapq
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

WILDCARD = "*"
DEFAULT_STATUSES: tuple[str, ...] = ("active",)
DEFAULT_TOP_K = 10
MAX_TOP_K = 100

UNITS_PER_WEIGHT = 10_000  # 1 unit = 0.0001 of a raw weight
_BASE = 50_000  # the legacy 5.0
_FULL = 100_000  # a final score of 1.0 (the legacy divisor 10.0)

CUSTOM_EXACT = 500  # 0.05
CUSTOM_WILDCARD = 250  # 0.025

ContributionKind = Literal["boost", "penalty"]
ContributionSource = Literal["detected", "custom"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A validated label search; `detected_labels` and `custom_labels` use the wire keys.

    `statuses` is the whole allowed set (a caller honouring `include_disabled` adds "disabled");
    `failed_detections` travels inside `detected_labels` on the wire and is passed separately here.
    """

    signal_type: str
    severity: str
    component: str
    environment: str
    priority: str
    detected_labels: Mapping[str, bool | str] | None = None
    failed_detections: Collection[str] = ()
    custom_labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    statuses: Collection[str] = DEFAULT_STATUSES
    top_k: int = DEFAULT_TOP_K
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class MandatoryLabels:
    """The five mandatory labels of a workflow (the search sends one environment, a workflow many)."""

    signal_type: str
    severity: str
    component: str
    environment: tuple[str, ...]
    priority: str


@dataclass(frozen=True, slots=True)
class WorkflowCandidate:
    """What scoring needs of a stored workflow; build once per catalog load, reuse per search."""

    workflow_id: uuid.UUID
    created_at: dt.datetime
    status: str
    is_latest_version: bool
    labels: MandatoryLabels
    detected_labels: Mapping[str, bool | str] = field(default_factory=dict)
    custom_labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # created_at as integer microseconds, so ordering needs no datetime work per search.
    created_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        created = self.created_at
        if created.tzinfo is None:  # stored timestamps are UTC
            created = created.replace(tzinfo=dt.UTC)
        object.__setattr__(self, "created_us", (created - _EPOCH) // _MICROSECOND)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One label's effect on a score, in raw weight units, with a reason a human can read."""

    label: str
    kind: ContributionKind
    weight: float
    reason: str
    source: ContributionSource


@dataclass(frozen=True, slots=True)
class WorkflowScore:
    """The score of one workflow for one search (`confidence` equals `final_score`)."""

    workflow_id: uuid.UUID
    final_score: float
    confidence: float
    label_boost: float
    label_penalty: float
    breakdown: tuple[Contribution, ...]


@dataclass(frozen=True, slots=True)
class RankedWorkflow:
    """A search result: a score with its 1-based position."""

    workflow_id: uuid.UUID
    rank: int
    final_score: float
    confidence: float
    label_boost: float
    label_penalty: float
    # The contributions as found; worded only when asked for (REST and most GraphQL selections
    # never show them, and the wording was a tenth of a search's time).
    hits: tuple[_Hit, ...]

    @property
    def breakdown(self) -> tuple[Contribution, ...]:
        """Each label's contribution, in table order, adding up to boost and penalty."""
        return tuple(_describe(hit) for hit in self.hits)


# ---------------------------------------------------------------------------------------------
# Rules compiled once per search
# ---------------------------------------------------------------------------------------------

# Table order is the breakdown order: (label, full weight in units, penalty in units, is a string).
# Penalties total at most 0.20, so a score never falls below 0.48: only the cap at 1.0 is needed.
_DETECTED_RULES: tuple[tuple[str, int, int, bool], ...] = (
    ("gitOpsManaged", 1000, 1000, False),
    ("gitOpsTool", 1000, 1000, True),
    ("pdbProtected", 500, 0, False),
    ("serviceMesh", 500, 0, True),
    ("networkIsolated", 300, 0, False),
    ("helmManaged", 200, 0, False),
    ("stateful", 200, 0, False),
    ("hpaEnabled", 200, 0, False),
)
DETECTED_LABELS: tuple[str, ...] = tuple(rule[0] for rule in _DETECTED_RULES)
_TABLE_ORDER = {label: position for position, label in enumerate(DETECTED_LABELS)}


@dataclass(frozen=True, slots=True)
class _Plan:
    """A search reduced to what each candidate is checked against; plain tuples unpack fastest."""

    statuses: frozenset[str]
    flags: tuple[tuple[str, int, int], ...]  # label, weight, penalty
    values: tuple[tuple[str, str, int, int], ...]  # label, wanted, weight, penalty
    custom: tuple[tuple[str, str], ...]  # key, wanted


class _Hit(NamedTuple):
    """A non-zero contribution as found; turned into a `Contribution` only for returned results."""

    source: ContributionSource
    label: str
    wanted: bool | str
    found: object
    units: int  # > 0 boost, < 0 penalty


def _compile(query: SearchQuery) -> _Plan:
    detected = query.detected_labels or {}
    failed = frozenset(query.failed_detections)
    flags: list[tuple[str, int, int]] = []
    values: list[tuple[str, str, int, int]] = []
    for label, weight, penalty, is_string in _DETECTED_RULES:
        wanted = detected.get(label)
        if label in failed:
            continue
        if is_string and isinstance(wanted, str) and wanted:
            values.append((label, wanted, weight, penalty))
        elif not is_string and wanted is True:
            flags.append((label, weight, penalty))
    custom = tuple(
        (key, value) for key in sorted(query.custom_labels) for value in query.custom_labels[key]
    )
    return _Plan(frozenset(query.statuses), tuple(flags), tuple(values), custom)


def _admitted(
    query: SearchQuery, statuses: frozenset[str], workflows: Iterable[WorkflowCandidate]
) -> Iterator[WorkflowCandidate]:
    """The candidates that pass every hard filter (the search fields hoisted out of the loop)."""
    signal_type, severity, component = query.signal_type, query.severity, query.component
    environment, priority = query.environment, query.priority
    for workflow in workflows:
        labels = workflow.labels
        if (
            workflow.is_latest_version
            and labels.signal_type == signal_type
            and workflow.status in statuses
            and (labels.severity == severity or labels.severity == WILDCARD)
            and (labels.component == component or labels.component == WILDCARD)
            and (labels.priority == priority or labels.priority == WILDCARD)
            and (environment in labels.environment or WILDCARD in labels.environment)
        ):
            yield workflow


def _units(plan: _Plan, workflow: WorkflowCandidate, hits: list[_Hit] | None) -> tuple[int, int]:
    """(boost, penalty) in units; records each non-zero contribution in `hits` when given.

    Ranking and explanation share this one function, so a breakdown always adds up to its score.
    """
    boost = penalty = 0
    get = workflow.detected_labels.get
    for label, weight, fine in plan.flags:
        found = get(label)
        if found is True:
            boost += weight
            units = weight
        elif fine:
            penalty += fine
            units = -fine
        else:
            continue
        if hits is not None:
            hits.append(_Hit("detected", label, True, found, units))
    for label, wanted, weight, fine in plan.values:
        found = get(label)
        # Full weight for the same concrete value; half when either side is "*" (a search "*" needs
        # some value on the workflow); otherwise the penalty, never charged against a wildcard.
        if found == wanted and wanted != WILDCARD:
            units = weight
        elif found == WILDCARD or (wanted == WILDCARD and isinstance(found, str) and found):
            units = weight // 2
        elif fine and wanted != WILDCARD:
            units = -fine
        else:
            continue
        if units > 0:
            boost += units
        else:
            penalty -= units
        if hits is not None:
            hits.append(_Hit("detected", label, wanted, found, units))
    get_custom = workflow.custom_labels.get
    for key, wanted in plan.custom:
        found_values = get_custom(key)
        if not found_values:
            continue
        if wanted in found_values:
            units = CUSTOM_EXACT
        elif WILDCARD in found_values:
            units = CUSTOM_WILDCARD
        else:
            continue
        boost += units
        if hits is not None:
            hits.append(_Hit("custom", key, wanted, found_values, units))
    return boost, penalty


def _describe(hit: _Hit) -> Contribution:
    source, label, wanted, found, units = hit
    kind: ContributionKind = "boost" if units > 0 else "penalty"
    if source == "custom":
        matched = repr(wanted) if units == CUSTOM_EXACT else "'*' (half weight)"
        reason = f"workflow custom label {label!r} contains {matched}"
    elif wanted is True:
        state = "true" if found is True else "false" if found is False else "unset"
        reason = f"search is true, workflow is {state}"
    elif units < 0:
        has = repr(found) if isinstance(found, str) and found else "no value"
        reason = f"search wants {wanted!r}, workflow has {has}"
    elif wanted == WILDCARD:
        reason = f"search accepts any value, workflow has {found!r} (half weight)"
    elif found == WILDCARD:
        reason = f"workflow accepts any value '*', search has {wanted!r} (half weight)"
    else:
        reason = f"workflow has {found!r} (exact match)"
    return Contribution(label, kind, abs(units) / UNITS_PER_WEIGHT, reason, source)


def _hit_order(hit: _Hit) -> int:
    return _TABLE_ORDER[hit.label] if hit.source == "detected" else len(_TABLE_ORDER)


def _final_units(boost: int, penalty: int) -> int:
    return min(_FULL, _BASE + boost - penalty)


def _explain(plan: _Plan, workflow: WorkflowCandidate) -> tuple[int, int, tuple[_Hit, ...]]:
    """(boost, penalty, contributions in table order)."""
    hits: list[_Hit] = []
    boost, penalty = _units(plan, workflow, hits)
    # Flags and string labels are scored in separate loops; report them in table order.
    hits.sort(key=_hit_order)
    return boost, penalty, tuple(hits)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def passes_hard_filters(query: SearchQuery, workflow: WorkflowCandidate) -> bool:
    """True when the workflow may appear in the results of this search at all."""
    return any(_admitted(query, frozenset(query.statuses), (workflow,)))


def score(query: SearchQuery, workflow: WorkflowCandidate) -> WorkflowScore:
    """The label score of one workflow, with its breakdown (hard filters are not applied)."""
    boost, penalty, hits = _explain(_compile(query), workflow)
    final = _final_units(boost, penalty) / _FULL
    return WorkflowScore(
        workflow_id=workflow.workflow_id,
        final_score=final,
        confidence=final,
        label_boost=boost / UNITS_PER_WEIGHT,
        label_penalty=penalty / UNITS_PER_WEIGHT,
        breakdown=tuple(_describe(hit) for hit in hits),
    )


def clamp_top_k(top_k: int) -> int:
    """The number of results a search returns at most: `top_k` limited to 0..100."""
    return max(0, min(top_k, MAX_TOP_K))


def rank(query: SearchQuery, workflows: Iterable[WorkflowCandidate]) -> list[RankedWorkflow]:
    """Filter, score and order: `final_score DESC, created_at DESC, workflow_id ASC`, top_k kept."""
    return rank_with_total(query, workflows)[0]


def rank_with_total(
    query: SearchQuery, workflows: Iterable[WorkflowCandidate]
) -> tuple[list[RankedWorkflow], int]:
    """`rank`, and how many workflows matched (passed the filters and `min_score`) in all."""
    plan = _compile(query)
    min_score = query.min_score
    scores_labels = bool(plan.flags or plan.values or plan.custom)
    admitted: list[WorkflowCandidate] = []
    # Plain int tuples, so the heap compares in C; the UUID's int orders like PostgreSQL's uuid,
    # and the position breaks the tie a duplicated id would leave.
    keys: list[tuple[int, int, int, int]] = []
    for workflow in _admitted(query, plan.statuses, workflows):
        final = _final_units(*_units(plan, workflow, None)) if scores_labels else _BASE
        if final / _FULL >= min_score:
            keys.append((-final, -workflow.created_us, workflow.workflow_id.int, len(admitted)))
            admitted.append(workflow)
    best = heapq.nsmallest(clamp_top_k(query.top_k), keys)
    ranked = [_ranked(position, plan, admitted[key[3]]) for position, key in enumerate(best, 1)]
    return ranked, len(keys)


def _ranked(position: int, plan: _Plan, workflow: WorkflowCandidate) -> RankedWorkflow:
    boost, penalty, hits = _explain(plan, workflow)
    final = _final_units(boost, penalty) / _FULL
    return RankedWorkflow(
        workflow_id=workflow.workflow_id,
        rank=position,
        final_score=final,
        confidence=final,
        label_boost=boost / UNITS_PER_WEIGHT,
        label_penalty=penalty / UNITS_PER_WEIGHT,
        hits=hits,
    )


def index_key(workflow: WorkflowCandidate) -> str:
    """The bucket of an in-memory index: `signal_type` has no wildcard, so a search reads one."""
    return workflow.labels.signal_type


def build_index(workflows: Iterable[WorkflowCandidate]) -> dict[str, tuple[WorkflowCandidate, ...]]:
    """Candidates grouped by `index_key`; pass `index.get(query.signal_type, ())` to `rank`."""
    buckets: dict[str, list[WorkflowCandidate]] = {}
    for workflow in workflows:
        buckets.setdefault(index_key(workflow), []).append(workflow)
    return {key: tuple(bucket) for key, bucket in buckets.items()}
