"""`datastorage workflows import | export` as real subprocesses against real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import yaml

from tests.conftest import PG_ADMIN_URL
from tests.integration.test_workflows import workflow_body

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


async def cli(database_url: str, *args: str | Path, cwd: Path | None = None) -> Run:
    """`datastorage ARGS…` in a subprocess; its stdout and stderr are pipes, not a terminal."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATASTORAGE_DATABASE_URL": database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datastorage.cli", *map(str, args),
        env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def catalog_body(prefix: str, number: int, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    """A valid create body named `prefix-NNN`; `extra` replaces fields."""
    fields: dict[str, Any] = {
        "workflow_name": f"{prefix}-{number:03d}",
        "version": version,
        "name": f"Workflow {number} {version}",
        "content": f"kind: Pipeline\nmetadata:\n  name: wf-{number}\nspec: {version}\n",
    }
    return workflow_body(**{**fields, **extra})


async def stored(db: asyncpg.Connection, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of the workflows named `prefix-…`, by (workflow_name, version)."""
    rows = await db.fetch(
        "SELECT workflow_name, version, is_latest_version, content_hash, status, approved_at,"
        " custom_labels::text, detected_labels::text, parameters::text"
        " FROM remediation_workflows WHERE workflow_name LIKE $1",
        prefix + "-%",
    )
    return {(row["workflow_name"], row["version"]): dict(row) for row in rows}


def write_catalog_files(directory: Path, prefix: str) -> tuple[Path, Path, int]:
    """A YAML file of three documents (one workflow, a list, a `workflows` mapping) and a JSON
    file: 200 workflows in all, of 190 names (10 names get a second version)."""
    first = catalog_body(prefix, 0)
    listed = [catalog_body(prefix, n) for n in range(1, 60)]
    wrapped = [
        catalog_body(
            prefix, n,
            custom_labels={"team": ["payments", "*"]},
            detected_labels={"gitOpsManaged": True, "gitOpsTool": "argocd"},
            parameters={"limits": {"memory": "8Gi"}, "steps": [1, 2]},
        )
        for n in range(60, 120)
    ]  # fmt: skip
    second_versions = [catalog_body(prefix, n, version="2.0.0") for n in range(10)]
    yaml_file = directory / "catalog.yaml"
    text = yaml.safe_dump_all([first, listed, {"workflows": wrapped}], sort_keys=False)
    # A hand-written document: an unquoted YAML timestamp is still an RFC 3339 approved_at.
    text += (
        f"---\nworkflow_name: {prefix}-120\nversion: '1.0.0'\nname: Hand written\n"
        "description: d\ncontent: |\n  kind: Pipeline\nexecution_engine: tekton\n"
        "approved_at: 2026-01-05T10:00:00Z\nlabels:\n  signal_type: OOMKilled\n"
        "  severity: high\n  component: pod\n  environment: [production]\n  priority: P1\n"
    )
    yaml_file.write_text(text)
    json_file = directory / "more.json"
    more = [catalog_body(prefix, n) for n in range(121, 190)] + second_versions
    json_file.write_bytes(orjson.dumps({"workflows": more}))
    return yaml_file, json_file, 1 + len(listed) + len(wrapped) + 1 + len(more)


@pytest.fixture
async def fresh_database_url() -> AsyncIterator[str]:
    """A second, empty database (no schema yet), dropped at the end."""
    name = f"ds_test_{os.getpid()}_import_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def test_import_creates_every_workflow_then_reimport_changes_nothing(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    yaml_file, json_file, count = write_catalog_files(tmp_path, prefix)
    assert count == 200

    started = time.perf_counter()
    first = await cli(database_url, "workflows", "import", yaml_file, json_file)
    elapsed = time.perf_counter() - started
    print(
        f"\nworkflows import of {count} workflows (2 files, subprocess wall time): {elapsed:.2f} s"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "created 200, unchanged 0, failed 0"
    rows = await stored(db, prefix)
    assert len(rows) == 200
    # The second version of a name is its latest, the first is not any more.
    assert rows[(f"{prefix}-003", "2.0.0")]["is_latest_version"] is True
    assert rows[(f"{prefix}-003", "1.0.0")]["is_latest_version"] is False
    assert sum(row["is_latest_version"] for row in rows.values()) == 190
    wrapped = rows[(f"{prefix}-070", "1.0.0")]
    assert orjson.loads(wrapped["custom_labels"]) == {"team": ["payments", "*"]}
    assert orjson.loads(wrapped["detected_labels"]) == {
        "gitOpsManaged": True,
        "gitOpsTool": "argocd",
    }
    assert orjson.loads(wrapped["parameters"]) == {"limits": {"memory": "8Gi"}, "steps": [1, 2]}
    hand_written = rows[(f"{prefix}-120", "1.0.0")]
    assert hand_written["approved_at"].isoformat() == "2026-01-05T10:00:00+00:00"
    # Each creation is audited like one through the API (the writer commits before exit).
    events = await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE event_type = 'datastorage.workflow.created'"
        " AND correlation_id LIKE $1",
        f"workflow:{prefix}-%",
    )
    assert events == 200

    started = time.perf_counter()
    again = await cli(database_url, "workflows", "import", yaml_file, json_file)
    print(f"re-import of the same {count} (all unchanged): {time.perf_counter() - started:.2f} s")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "created 0, unchanged 200, failed 0"
    assert again.stderr == ""
    assert await stored(db, prefix) == rows


async def test_output_off_a_terminal_is_plain_lines(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump([catalog_body(prefix, 1), catalog_body(prefix, 2)]))
    run = await cli(database_url, "workflows", "import", path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stdout and "\x1b" not in run.stdout
    assert run.stdout.splitlines() == [
        f"{path} #1 {prefix}-001 1.0.0: created",
        f"{path} #2 {prefix}-002 1.0.0: created",
        "created 2, unchanged 0, failed 0",
    ]


async def test_a_bad_workflow_is_named_with_its_field_errors_and_the_others_import(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    bad = catalog_body(
        prefix, 2, labels={**catalog_body(prefix, 2)["labels"], "severity": "urgent"}
    )
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump([catalog_body(prefix, 1), bad, catalog_body(prefix, 3)]))
    run = await cli(database_url, "workflows", "import", path)
    assert run.returncode == 1
    assert (
        f"{path} #2 {prefix}-002 1.0.0: error: labels.severity: must be one of critical, high, "
        "medium, low, *, got 'urgent'"
    ) in run.stderr.splitlines()
    assert run.stdout.splitlines()[-1] == "created 2, unchanged 0, failed 1"
    assert set(await stored(db, prefix)) == {(f"{prefix}-001", "1.0.0"), (f"{prefix}-003", "1.0.0")}


async def test_same_version_with_different_content_is_an_error(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    original = tmp_path / "original.json"
    original.write_bytes(orjson.dumps(catalog_body(prefix, 1)))
    assert (await cli(database_url, "workflows", "import", original)).returncode == 0
    changed = tmp_path / "changed.json"
    changed.write_bytes(orjson.dumps(catalog_body(prefix, 1, content="kind: Task\n")))
    run = await cli(database_url, "workflows", "import", changed)
    assert run.returncode == 1
    assert f"{changed} #1 {prefix}-001 1.0.0: error: " in run.stderr
    assert "already exists with different content" in run.stderr
    assert run.stdout.splitlines()[-1] == "created 0, unchanged 0, failed 1"


async def test_a_broken_file_is_named_and_the_other_files_import(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    broken = tmp_path / "broken.yaml"
    broken.write_text("workflows:\n  - workflow_name: [unclosed\n    version: 1\n")
    not_json = tmp_path / "truncated.json"
    not_json.write_text('{"workflows": [')
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(catalog_body(prefix, 1)))
    run = await cli(database_url, "workflows", "import", broken, not_json, good)
    assert run.returncode == 1
    errors = run.stderr.splitlines()
    assert any(line.startswith(f"{broken}: error: is not valid YAML: line ") for line in errors)
    assert any(line.startswith(f"{not_json}: error: is not valid JSON: ") for line in errors)
    assert run.stdout.splitlines()[-1] == "created 1, unchanged 0, failed 0; 2 file(s) not read"
    assert set(await stored(db, prefix)) == {(f"{prefix}-001", "1.0.0")}


async def test_usage_and_settings_errors_exit_2(database_url: str, tmp_path: Path) -> None:
    wrong = tmp_path / "catalog.txt"
    wrong.write_text("{}")
    run = await cli(database_url, "workflows", "import", wrong)
    assert run.returncode == 2
    assert f"{wrong}: expected a .yaml, .yml or .json file" in run.stderr
    assert (
        await cli(database_url, "workflows", "export", "-o", tmp_path / "x.csv")
    ).returncode == 2
    assert (await cli(database_url, "workflows", "frobnicate")).returncode == 2
    no_database = await cli("", "workflows", "export")
    assert no_database.returncode == 2
    assert "DATASTORAGE_DATABASE_URL" in no_database.stderr


async def test_export_imports_into_an_empty_database_as_the_same_catalog(
    database_url: str, db: asyncpg.Connection, fresh_database_url: str, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    yaml_file, json_file, _ = write_catalog_files(tmp_path, prefix)
    assert (await cli(database_url, "workflows", "import", yaml_file, json_file)).returncode == 0
    disabled = catalog_body(prefix, 500, status="disabled", disabled_reason="flaky")
    extra = tmp_path / "disabled.json"
    extra.write_bytes(orjson.dumps(disabled))
    assert (await cli(database_url, "workflows", "import", extra)).returncode == 0
    total = await db.fetchval("SELECT count(*) FROM remediation_workflows")

    exported = tmp_path / "all.json"
    run = await cli(database_url, "workflows", "export", "--all-versions", "--output", exported)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == (
        f"exported {total} workflow(s) (all versions) to {exported}"
    )
    document = orjson.loads(exported.read_bytes())
    mine = [w for w in document["workflows"] if w["workflow_name"].startswith(prefix + "-")]
    assert len(mine) == 201
    for server_field in ("workflow_id", "created_at", "is_latest_version", "previous_version",
                         "total_executions", "disabled_at", "updated_at"):  # fmt: skip
        assert all(server_field not in w for w in document["workflows"])
    assert next(w for w in mine if w["workflow_name"] == f"{prefix}-500")["status"] == "disabled"

    started = time.perf_counter()
    into_fresh = await cli(fresh_database_url, "workflows", "import", exported)
    print(f"\nimport of {total} exported workflows into an empty database: "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    assert into_fresh.returncode == 0, into_fresh.stderr
    assert into_fresh.stdout.splitlines()[-1] == f"created {total}, unchanged 0, failed 0"
    exported_again = tmp_path / "again.json"
    run = await cli(
        fresh_database_url, "workflows", "export", "--all-versions", "-o", exported_again
    )
    assert run.returncode == 0, run.stderr
    # Same workflows, versions, content, labels, statuses and latest versions (the export order
    # is by name and then by the order the versions became latest).
    assert exported_again.read_bytes() == exported.read_bytes()
    fresh = await asyncpg.connect(fresh_database_url)
    try:
        copied = await stored(fresh, prefix)
    finally:
        await fresh.close()
    originals = await stored(db, prefix)
    assert copied == originals  # including is_latest_version, content_hash and status


async def test_export_as_yaml_on_stdout_reimports_as_unchanged(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "one.json"
    path.write_bytes(orjson.dumps([catalog_body(prefix, 1), catalog_body(prefix, 1, "1.1.0")]))
    assert (await cli(database_url, "workflows", "import", path)).returncode == 0
    latest = await db.fetchval("SELECT count(*) FROM remediation_workflows WHERE is_latest_version")

    run = await cli(database_url, "workflows", "export")  # YAML, latest versions, to stdout
    assert run.returncode == 0, run.stderr
    assert f"exported {latest} workflow(s) (latest versions) to standard output" in run.stderr
    document = yaml.safe_load(run.stdout)
    mine = [w for w in document["workflows"] if w["workflow_name"] == f"{prefix}-001"]
    assert [w["version"] for w in mine] == ["1.1.0"]
    assert "content: |\n" in run.stdout  # multi-line content stays readable

    exported = tmp_path / "catalog.yaml"
    exported.write_text(run.stdout)
    again = await cli(database_url, "workflows", "import", exported)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == f"created 0, unchanged {latest}, failed 0"
