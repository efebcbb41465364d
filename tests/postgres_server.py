"""A real PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

One server per test session (per xdist worker), on a free loopback port, its unix socket in its
own folder, with fsync off (the tests need its behaviour, not its durability). Postgres refuses
to run as root, so as root the server runs as a system user (``planweave-pg``, created when
missing). Every test gets a database of its own. ``PgServer.stop``/``start`` restart it on the
same port, for the tests of a store that outlives its server.

Connections from 127.0.0.1 are trusted, except for the role ``pw_secret`` (password
``s3cret``), which must give its password: the tests of a wrong password use it.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SECRET_USER = "pw_secret"
SECRET_PASSWORD = "s3cret"
_RUN_AS = "planweave-pg"


def find_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian keeps them per version under
    /usr/lib/postgresql, the newest first; elsewhere they are on the PATH."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(found).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as() -> tuple[int, int] | None:
    """The uid and gid to run the server as: ``None`` when not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_RUN_AS)
    except KeyError:
        # Another test process may be creating it at the same moment: only the lookup decides.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _RUN_AS],
            check=False,
            capture_output=True,
        )
        entry = pwd.getpwnam(_RUN_AS)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PgServer:
    """A running PostgreSQL server owned by the test session."""

    bin_dir: Path
    root: Path
    port: int
    user: tuple[int, int] | None
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
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 32MB\n"
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
def running_server() -> Iterator[PgServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (initdb not found; make system installs it)")
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="planweave-pg-"))
    os.chmod(root, 0o755)
    if user is not None:
        os.chown(root, *user)
    server = PgServer(bin_dir, root, _free_port(), user)
    try:
        server.init()
        server.start()
        server.psql(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}'")
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server."""
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.url(pg_server.new_database())
