"""A real PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

One server per test session (per xdist worker), on a free loopback port, its unix socket in its
own folder, with fsync off (the tests need its behaviour, not its durability). Postgres refuses
to run as root, so as root the server runs as a system user (``planweave-pg``, created when
missing). Every test gets a database of its own. ``PgServer.stop``/``start`` restart it on the
same port, for the tests of a store that outlives its server. The server is the benchmark's
(``bench/_servers.py``), which starts the same kind.

Connections from 127.0.0.1 are trusted, except for the role ``pw_secret`` (password
``s3cret``), which must give its password: the tests of a wrong password use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from bench._servers import PgServer, find_bin_dir, postgres_server

__all__ = ["SECRET_PASSWORD", "SECRET_USER", "PgServer", "find_bin_dir", "pg_server", "pg_url"]

SECRET_USER = "pw_secret"
SECRET_PASSWORD = "s3cret"


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (initdb not found; make system installs it)")
    with postgres_server(password_roles=(SECRET_USER,)) as server:
        server.psql(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}'")
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server."""
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.url(pg_server.new_database())
