"""Private PostgreSQL and Redis servers that outage tests may stop and start at will.

The shared servers (5432, 6379) are never touched: each private server runs on a free port with
its data in a temporary directory. PostgreSQL refuses to run as root, so when the tests run as
root its commands run as the `postgres` system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datastorage.settings import Settings, load_settings

PG_BIN = Path(os.environ.get("DATASTORAGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: `stop()` is an outage, `start()` the recovery."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ds-outage-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "--no-sync", "-E", "UTF8"]
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 200\nshared_buffers = 64MB\n"
            )
        self.running = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                 "-w", "-t", "60", "start"]
            ),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as clients see it: connections drop, nothing shuts down cleanly."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=True,
            capture_output=True,
            timeout=90,
        )
        self.running = False

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-tAqc", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return result.stdout.strip()

    def destroy(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A throw-away Redis (nothing on disk)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg(private_pg: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private PostgreSQL, running, with a fresh database `outage` for this test."""
    if not private_pg.running:
        private_pg.start()
    private_pg.psql("postgres", "DROP DATABASE IF EXISTS outage WITH (FORCE)")
    private_pg.psql("postgres", "CREATE DATABASE outage")
    yield private_pg
    if not private_pg.running:
        private_pg.start()


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def outage_settings(pg: PrivatePostgres, redis_server: PrivateRedis) -> Callable[..., Settings]:
    """Settings for the private servers, with quick breaker and replay timings."""

    def make(**sections: dict[str, Any]) -> Settings:
        merged: dict[str, dict[str, Any]] = {
            "database": {"url": pg.url("outage"), "pool_size": 10, "connect_timeout_s": 1.0},
            "redis": {"url": redis_server.url},
            "writer": {"breaker_open_s": 0.5, "retry_after_s": 1},
            "dlq": {"monitor_interval_s": 1.0},
            "shutdown": {"delay_s": 0.0},
        }
        for name, values in sections.items():
            merged[name] = {**merged.get(name, {}), **values}
        return load_settings(**merged)

    return make
