"""A synthetic workflow catalog and the label searches run against it (seeded, pure).

The catalog: `NORMAL_BUCKETS` signal types holding `NORMAL_MIN`..`NORMAL_MAX` workflows each (the
sizes spread evenly, 8,000 in all), plus one signal type holding `LARGE_BUCKET` workflows, which
only the large-bucket run searches: 10,000 latest versions. A search reads exactly one bucket
(`signal_type` has no wildcard), so the bucket size is what a search's cost scales with.

Workflows are generated as the create bodies `POST /api/v1/workflows` takes (so a sample can be
sent through the service's validation), and turned into COPY rows for `remediation_workflows`.
Searches are built from the catalog the way a remediation would ask: a signal arrives for a
(signal type, component, environment...) that some workflow covers, with the cluster's detected
labels and, for half of them, a custom label or two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

NORMAL_BUCKETS = 80
NORMAL_MIN, NORMAL_MAX = 50, 150
NORMAL_TOTAL = 8_000
LARGE_BUCKET = 2_000
LARGE_SIGNAL = "KubeWorkloadDegraded"

SEVERITIES = ("critical", "high", "medium", "low")
PRIORITIES = ("P0", "P1", "P2", "P3")
ENVIRONMENTS = ("production", "staging", "development", "test")
COMPONENTS = (
    "pod", "deployment", "statefulset", "daemonset", "node", "service", "ingress",
    "persistentvolumeclaim", "job", "cronjob", "horizontalpodautoscaler", "namespace",
)  # fmt: skip
# Status mix of the latest versions (the rest are active): searches see only `active`.
STATUS_MIX = (("disabled", 0.04), ("deprecated", 0.03), ("archived", 0.01))
ALERT_BASES = (
    "OOMKilled", "CrashLoopBackOff", "ImagePullBackOff", "NodeNotReady", "DiskPressure",
    "MemoryPressure", "PIDPressure", "HighCPUThrottling", "HighMemoryUsage", "HighLatency",
    "HighErrorRate", "CertificateExpiring", "PVCAlmostFull", "PodPending", "JobFailed",
    "CronJobMissed", "HPAMaxedOut", "ReplicasMismatch", "RolloutStuck", "EndpointDown",
)  # fmt: skip
ALERT_QUALIFIERS = ("", "Sustained", "Critical", "Burst")
ACTIONS = (
    "restart", "rollback", "scale-up", "increase-limits", "cordon-drain", "clear-cache",
    "rotate-cert", "expand-volume", "reschedule", "recreate", "tune-gc", "failover",
)  # fmt: skip
CUSTOM_VOCABULARY: dict[str, tuple[str, ...]] = {
    "team": ("payments", "checkout", "search", "platform", "data", "identity", "mobile", "ml"),
    "tier": ("frontend", "backend", "data", "batch"),
    "region": ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1"),
    "risk": ("low", "medium", "high"),
    "approval": ("auto", "manual"),
}
ENGINES = ("tekton", "tekton", "tekton", "job")
CATALOG_COLUMNS = (
    "workflow_id", "workflow_name", "version", "name", "description", "owner", "maintainer",
    "content", "content_hash", "parameters", "execution_engine", "container_image",
    "container_digest", "labels", "custom_labels", "detected_labels", "status", "disabled_at",
    "disabled_by", "disabled_reason", "is_latest_version", "approved_by", "approved_at",
    "expected_success_rate", "expected_duration_seconds", "created_at", "created_by",
    "updated_at", "updated_by",
)  # fmt: skip


def signal_types() -> list[str]:
    """The `NORMAL_BUCKETS` ordinary signal types (alert names with a qualifier)."""
    names = [base + qualifier for qualifier in ALERT_QUALIFIERS for base in ALERT_BASES]
    return names[:NORMAL_BUCKETS]


def bucket_sizes() -> list[int]:
    """Sizes evenly spread over NORMAL_MIN..NORMAL_MAX, summing to NORMAL_TOTAL."""
    span = NORMAL_MAX - NORMAL_MIN
    sizes = [NORMAL_MIN + span * i // (NORMAL_BUCKETS - 1) for i in range(NORMAL_BUCKETS)]
    missing = NORMAL_TOTAL - sum(sizes)
    for i in range(missing):  # a few +1s in the middle keep min and max where they are
        sizes[1 + i % (NORMAL_BUCKETS - 2)] += 1
    return sizes


@dataclass(frozen=True, slots=True)
class SignalProfile:
    """What one signal type's workflows look like: the components it concerns."""

    signal_type: str
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    bodies: list[dict[str, Any]]  # create bodies, as POST /api/v1/workflows takes them
    created_at: list[dt.datetime]  # per body (the COPY sets it; a POST would use now)
    profiles: dict[str, SignalProfile]

    def buckets(self) -> dict[str, list[int]]:
        """Body indexes by signal type."""
        found: dict[str, list[int]] = {}
        for index, body in enumerate(self.bodies):
            found.setdefault(body["labels"]["signal_type"], []).append(index)
        return found

    def describe(self) -> dict[str, Any]:
        sizes = [len(indexes) for name, indexes in self.buckets().items() if name != LARGE_SIGNAL]
        statuses: dict[str, int] = {}
        for body in self.bodies:
            statuses[body.get("status", "active")] = (
                statuses.get(body.get("status", "active"), 0) + 1
            )
        wildcards = {
            label: sum(1 for body in self.bodies if body["labels"][label] == "*")
            for label in ("severity", "component", "priority")
        }
        wildcards["environment"] = sum(
            1 for body in self.bodies if body["labels"]["environment"] == ["*"]
        )
        return {
            "workflows": len(self.bodies),
            "signal_types": len(sizes) + 1,
            "normal_buckets": len(sizes),
            "normal_bucket_min": min(sizes),
            "normal_bucket_max": max(sizes),
            "normal_bucket_mean": round(sum(sizes) / len(sizes), 1),
            "large_bucket": {"signal_type": LARGE_SIGNAL, "workflows": LARGE_BUCKET},
            "statuses": statuses,
            "wildcards": wildcards,
            "with_detected_labels": sum(1 for body in self.bodies if body["detected_labels"]),
            "with_custom_labels": sum(1 for body in self.bodies if body["custom_labels"]),
            "mean_content_bytes": round(
                sum(len(b["content"]) for b in self.bodies) / len(self.bodies)
            ),
        }


