"""Processes the harness starts: each in its own session, tracked, and always stopped.

Every server runs in a new session (so its process group id is its pid) and is stopped by
signalling exactly that group: uvicorn's worker processes go with it, and nothing else is touched.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

READY_POLL_S = 0.01


class ProcessFailed(RuntimeError):
    """A process exited early or never became ready; the message carries its log tail."""


@dataclass(slots=True)
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    started_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class ProcessRegistry:
    """Starts processes and guarantees they are stopped (call `stop_all` in a finally)."""

    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path
    ) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        log_file.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        log_file.flush()
        started_at = time.perf_counter()
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = ManagedProcess(name, popen, log_path, log_file, started_at)
        self.processes.append(process)
        return process

    def stop(self, process: ManagedProcess, *, timeout_s: float = 35.0) -> int | None:
        """SIGTERM the process group, then SIGKILL it if it does not exit within `timeout_s`."""
        try:
            if process.alive():
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.popen.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.popen.wait(timeout=10)
            # Workers of a group whose leader already exited: make sure none is left behind.
            _signal_group(process.pid, signal.SIGKILL)
        finally:
            process.log_file.close()
            if process in self.processes:
                self.processes.remove(process)
        return process.popen.returncode

    def stop_all(self) -> None:
        for process in list(reversed(self.processes)):
            with contextlib.suppress(Exception):
                self.stop(process, timeout_s=10.0)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(start: int, count: int) -> list[int]:
    """`count` free ports from `start` upwards (checked now; the harness uses them right away)."""
    ports: list[int] = []
    port = start
    while len(ports) < count:
        if port > start + 500:
            raise RuntimeError(f"no free ports between {start} and {start + 500}")
        if port_is_free(port):
            ports.append(port)
        port += 1
    return ports


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    timeout_s: float = 10.0,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """One request on a fresh loopback connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(process: ManagedProcess, port: int, path: str, *, timeout_s: float = 60.0) -> float:
    """Poll GET `path` until 200; returns seconds since the process was started."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if not process.alive():
            raise ProcessFailed(
                f"{process.name} exited with {process.popen.returncode} before it was ready:\n"
                f"{process.log_tail()}"
            )
        try:
            status, _ = http_request(port, "GET", path, timeout_s=2.0)
        except (OSError, http.client.HTTPException):
            status = 0
        if status == 200:
            return time.perf_counter() - process.started_at
        time.sleep(READY_POLL_S)
    raise ProcessFailed(
        f"{process.name} not ready on port {port} within {timeout_s:.0f}s:\n{process.log_tail()}"
    )


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Make SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt, so `finally` stops what was started."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Also when started with SIGINT ignored (a background job of a non-interactive shell).
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
