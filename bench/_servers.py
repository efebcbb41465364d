"""Throwaway ``redis-server`` and PostgreSQL servers on free loopback ports, each in a temporary
folder: the scaled benchmark starts them for its run, and the tests' fixtures
(``tests/redis_server.py``, ``tests/postgres_server.py``) start theirs with the same code.

Postgres refuses to run as root, so as root the cluster runs as a system user (``planweave-pg``,
created when missing). A missing binary raises `ServerNotInstalled`, whose message says what to
install; the bench turns it into one line and the tests into a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PgServer",
    "RedisServer",
    "ServerNotInstalled",
    "find_bin_dir",
    "free_port",
    "missing_servers",
    "postgres_server",
    "redis_server",
]

_REDIS_START_TIMEOUT_S = 10.0
_PG_RUN_AS = "planweave-pg"


class ServerNotInstalled(RuntimeError):
    """The server's binary is not on this machine; the message names the package."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerNotInstalled("redis-server is not installed (apt-get install redis-server)")
    return binary


def find_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian keeps them per version under
    /usr/lib/postgresql, the newest first; elsewhere they are on the PATH."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(found).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _pg_bin_dir() -> Path:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise ServerNotInstalled(
            "PostgreSQL is not installed (initdb not found; make system installs it)"
        )
    return bin_dir


def missing_servers() -> list[str]:
    """What is not installed, one sentence each (empty when both servers can start)."""
    out: list[str] = []
    for check in (_redis_binary, _pg_bin_dir):
        try:
            check()
        except ServerNotInstalled as exc:
            out.append(str(exc))
    return out


class RedisServer:
    """One ``redis-server`` process without persistence, on ``127.0.0.1:port``."""

    def __init__(self, folder: Path, port: int | None = None, *extra_args: str) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        binary = _redis_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder),
             "--logfile", str(self.folder / "redis.log"), *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + _REDIS_START_TIMEOUT_S
        while not self.command("PING"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: nothing is saved, as with a crash)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, down_s: float = 0.0) -> None:
        """Kill the server and start a fresh one on the same port (every key is gone)."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def command(self, *words: str) -> bytes:
        """Send one inline command and return the raw reply (``b""`` when nothing answers)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(" ".join(words).encode() + b"\r\n")
                return sock.recv(65536)
        except OSError:
            return b""

    def flush(self) -> None:
        if self.command("FLUSHALL") != b"+OK\r\n":
            raise RuntimeError(f"redis-server on port {self.port} did not flush")


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started ``redis-server`` in a temporary folder, killed and removed on exit."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="pw-redis-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def _run_as() -> tuple[int, int] | None:
    """The uid and gid to run the server as: ``None`` when not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_PG_RUN_AS)
    except KeyError:
        # Another process may be creating it at the same moment: only the lookup decides.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             _PG_RUN_AS],
            check=False,
            capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(_PG_RUN_AS)
    return entry.pw_uid, entry.pw_gid


# Tests need the server's behaviour, not its durability; a benchmark keeps the defaults.
_FAST_CONF = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"


@dataclass
class PgServer:
    """A PostgreSQL cluster in ``root``: connections from 127.0.0.1 are trusted, except for the
    roles in ``password_roles``, which must give their password."""

    bin_dir: Path
    root: Path
    port: int
    user: tuple[int, int] | None
    password_roles: tuple[str, ...] = ()
    durability: Literal["off", "default"] = "off"
    _counter: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, *, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            cwd=self.root,
            **kwargs,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        hba = ["local all all trust"]
        hba += [f"host all {role} 127.0.0.1/32 scram-sha-256" for role in self.password_roles]
        hba.append("host all all 127.0.0.1/32 trust")
        (self.data / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                (_FAST_CONF if self.durability == "off" else "")
                + "max_connections = 200\nshared_buffers = 32MB\n"
                f"unix_socket_directories = '{self.root}'\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect every client; ``immediate``: as a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str) -> str:
        """Run ``sql`` as the superuser; its output."""
        return self._run("psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                         "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout  # fmt: skip

    def new_database(self) -> str:
        """A fresh database's name."""
        self._counter += 1
        name = f"pw_test_{os.getpid()}_{self._counter}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return name


@contextlib.contextmanager
def postgres_server(
    *, password_roles: tuple[str, ...] = (), durability: Literal["off", "default"] = "off"
) -> Iterator[PgServer]:
    """A started PostgreSQL cluster in a temporary folder, stopped (as a crash: nothing of it is
    kept) and removed on exit."""
    bin_dir = _pg_bin_dir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="planweave-pg-"))
    os.chmod(root, 0o755)
    if user is not None:
        os.chown(root, *user)
    server = PgServer(bin_dir, root, free_port(), user, password_roles, durability)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
