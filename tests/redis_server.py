"""A real ``redis-server`` for tests: started on a free loopback port in a temporary folder.

One server per test process (so one per xdist worker), started on first use and stopped at
exit; ``redis_url`` flushes it before each test. Tests that restart a server (fault tests) start
their own `RedisServer` so that others in the process are not disturbed. Without the binary
(Debian's ``redis-server`` package) the tests that need it are skipped with that reason. The
server itself is the benchmark's (``bench/_servers.py``), which starts the same kind.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import _servers
from bench._servers import ServerNotInstalled, free_port

__all__ = ["RedisServer", "free_port", "redis_server", "redis_url", "shared_server"]


class RedisServer(_servers.RedisServer):
    """One ``redis-server`` process without persistence; the test is skipped without the
    binary."""

    def start(self) -> None:
        try:
            super().start()
        except ServerNotInstalled as exc:
            pytest.skip(str(exc))


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """This process's server, started on first use (skips the test without the binary)."""
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="pw-redis-")))
        try:
            server.start()
        except BaseException:  # the skip without the binary among them: leave no folder
            shutil.rmtree(server.folder, ignore_errors=True)
            raise
        atexit.register(_stop_shared, server)
        _shared = server
    return _shared


def _stop_shared(server: RedisServer) -> None:
    server.stop()
    with contextlib.suppress(OSError):
        shutil.rmtree(server.folder)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The test process's ``redis-server``."""
    yield shared_server()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the process's server, flushed for this test."""
    redis_server.flush()
    return redis_server.url()
