"""The real `datastorage` command: serve until ready, stop on SIGTERM, and the admin commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REDIS_URL, event_body

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(database_url: str, delay_s: str = "0") -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATASTORAGE_DATABASE_URL": database_url,
        "DATASTORAGE_REDIS_URL": REDIS_URL,
        "DATASTORAGE_SHUTDOWN_DELAY_S": delay_s,
    }


def _wait_ready(base: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def test_serve_becomes_ready_takes_writes_and_stops_on_sigterm(
    database_url: str, app: object
) -> None:
    port = _free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "datastorage.cli", "serve", "--port", str(port)],
        env=_environment(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_ready(base, started + 30), "the server never became ready"
        ready_after = time.monotonic() - started
        print(f"start-up to ready (process start, migrations already applied): {ready_after:.2f} s")
        created = httpx.post(f"{base}/api/v1/audit/events", json=event_body(), timeout=5)
        assert created.status_code == 201
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert process.returncode in (0, -signal.SIGTERM)
    assert f"http://127.0.0.1:{port}/graphql" in output  # the banner names GraphiQL
    assert "Application shutdown complete" in output


def test_migrate_and_partitions_commands(database_url: str, app: object) -> None:
    env = _environment(database_url)
    migrate = subprocess.run(
        [sys.executable, "-m", "datastorage.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "applied 0 migration(s)" in migrate.stdout  # the app fixture applied them already
    ensure = subprocess.run(
        [sys.executable, "-m", "datastorage.cli", "partitions", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ensure.returncode == 0, ensure.stderr
    assert "created 0 partition(s)" in ensure.stdout


def test_ctrl_c_stops_at_once_without_the_load_balancer_delay(
    database_url: str, app: object
) -> None:
    port = _free_port()
    # A delay far longer than the wait below: SIGTERM would hold the server this long.
    process = subprocess.Popen(
        [sys.executable, "-m", "datastorage.cli", "serve", "--port", str(port)],
        env=_environment(database_url, delay_s="120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_ready(base, time.monotonic() + 30), "the server never became ready"
        assert httpx.post(f"{base}/api/v1/audit/events", json=event_body()).status_code == 201
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)  # well inside the 120 s delay
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, -signal.SIGINT)
    assert "Application shutdown complete" in output
    assert "stopping in" not in output  # no readiness-first delay was announced
