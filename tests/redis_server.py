"""A real ``redis-server`` for tests: started on a free loopback port in a temporary folder.

One server per test process (so one per xdist worker), started on first use and stopped at
exit; ``redis_url`` flushes it before each test. Tests that restart a server (fault tests) start
their own `RedisServer` so that others in the process are not disturbed. Without the binary
(Debian's ``redis-server`` package) the tests that need it are skipped with that reason.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "redis_server", "redis_url", "shared_server"]

_START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return binary


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
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                _binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
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


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """This process's server, started on first use (skips the test without the binary)."""
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        _binary()
        server = RedisServer(Path(tempfile.mkdtemp(prefix="pw-redis-")))
        server.start()
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
