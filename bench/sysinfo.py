"""Machine facts for the report, and CPU accounting from /proc (where the cores went)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "strawberry-graphql",
    "asyncpg",
    "orjson",
)


def machine_info(repo: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {},
        "git_commit": _git(repo, "rev-parse", "HEAD"),
        "git_dirty": None,
        "service_source_sha256": source_digest(repo / "datastorage"),
    }
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if info["git_commit"] is not None and status is not None:
        info["git_dirty"] = bool(status)
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info["packages"][name] = importlib.metadata.version(name)
    return info


def source_digest(root: Path) -> str:
    """SHA-256 over the service's source files (Python and SQL), to tie results to code.

    The repository may have no commit yet, or uncommitted edits; this names the code that ran.
    """
    digest = hashlib.sha256()
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.sql")]):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git(repo: Path, *args: str) -> str | None:
    """Read-only git queries; None when git or a commit is not there."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds used so far by each process (with a label), and machine-wide counters."""

    processes: dict[int, tuple[str, float]]
    machine: dict[str, float]


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def _label(
    pid: int,
    ppid: int,
    comm: str,
    pgrp: int,
    groups: dict[int, str],
    trees: dict[int, str],
    database: str | None,
) -> str:
    if pgrp in groups:
        return groups[pgrp]
    # Servers we did not start in a group of our own (a private PostgreSQL cluster, whose
    # processes each lead their own session; the Redis server): the process and its children.
    if pid in trees:
        return trees[pid]
    if ppid in trees:
        return trees[ppid]
    if pid == os.getpid():
        return "harness"
    if comm.startswith("postgres"):
        # Backends show "postgres: USER DATABASE HOST(PORT) STATE" as their command line.
        cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\x00", " ").split()
        return "postgres_bench" if database and database in cmdline[:4] else "postgres_other"
    return "other_procs"


def _processes(
    groups: dict[int, str], trees: dict[int, str], database: str | None
) -> dict[int, tuple[str, float]]:
    found: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        raw = _read(f"/proc/{entry.name}/stat")
        if raw is None:
            continue
        open_paren, close_paren = raw.find("("), raw.rfind(")")
        comm = raw[open_paren + 1 : close_paren]
        fields = raw[close_paren + 2 :].split()
        # After "pid (comm) ": state, ppid, pgrp, ...; utime and stime at 11 and 12. Reaped
        # children's time (cutime, cstime) is left out: it lands all at once when a child exits,
        # however long before the interval it was used. Processes that start and exit inside
        # the interval therefore show up as `unattributed`.
        pid = int(entry.name)
        ppid = int(fields[1])
        pgrp = int(fields[2])
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        found[pid] = (_label(pid, ppid, comm, pgrp, groups, trees, database), cpu)
    return found


def _machine() -> dict[str, float]:
    with open("/proc/stat", encoding="ascii") as handle:
        parts = handle.readline().split()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in parts[1:9])
    return {
        "busy": (user + nice + system + irq + softirq) / CLOCK_TICKS,
        "irq": (irq + softirq) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
        "total": (user + nice + system + idle + iowait + irq + softirq + steal) / CLOCK_TICKS,
    }


def cpu_snapshot(
    groups: dict[int, str] | None = None,
    database: str | None = None,
    trees: dict[int, str] | None = None,
) -> CpuSnapshot:
    """`groups` maps process-group ids we started to names; `database` marks our PG backends;
    `trees` maps a pid to the name of it and its direct children (e.g. a postmaster)."""
    return CpuSnapshot(_processes(groups or {}, trees or {}, database), _machine())


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> dict[str, Any]:
    """Cores used in the interval (CPU seconds / wall seconds), by label.

    A process that exited during the interval is not counted (it shows as unattributed); one
    that started during it counts in full.
    """
    per_label: dict[str, float] = {}
    for pid, (label, cpu) in after.processes.items():
        previous = before.processes.get(pid)
        used = cpu - previous[1] if previous is not None and previous[0] == label else cpu
        per_label[label] = per_label.get(label, 0.0) + max(0.0, used)

    def cores(seconds: float) -> float:
        return round(seconds / wall_s, 2) if wall_s > 0 else 0.0

    result: dict[str, Any] = {f"{label}_cores": cores(value) for label, value in per_label.items()}
    machine = {key: after.machine[key] - before.machine[key] for key in after.machine}
    result["kernel_irq_cores"] = cores(machine["irq"])
    result["steal_cores"] = cores(machine["steal"])
    result["machine_busy_cores"] = cores(machine["busy"])
    result["machine_busy_pct"] = (
        round(100 * machine["busy"] / machine["total"], 1) if machine["total"] else None
    )
    return result


def with_other(cpu: dict[str, Any]) -> dict[str, Any]:
    """Add `unattributed_cores`: busy time no process explains (exited processes, kernel).

    Interrupt time is left out of the sum: depending on the kernel's accounting it is also
    charged to the interrupted processes, and would be counted twice.
    """
    not_processes = ("machine_busy_cores", "unattributed_cores", "steal_cores", "kernel_irq_cores")
    attributed = sum(
        value for key, value in cpu.items() if key.endswith("_cores") and key not in not_processes
    )
    cpu["unattributed_cores"] = round(cpu["machine_busy_cores"] - attributed, 2)
    return cpu


def background_busy_cores(seconds: float = 1.0) -> float:
    """Cores busy on the machine while the harness itself is idle (other people's work)."""
    before = _machine()["busy"]
    started = time.perf_counter()
    time.sleep(seconds)
    return round((_machine()["busy"] - before) / (time.perf_counter() - started), 2)
