"""deploy/: Kubernetes manifests against Kubernetes' schemas (offline), and the compose file,
Prometheus rules, Grafana dashboard, Dockerfile and runbooks against what the service really
exports and the settings it really reads."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from datastorage.observability.metrics import Metrics
from datastorage.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
RUNBOOKS = ROOT / "docs" / "runbooks"
# An older version the manifests support and a recent one.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# Shutdown steps without a budget setting of their own: stopping DLQ replay and the DLQ monitor
# (each waits at most 5 s), closing the writer and the pools.
SHUTDOWN_SLACK_S = 10
POD_LABELS = {"app.kubernetes.io/name": "datastorage", "app.kubernetes.io/component": "api"}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def _resources() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes by kind (one object of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in _manifests():
        for doc in _load_all(path):
            assert doc["kind"] not in found, f"{path.name}: a second {doc['kind']}"
            found[doc["kind"]] = doc
    return found


# --- what the service exports ----------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def _exported() -> dict[str, set[str]]:
    """Series name → label names, for every series a fresh `Metrics()` registry can export."""
    metrics = Metrics()
    exported: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in _SUFFIXES[str(metric._type)]:
                labels = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
                exported[metric._name + suffix] = labels
    # The registry is the authority: nothing above may be missing from it, and vice versa.
    families = {family.name: family for family in metrics.registry.collect()}
    from_registry = {
        family.name + suffix for family in families.values() for suffix in _SUFFIXES[family.type]
    }
    assert set(exported) == from_registry
    return exported


EXPORTED = _exported()

# --- PromQL: the series names and label names an expression uses -----------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_OFFSET = re.compile(r"\boffset\s+-?[\w$]+")
_IDENTIFIER = re.compile(r"(?<![\w$.:])([a-zA-Z_:][\w:]*)\s*(\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan", "group_left", "group_right"}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(series names, label names) used by a PromQL expression (Grafana variables allowed)."""
    expr = _STRING.sub('""', expr)
    labels: set[str] = set()
    for match in _MATCHERS.finditer(expr):
        labels |= {m.group(1) for m in re.finditer(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", match[2])}
    expr = _MATCHERS.sub(lambda m: m[1] or "", expr)
    for match in _GROUPING.finditer(expr):
        labels |= {name.strip() for name in match[1].split(",") if name.strip()}
    expr = _OFFSET.sub("", _RANGE.sub("", _GROUPING.sub("", expr)))
    names = {m[1] for m in _IDENTIFIER.finditer(expr) if not m[2] and m[1].lower() not in _KEYWORDS}
    return names, labels


def assert_uses_exported_metrics(expr: str, where: str) -> None:
    names, labels = promql_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - set(EXPORTED)
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by Metrics() ({expr!r})"
    known_labels = set().union(TARGET_LABELS, *(EXPORTED[name] for name in names))
    assert labels <= known_labels, f"{where}: unknown labels {sorted(labels - known_labels)}"


def test_promql_names_finds_metrics_not_functions_labels_or_variables() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(x_bucket{route!~"/h.*|{a}", i=~"$i"}'
        "[$__rate_interval]))) / on (job) group_left y_total offset 5m > bool 1e3 and absent(z)"
    )
    assert promql_names(expr) == ({"x_bucket", "y_total", "z"}, {"route", "le", "i", "job"})


# --- Kubernetes ------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [path.name for path in _manifests()]
    assert {image["name"] for image in kustomization["images"]} == {"datastorage"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", _manifests(), ids=lambda path: path.name)
def test_manifest_matches_kubernetes_schema(path: Path, version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in _load_all(path):
        try:
            # strict: unknown fields (typos) are errors too. Schemas ship in the package.
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(
                f"{path.name} ({doc['kind']}) on {version}: {where}: {exc.message}", pytrace=False
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(exc.message, pytrace=False)


def test_manifests_cover_the_deployment_kinds() -> None:
    expected = {
        "ConfigMap": "v1",
        "Secret": "v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
        "Job": "batch/v1",
    }
    assert {kind: doc["apiVersion"] for kind, doc in _resources().items()} == expected


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["containers"]
    assert isinstance(container, dict)
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def _assert_hardened(pod_spec: dict[str, Any]) -> None:
    pod = pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod_spec["automountServiceAccountToken"] is False
    container = _container(pod_spec)["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]


def _assert_secret_files(pod_spec: dict[str, Any], secret: dict[str, Any]) -> None:
    """Every *_FILE variable names a key of the Secret, mounted read-only."""
    container = _container(pod_spec)
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {
        m["mountPath"]: volumes[m["name"]]
        for m in container["volumeMounts"]
        if "secret" in volumes[m["name"]]
    }
    files = {name: path for name, path in _env(container).items() if name.endswith("_FILE")}
    assert "DATASTORAGE_DATABASE_URL_FILE" in files
    for name, path in files.items():
        folder, key = path.rsplit("/", 1)
        assert folder in mounts, f"{name}: {folder} is not a secret mount"
        assert mounts[folder]["secret"]["secretName"] == secret["metadata"]["name"]
        assert key in secret["stringData"], f"{name}: the Secret has no key {key}"
    assert "DATASTORAGE_DATABASE_URL" not in _env(container)


def test_deployment_probes_and_hardening() -> None:
    resources = _resources()
    pod_spec = resources["Deployment"]["spec"]["template"]["spec"]
    container = _container(pod_spec)
    port = container["ports"][0]
    assert (port["name"], port["containerPort"]) == ("http", 8080)

    # Traffic only once PostgreSQL answers and migrations are applied; after that, an outage of
    # PostgreSQL must not empty the Service: the pods answer 202 from the DLQ.
    assert container["startupProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"

    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    _assert_hardened(pod_spec)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable path with a read-only root filesystem

    env = _env(container)
    assert env["DATASTORAGE_DATABASE_AUTO_MIGRATE"] == "false"
    assert container["envFrom"] == [
        {"configMapRef": {"name": resources["ConfigMap"]["metadata"]["name"]}}
    ]
    _assert_secret_files(pod_spec, resources["Secret"])


def test_migration_job_runs_migrate_with_the_same_image_and_secret() -> None:
    resources = _resources()
    job_pod = resources["Job"]["spec"]["template"]["spec"]
    container = _container(job_pod)
    app = _container(resources["Deployment"]["spec"]["template"]["spec"])
    assert container["args"] == ["migrate"]
    assert container["image"] == app["image"]
    assert job_pod["restartPolicy"] in ("Never", "OnFailure")
    _assert_hardened(job_pod)
    _assert_secret_files(job_pod, resources["Secret"])
    job_labels = resources["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not POD_LABELS.items() <= job_labels.items(), "the Service would route to the Job"


def test_service_hpa_and_pdb_select_the_deployment() -> None:
    resources = _resources()
    deployment = resources["Deployment"]
    assert deployment["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert POD_LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert resources["Service"]["spec"]["selector"] == POD_LABELS
    assert resources["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == POD_LABELS
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2, "one replica cannot honour the PodDisruptionBudget"


def test_secret_holds_only_marked_placeholders() -> None:
    secret = _resources()["Secret"]
    assert "placeholder" in json.dumps(secret["metadata"]["annotations"])
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} is not a marked placeholder"


def _setting_names() -> set[str]:
    names = set()
    for section in Settings.SECTIONS.values():
        prefix = str(section.model_config.get("env_prefix", ""))
        for field in section.model_fields:
            names |= {f"{prefix}{field}".upper(), f"{prefix}{field}_FILE".upper()}
    return names


def _assert_valid_settings(
    env: dict[str, str], where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every DATASTORAGE_* name is a setting, and the values load."""
    unknown = {name for name in env if name.startswith("DATASTORAGE_")} - _setting_names()
    assert not unknown, f"{where}: not settings: {sorted(unknown)}"
    with monkeypatch.context() as patch:
        for name, value in env.items():
            if not name.endswith("_FILE"):
                patch.setenv(name, str(value))
        load_settings()


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("DATASTORAGE_"):
                patch.delenv(name)
        for name, value in env.items():
            if not name.endswith("_FILE"):
                patch.setenv(name, str(value))
        return load_settings()


def _shutdown_s(settings: Settings) -> float:
    budgets = settings.shutdown
    return budgets.delay_s + budgets.timeout_s + budgets.dlq_budget_s


def test_grace_period_covers_the_shutdown_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    resources = _resources()
    config = resources["ConfigMap"]["data"]
    for name in (
        "DATASTORAGE_SHUTDOWN_DELAY_S",
        "DATASTORAGE_SHUTDOWN_TIMEOUT_S",
        "DATASTORAGE_SHUTDOWN_DLQ_BUDGET_S",
    ):
        assert name in config, f"the ConfigMap should state {name}"
    pod_spec = resources["Deployment"]["spec"]["template"]["spec"]
    container = _container(pod_spec)
    settings = _settings_from({**config, **_env(container)}, monkeypatch)
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    pre_stop_sleep = pre_stop.get("sleep", {}).get("seconds", 0)
    assert "exec" not in pre_stop, "a preStop command: count its time in the check below"
    # One propagation delay: the service's own (readiness 503 first), or a preStop sleep.
    assert not (pre_stop_sleep and settings.shutdown.delay_s), "two propagation delays"
    grace = pod_spec["terminationGracePeriodSeconds"]
    assert grace >= pre_stop_sleep + _shutdown_s(settings) + SHUTDOWN_SLACK_S


def test_configmap_and_env_are_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    resources = _resources()
    config = resources["ConfigMap"]["data"]
    assert config["DATASTORAGE_HOST"] == "0.0.0.0"
    assert config["DATASTORAGE_MODE"] == "production"
    for kind in ("Deployment", "Job"):
        container = _container(resources[kind]["spec"]["template"]["spec"])
        _assert_valid_settings({**config, **_env(container)}, kind, monkeypatch)


# --- compose ---------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def test_compose_services_and_healthchecks(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _compose()["services"]
    assert set(services) == {"app", "migrate", "postgres", "redis", "prometheus", "grafana"}
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("app", "postgres", "redis", "prometheus", "grafana"):
        healthcheck = services[name]["healthcheck"]
        assert not healthcheck.get("disable"), name
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name

    redis = services["redis"]
    redis_flags = set(itertools.pairwise(redis["command"]))
    assert {
        ("--appendonly", "yes"),
        ("--appendfsync", "everysec"),
        ("--maxmemory-policy", "noeviction"),
    } <= redis_flags
    # The AOF lives on a named volume, not in the container's writable layer.
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in _compose()["volumes"]

    app, migrate = services["app"], services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert app["command"] == ["serve"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/health/" in " ".join(app["healthcheck"]["test"])
    for service in (app, migrate):
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    env = {name: str(value) for name, value in app["environment"].items()}
    assert env["DATASTORAGE_HOST"] == "0.0.0.0"
    assert env["DATASTORAGE_DATABASE_AUTO_MIGRATE"] == "false"
    env = {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value) for name, value in env.items()}
    _assert_valid_settings(env, "compose app", monkeypatch)
    grace = _duration_s(app["stop_grace_period"])
    assert grace >= _shutdown_s(_settings_from(env, monkeypatch)) + SHUTDOWN_SLACK_S


def _duration_s(text: str) -> float:
    """A compose duration ("1m30s", "45s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_mounts_exist_and_prometheus_loads_the_rules() -> None:
    services = _compose()["services"]
    mounted: dict[str, Path] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
                mounted[target] = (DEPLOY / source).resolve()
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        assert mounted[rule_file] == (DEPLOY / "prometheus" / "alerts.yaml").resolve()
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "datastorage"]
    assert job["static_configs"][0]["targets"] == ["app:8080"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/datastorage.yaml").read_text()
    )["providers"][0]
    assert mounted[provider["options"]["path"]] == (DEPLOY / "grafana" / "dashboards").resolve()
    assert mounted["/etc/grafana/provisioning"] == (DEPLOY / "grafana/provisioning").resolve()


# --- Prometheus rules and the Grafana dashboard ------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_exported_metrics() -> None:
    rules = _rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert_uses_exported_metrics(rule["expr"], rule["alert"])


def test_alert_rules_cover_the_operational_signals() -> None:
    used = set().union(*(promql_names(rule["expr"])[0] for rule in _rules()))
    assert {
        "datastorage_audit_events_dropped_total",
        "datastorage_writer_queue_depth",
        "datastorage_http_requests_total",
        "datastorage_http_request_duration_seconds_bucket",
        "datastorage_db_pool_in_use",
        "datastorage_db_pool_size",
        "datastorage_partitions_ahead",
        "datastorage_audit_flush_failures_total",
        "datastorage_dlq_capacity_ratio",
        "datastorage_dlq_refused_total",
        "datastorage_dlq_dead_letters",
        "datastorage_dlq_oldest_age_seconds",
        "datastorage_circuit_breaker_state",
    } <= used


def test_dlq_capacity_alerts_match_the_service_warning_levels() -> None:
    """The two DLQ capacity alerts fire at levels the service itself warns at (dlq_monitor)."""
    from datastorage.persistence.dlq_monitor import THRESHOLDS

    levels = {ratio for ratio, _, _ in THRESHOLDS}
    rules = {rule["alert"]: rule for rule in _rules()}
    for name, severity in (
        ("DataStorageDlqFilling", "warning"),
        ("DataStorageDlqNearlyFull", "critical"),
    ):
        match = re.fullmatch(
            r"max by \(stream\) \(datastorage_dlq_capacity_ratio\) >= ([\d.]+)", rules[name]["expr"]
        )
        assert match, rules[name]["expr"]
        assert float(match[1]) in levels
        assert rules[name]["labels"]["severity"] == severity


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", path.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_alert_runbook_links_resolve() -> None:
    linked = 0
    for rule in _rules():
        runbook = rule["annotations"].get("runbook")
        if runbook is None:
            continue
        linked += 1
        page, _, anchor = runbook.partition("#")
        assert (ROOT / page).is_file(), f"{rule['alert']}: no {page}"
        assert not anchor or anchor in _anchors(ROOT / page), f"{rule['alert']}: no #{anchor}"
    assert linked >= 6


# --- runbooks ----------------------------------------------------------------------------------


def _runbooks() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


def test_runbooks_exist() -> None:
    assert {path.name for path in _runbooks()} >= {"dlq.md", "postgresql-outage.md"}


@pytest.mark.parametrize("path", _runbooks(), ids=lambda path: path.name)
def test_runbooks_name_real_metrics_settings_and_alerts(path: Path) -> None:
    """What an on-call engineer pastes from a runbook must exist: metrics, settings, alerts."""
    text = path.read_text()
    metrics = set(re.findall(r"\bdatastorage_[a-z_]*[a-z]\b", text))
    histograms = {name.removesuffix("_bucket") for name in EXPORTED if name.endswith("_bucket")}
    unknown = metrics - set(EXPORTED) - histograms
    assert not unknown, f"not exported: {sorted(unknown)}"
    settings = set(re.findall(r"\bDATASTORAGE_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert not settings - _setting_names(), f"not settings: {sorted(settings - _setting_names())}"
    alerts = set(re.findall(r"\bDataStorage[A-Z]\w+", text))
    known = {rule["alert"] for rule in _rules()}
    assert not alerts - known, f"not alerts: {sorted(alerts - known)}"
    for page, anchor in re.findall(r"\]\(([\w.-]+\.md)?#([\w-]+)\)", text):
        target = RUNBOOKS / page if page else path
        assert anchor in _anchors(target), f"broken link {page}#{anchor}"


def _runbook_queries() -> list[tuple[str, str]]:
    """(runbook, expression) of every line of every ```promql block (comments dropped)."""
    queries = []
    for path in _runbooks():
        for block in re.findall(r"```promql\n(.*?)```", path.read_text(), re.DOTALL):
            for line in block.splitlines():
                expr = re.sub(r"\s+#.*$", "", line).strip()
                if expr and not expr.startswith("#"):
                    queries.append((path.name, expr))
    return queries


def test_runbook_queries_use_only_exported_metrics() -> None:
    queries = _runbook_queries()
    assert len(queries) >= 5
    for page, expr in queries:
        assert_uses_exported_metrics(expr, page)


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "datastorage.json").read_text()
    )
    return dashboard


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_uses_only_exported_metrics() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    queries = _dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        assert_uses_exported_metrics(expr, title)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert match, variable["definition"]
            assert match[1] in EXPORTED and match[2] in TARGET_LABELS | EXPORTED[match[1]]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


_PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(_PROMTOOL is None, reason="promtool not installed")


@needs_promtool
def test_promtool_checks_config_and_unit_tests_the_alerts() -> None:
    folder = DEPLOY / "prometheus"
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"]):
        result = subprocess.run(
            [str(_PROMTOOL), *args], cwd=folder, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    variables = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*"}
    rules = []
    for index, (_, expr) in enumerate(_dashboard_queries()):
        for variable, value in variables.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [str(_PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_parses_the_runbook_queries(tmp_path: Path) -> None:
    rules = [
        {"record": f"runbook:query_{index}", "expr": expr}
        for index, (_, expr) in enumerate(_runbook_queries())
    ]
    path = tmp_path / "runbook.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    result = subprocess.run(
        [str(_PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the image ---------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    instructions = _instructions()
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert len(stages) >= 2
    for stage in stages:
        image = stage.split()[0]
        assert args.get(image.strip("${}"), image) == "python:3.11-slim"
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    users = [arg for op, arg in final if op == "USER"]
    assert users, "the final stage runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    (healthcheck,) = [arg for op, arg in final if op == "HEALTHCHECK"]
    assert "/health/live" in healthcheck and "python" in healthcheck
    assert ("ENTRYPOINT", '["datastorage"]') in final
    assert ("CMD", '["serve"]') in final
    assert any(op == "ENV" and "DATASTORAGE_HOST=0.0.0.0" in arg for op, arg in final)
    installs = [arg for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert any(re.search(r"pip install \.(\s|$)", arg) for arg in installs)
    assert not any("embedded" in arg for arg in installs), "the image must not embed servers"
