"""Real HTTP servers on loopback for the policy tests: each records every request it gets
(its access log), serves a page, redirects, and takes POSTs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from planweave import tool
from planweave.tools import ToolContext
from planweave.tools._net import check_url


@tool(isolated=True)
async def isolated_ping(url: str, ctx: ToolContext) -> str:
    """Check that a URL may be fetched, in a tool worker process of its own."""
    await check_url(url, ctx.allow_private_network)
    return "reachable"


@dataclass
class Site:
    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    page: str = "hello"
    redirect_to: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def serve(host: str) -> Iterator[Site]:
    site = Site(host=host)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes = b"", location: str = "") -> None:
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            site.hits.append(f"GET {self.path}")
            if self.path.startswith("/redirect"):
                self._reply(302, location=site.redirect_to)
            else:
                self._reply(200, site.page.encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            site.hits.append(f"POST {self.path} {body}")
            self._reply(200, b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, 0), Handler)
    except OSError as exc:
        pytest.skip(f"cannot bind {host}: {exc}")
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.daemon = True
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