def _pick_weighted(rng: random.Random, choices: Sequence[tuple[str, float]], default: str) -> str:
    roll = rng.random()
    for value, share in choices:
        if roll < share:
            return value
        roll -= share
    return default


def _labels(rng: random.Random, profile: SignalProfile) -> dict[str, Any]:
    # About a quarter of the workflows accept any value of a label (`*`); environments are a
    # list (a workflow declares where it may run), `*` for ~15%.
    if rng.random() < 0.15:
        environment = ["*"]
    else:
        environment = sorted(
            rng.sample(ENVIRONMENTS, rng.choice((1, 1, 2, 2, 3))), key=ENVIRONMENTS.index
        )
    return {
        "signal_type": profile.signal_type,
        "severity": "*" if rng.random() < 0.25 else rng.choice(SEVERITIES),
        "component": "*" if rng.random() < 0.2 else rng.choice(profile.components),
        "environment": environment,
        "priority": "*" if rng.random() < 0.25 else rng.choice(PRIORITIES),
    }


def _detected(rng: random.Random) -> dict[str, Any]:
    """What the workflow was written for; absent labels say nothing (about 1 in 5 has none)."""
    if rng.random() < 0.2:
        return {}
    found: dict[str, Any] = {}
    if rng.random() < 0.6:
        found["gitOpsManaged"] = rng.random() < 0.75
        if found["gitOpsManaged"]:
            found["gitOpsTool"] = rng.choice(("argocd", "argocd", "flux", "*"))
    for flag, share in (
        ("pdbProtected", 0.35),
        ("hpaEnabled", 0.25),
        ("stateful", 0.2),
        ("helmManaged", 0.3),
        ("networkIsolated", 0.15),
    ):
        if rng.random() < share:
            found[flag] = rng.random() < 0.8
    if rng.random() < 0.3:
        found["serviceMesh"] = rng.choice(("istio", "istio", "linkerd", "*"))
    return found


def _custom(rng: random.Random) -> dict[str, list[str]]:
    """0-3 keys, 1-2 values each, `*` now and then (about 1 in 3 workflows has none)."""
    if rng.random() < 0.35:
        return {}
    keys = rng.sample(sorted(CUSTOM_VOCABULARY), rng.choice((1, 1, 2, 2, 3)))
    found: dict[str, list[str]] = {}
    for key in sorted(keys):
        if rng.random() < 0.12:
            found[key] = ["*"]
        else:
            found[key] = sorted(rng.sample(CUSTOM_VOCABULARY[key], rng.choice((1, 1, 2))))
    return found


def _content(rng: random.Random, name: str, action: str, engine: str) -> str:
    steps = "\n".join(
        f"    - name: step-{step}\n      image: registry.example.com/remediation/{action}:1.{step}\n"
        f'      script: |\n        kubectl --namespace "$(params.TARGET_NAMESPACE)" {action} '
        f'"$(params.TARGET_NAME)" --timeout={rng.randrange(30, 600)}s'
        for step in range(rng.randrange(2, 5))
    )
    kind = "Pipeline" if engine == "tekton" else "Job"
    return (
        f"apiVersion: tekton.dev/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n"
        f"  params:\n    - name: TARGET_NAMESPACE\n    - name: TARGET_NAME\n  steps:\n{steps}\n"
    )


