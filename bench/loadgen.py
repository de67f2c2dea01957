"""HTTP load generation with wrk (C, epoll): cheap enough to share 2 cores with the server."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LUA_SCRIPT = Path(__file__).with_name("wrk_rotate.lua")
INSTALL_HINT = (
    "wrk is not installed. It is the load generator of this harness; install it with\n"
    "    apt-get update && apt-get install -y wrk\n"
    "(Debian/Ubuntu package 'wrk'), then run the benchmark again."
)


class WrkMissing(RuntimeError):
    pass


class WrkFailed(RuntimeError):
    pass


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(INSTALL_HINT)
    return path


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    completed = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    first = (completed.stdout or completed.stderr).strip().splitlines()
    return first[0] if first else None


@dataclass(frozen=True, slots=True)
class WrkResult:
    duration_s: float
    requests: int
    bytes: int
    errors: dict[str, int]
    latency_us: dict[str, float]
    cpu_seconds: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        # wrk counts responses with status >= 400 as "status" errors.
        return self.errors.get("status", 0)

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    def latency_ms(self) -> dict[str, float]:
        lat = self.latency_us
        return {
            "p50": lat["p50"] / 1000,
            "p90": lat["p90"] / 1000,
            "p95": lat["p95"] / 1000,
            "p99": lat["p99"] / 1000,
            "max": lat["max"] / 1000,
            "mean": round(lat["mean"] / 1000, 3),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "requests_per_s": round(self.requests_per_s, 1),
            "bytes": self.bytes,
            "errors": self.errors,
            "latency_ms": self.latency_ms(),
            "loadgen_cpu_seconds": round(self.cpu_seconds, 3),
        }


@dataclass(slots=True)
class RequestSet:
    """Prebuilt requests for wrk: paths and/or bodies written to files, one per line."""

    method: str
    paths: Sequence[str] = ()
    bodies: Sequence[bytes] = ()

    def write(self, directory: Path) -> dict[str, str]:
        env = {"BENCH_METHOD": self.method}
        if self.paths:
            paths_file = directory / "paths.txt"
            paths_file.write_text("\n".join(self.paths) + "\n", encoding="utf-8")
            env["BENCH_PATHS"] = str(paths_file)
        if self.bodies:
            bodies_file = directory / "bodies.txt"
            with bodies_file.open("wb") as out:
                for body in self.bodies:
                    if b"\n" in body:
                        raise ValueError("a request body must be one line (compact JSON)")
                    out.write(body + b"\n")
            env["BENCH_BODIES"] = str(bodies_file)
        return env


def run_wrk(
    port: int,
    requests: RequestSet,
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """One wrk run against 127.0.0.1:`port`; bounded by `duration_s` (plus a hard kill margin)."""
    wrk = find_wrk()
    first_path = requests.paths[0] if requests.paths else "/"
    with tempfile.TemporaryDirectory(prefix="ds-bench-wrk-") as tmp:
        env = {**os.environ, **requests.write(Path(tmp))}
        argv = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "-s",
            str(LUA_SCRIPT),
            f"http://127.0.0.1:{port}{first_path}",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=duration_s + timeout_s + 30)
        except BaseException:
            # Timed out or interrupted: stop wrk (its own process group) and reap it. It may
            # have just exited by itself; the interruption must still propagate.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = stdout.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_JSON ")), None)
    if process.returncode != 0 or line is None:
        raise WrkFailed(
            f"wrk exited with {process.returncode}:\n{text[-2000:]}\n{stderr.decode()[-2000:]}"
        )
    data = orjson.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        bytes=data["bytes"],
        errors=data["errors"],
        latency_us=data["latency_us"],
        cpu_seconds=cpu,
    )