def _parameters(rng: random.Random) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "TARGET_NAMESPACE": {"type": "string", "required": True},
        "TARGET_NAME": {"type": "string", "required": True},
    }
    if rng.random() < 0.5:
        parameters["TIMEOUT_SECONDS"] = {"type": "integer", "default": rng.randrange(60, 900)}
    if rng.random() < 0.3:
        parameters["DRY_RUN"] = {"type": "boolean", "default": False}
    return parameters


def _body(
    rng: random.Random, profile: SignalProfile, serial: int, now: dt.datetime
) -> tuple[dict[str, Any], dt.datetime]:
    action = rng.choice(ACTIONS)
    labels = _labels(rng, profile)
    slug = profile.signal_type.lower()
    name = f"{slug}-{action}-{serial:05d}"
    engine = rng.choice(ENGINES)
    version = f"{rng.randrange(1, 4)}.{rng.randrange(0, 12)}.{rng.randrange(0, 20)}"
    team = rng.choice(CUSTOM_VOCABULARY["team"])
    status = _pick_weighted(rng, STATUS_MIX, "active")
    created_at = now - dt.timedelta(seconds=rng.uniform(3_600, 365 * 86_400))
    body: dict[str, Any] = {
        "workflow_name": name,
        "version": version,
        "name": f"{action.replace('-', ' ').capitalize()} for {profile.signal_type}",
        "description": (
            f"Remediates {profile.signal_type} on a {labels['component']} by running "
            f"{action.replace('-', ' ')}; checks the target's health before and after, and "
            f"stops when the signal has cleared. Owned by team {team}."
        ),
        "owner": f"team-{team}",
        "maintainer": f"{team}-oncall@example.com",
        "content": _content(rng, name, action, engine),
        "parameters": _parameters(rng),
        "execution_engine": engine,
        "container_image": f"registry.example.com/workflows/{name}:v{version}",
        "container_digest": f"sha256:{rng.getrandbits(256):064x}",
        "labels": labels,
        "custom_labels": _custom(rng),
        "detected_labels": _detected(rng),
        "approved_by": f"{team}-lead@example.com",
        "approved_at": (created_at + dt.timedelta(minutes=30)).isoformat(),
        "expected_success_rate": round(rng.uniform(0.7, 0.99), 2),
        "expected_duration_seconds": rng.randrange(30, 1_800),
        "created_by": "bench-catalog",
    }
    if status != "active":
        body["status"] = status
    if status == "disabled":
        body["disabled_by"] = f"{team}-lead@example.com"
        body["disabled_reason"] = "superseded by a safer variant"
    return body, created_at


def build_catalog(*, seed: int, now: dt.datetime | None = None) -> Catalog:
    """10,000 latest workflows: NORMAL_BUCKETS ordinary signal types and the large bucket."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    profiles = {
        name: SignalProfile(name, tuple(rng.sample(COMPONENTS, rng.choice((2, 3, 3, 4)))))
        for name in signal_types()
    }
    profiles[LARGE_SIGNAL] = SignalProfile(LARGE_SIGNAL, tuple(rng.sample(COMPONENTS, 6)))
    plan = [*zip(signal_types(), bucket_sizes(), strict=True), (LARGE_SIGNAL, LARGE_BUCKET)]
    bodies: list[dict[str, Any]] = []
    created: list[dt.datetime] = []
    for signal_type, size in plan:
        for _ in range(size):
            body, created_at = _body(rng, profiles[signal_type], len(bodies), now)
            bodies.append(body)
            created.append(created_at)
    return Catalog(bodies, created, profiles)


def copy_rows(catalog: Catalog, *, seed: int) -> list[tuple[Any, ...]]:
    """The catalog as rows of CATALOG_COLUMNS: every workflow the latest (and only) version."""
    rng = random.Random(seed + 1)
    rows = []
    for body, created_at in zip(catalog.bodies, catalog.created_at, strict=True):
        status = body.get("status", "active")
        rows.append(
            (
                uuid.UUID(int=rng.getrandbits(128), version=4),
                body["workflow_name"],
                body["version"],
                body["name"],
                body["description"],
                body["owner"],
                body["maintainer"],
                body["content"],
                hashlib.sha256(body["content"].encode()).hexdigest(),
                orjson.dumps(body["parameters"]).decode(),
                body["execution_engine"],
                body["container_image"],
                body["container_digest"],
                orjson.dumps(body["labels"]).decode(),
                orjson.dumps(body["custom_labels"]).decode(),
                orjson.dumps(body["detected_labels"]).decode(),
                status,
                created_at + dt.timedelta(days=1) if status == "disabled" else None,
                body.get("disabled_by"),
                body.get("disabled_reason"),
                True,
                body["approved_by"],
                dt.datetime.fromisoformat(body["approved_at"]),
                body["expected_success_rate"],
                body["expected_duration_seconds"],
                created_at,
                body["created_by"],
                created_at,
                body["created_by"],
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Searches


@dataclass(frozen=True, slots=True)
class Search:
    """One label search, in the REST body's terms."""

    filters: dict[str, Any]
    top_k: int
    remediation_id: str

    def rest_body(self) -> dict[str, Any]:
        return {
            "remediation_id": self.remediation_id,
            "filters": self.filters,
            "top_k": self.top_k,
        }

    def graphql_variables(self) -> dict[str, Any]:
        filters = self.filters
        graphql_filters: dict[str, Any] = {
            "signalType": filters["signal_type"],
            "severity": filters["severity"].upper(),
            "component": filters["component"],
            "environment": filters["environment"],
            "priority": filters["priority"],
        }
        if "detected_labels" in filters:
            detected = dict(filters["detected_labels"])
            if "failed_detections" in detected:
                detected["failedDetections"] = detected.pop("failed_detections")
            graphql_filters["detectedLabels"] = detected
        if "custom_labels" in filters:
            graphql_filters["customLabels"] = filters["custom_labels"]
        return {
            "input": {
                "filters": graphql_filters,
                "topK": self.top_k,
                "remediationId": self.remediation_id,
            }
        }


def _concrete(value: str, choices: Sequence[str], rng: random.Random) -> str:
    return rng.choice(choices) if value == "*" else value


def _search_detected(rng: random.Random) -> dict[str, Any]:
    """The cluster's detected labels for the signal's workload (boolean flags only when true,
    as the legacy callers send them); about 1 in 5 searches sends none."""
    if rng.random() < 0.2:
        return {}
    found: dict[str, Any] = {}
    if rng.random() < 0.6:
        found["gitOpsManaged"] = True
        found["gitOpsTool"] = rng.choice(("argocd", "argocd", "flux", "*"))
    for flag, share in (
        ("pdbProtected", 0.4),
        ("hpaEnabled", 0.3),
        ("stateful", 0.25),
        ("helmManaged", 0.35),
        ("networkIsolated", 0.2),
    ):
        if rng.random() < share:
            found[flag] = True
    if rng.random() < 0.35:
        found["serviceMesh"] = rng.choice(("istio", "istio", "linkerd", "*"))
    if found and rng.random() < 0.1:
        found["failed_detections"] = [rng.choice(("pdbProtected", "serviceMesh", "hpaEnabled"))]
    return found


def build_searches(
    catalog: Catalog, count: int, *, seed: int, signal_types: Sequence[str] | None = None
) -> list[Search]:
    """`count` searches, each anchored on a random active workflow of one of `signal_types`
    (default: the ordinary ones), so most find something; labels the anchor leaves open (`*`)
    are filled with a concrete value, as a real signal has."""
    rng = random.Random(seed)
    buckets = catalog.buckets()
    names = (
        list(signal_types)
        if signal_types is not None
        else [name for name in catalog.profiles if name != LARGE_SIGNAL]
    )
    searches = []
    for index in range(count):
        signal_type = names[index % len(names)] if index < len(names) else rng.choice(names)
        active = [i for i in buckets[signal_type] if "status" not in catalog.bodies[i]]
        labels = catalog.bodies[rng.choice(active)]["labels"]
        profile = catalog.profiles[signal_type]
        environments = labels["environment"]
        filters: dict[str, Any] = {
            "signal_type": signal_type,
            "severity": _concrete(labels["severity"], SEVERITIES, rng),
            "component": _concrete(labels["component"], profile.components, rng),
            "environment": rng.choice(ENVIRONMENTS if environments == ["*"] else environments),
            "priority": _concrete(labels["priority"], PRIORITIES, rng),
        }
        detected = _search_detected(rng)
        if detected:
            filters["detected_labels"] = detected
        if rng.random() < 0.5:
            keys = rng.sample(sorted(CUSTOM_VOCABULARY), rng.choice((1, 1, 2)))
            filters["custom_labels"] = {
                key: [rng.choice(CUSTOM_VOCABULARY[key])] for key in sorted(keys)
            }
        top_k = rng.choice((10, 10, 10, 10, 10, 10, 10, 5, 5, 20))
        searches.append(Search(filters, top_k, f"bench-rr-{seed % 1000:03d}-{index:05d}"))
    return searches
