from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from planweave.errors import PolicyViolation, ToolError
from planweave.tools import ToolContext, ToolRegistry, ToolResult, builtin_tools, invoke
from planweave.tools._fetch import _pinned_request, fetch_url
from planweave.tools._net import check_url, is_public_address, parse_host, redirect_target


@dataclass
class Canary:
    """A real HTTP server on loopback that records every request it gets."""

    host: str
    port: int
    hits: list[dict[str, str]] = field(default_factory=list)
    redirect_to: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _serve(host: str) -> Iterator[Canary]:
    canary = Canary(host=host, port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            canary.hits.append({"path": self.path, "host": self.headers.get("Host", "")})
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", canary.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/loop":
                self.send_response(301)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = ("x" * 5000).encode() if self.path == "/big" else b"hello from the canary"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, 0), Handler)
    except OSError as exc:
        pytest.skip(f"cannot bind {host}: {exc}")
    canary.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield canary
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def canary() -> Iterator[Canary]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def second_canary() -> Iterator[Canary]:
    yield from _serve("127.0.0.2")


async def fetch(ctx: ToolContext, **args: object) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), "http_fetch", args, ctx)


def refusing(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path, http_timeout_s=5.0)


def allowing(tmp_path: Path, **kw: Any) -> ToolContext:
    return ToolContext(workspace=tmp_path, allow_private_network=True, http_timeout_s=5.0, **kw)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "0.0.0.0",
        "[::]",
        "localhost",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ],
)
async def test_loopback_in_any_spelling_is_refused(
    tmp_path: Path, canary: Canary, host: str
) -> None:
    result = await fetch(refusing(tmp_path), url=f"http://{host}:{canary.port}/")
    assert (result.ok, result.error_type, result.retryable) == (False, "policy", False)
    assert "non-public address" in (result.error or "")
    assert canary.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:a00:1::]/",
        "https://192.168.0.1:8443/",
    ],
)
async def test_private_and_special_addresses_are_refused(tmp_path: Path, url: str) -> None:
    result = await fetch(refusing(tmp_path), url=url)
    assert (result.ok, result.error_type) == (False, "policy"), result.error


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/", "data:,hi"]
)
async def test_other_schemes_are_refused(tmp_path: Path, url: str) -> None:
    result = await fetch(allowing(tmp_path), url=url)
    assert (result.ok, result.error_type) == (False, "policy")
    assert "only http and https" in (result.error or "")


async def test_allow_private_network_reaches_the_canary(tmp_path: Path, canary: Canary) -> None:
    result = await fetch(allowing(tmp_path), url=f"{canary.url}/page")
    assert result.ok, result.error
    assert result.value == {
        "url": f"{canary.url}/page",
        "status": 200,
        "content_type": "text/plain; charset=utf-8",
        "text": "hello from the canary",
        "truncated": False,
    }
    assert canary.hits == [{"path": "/page", "host": f"127.0.0.1:{canary.port}"}]


async def test_body_is_cut_at_max_bytes(tmp_path: Path, canary: Canary) -> None:
    result = await fetch(allowing(tmp_path, max_fetch_bytes=3000), url=f"{canary.url}/big")
    assert result.value["text"] == "x" * 3000
    assert result.value["truncated"] is True
    smaller = await fetch(allowing(tmp_path), url=f"{canary.url}/big", max_bytes=10)
    assert smaller.value["text"] == "x" * 10


async def test_connection_is_pinned_to_the_checked_address(
    tmp_path: Path, canary: Canary, second_canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer is checked; a later, different answer is never used."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers, "127.0.0.2"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    only_first = {ipaddress.ip_address("127.0.0.1")}
    result = await fetch_url(
        f"http://rebind.test:{canary.port}/",
        max_bytes=1000,
        timeout_s=5.0,
        allow_private=False,
        policy=lambda ip: ip in only_first,
    )
    assert result["text"] == "hello from the canary"
    assert canary.hits == [{"path": "/", "host": f"rebind.test:{canary.port}"}]
    assert second_canary.hits == []


async def test_redirect_hops_are_checked_again(
    tmp_path: Path, canary: Canary, second_canary: Canary
) -> None:
    canary.redirect_to = f"{second_canary.url}/secret"
    only_first = {ipaddress.ip_address("127.0.0.1")}
    with pytest.raises(PolicyViolation, match=r"127\.0\.0\.2"):
        await fetch_url(
            f"{canary.url}/redirect",
            max_bytes=1000,
            timeout_s=5.0,
            allow_private=False,
            policy=lambda ip: ip in only_first,
        )
    assert [hit["path"] for hit in canary.hits] == ["/redirect"]
    assert second_canary.hits == []


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "http://169.254.169.254/", "http://0251.0376.0251.0376/"]
)
async def test_redirect_to_forbidden_targets(tmp_path: Path, canary: Canary, location: str) -> None:
    canary.redirect_to = location
    with pytest.raises(PolicyViolation):
        await fetch_url(
            f"{canary.url}/redirect",
            max_bytes=1000,
            timeout_s=5.0,
            allow_private=False,
            policy=lambda ip: ip == ipaddress.ip_address("127.0.0.1"),
        )


async def test_redirects_are_followed_within_the_limit(tmp_path: Path, canary: Canary) -> None:
    canary.redirect_to = "/final"
    result = await fetch(allowing(tmp_path), url=f"{canary.url}/redirect")
    assert result.value["url"] == f"{canary.url}/final"
    assert result.value["text"] == "hello from the canary"
    looping = await fetch(allowing(tmp_path), url=f"{canary.url}/loop")
    assert (looping.ok, looping.error_type) == (False, "error")
    assert "too many redirects" in (looping.error or "")
    assert len(canary.hits) == 2 + 6


async def test_network_errors_are_retryable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    result = await fetch(allowing(tmp_path), url=f"http://127.0.0.1:{port}/")
    assert (result.ok, result.error_type, result.retryable) == (False, "error", True)


def test_redirect_target() -> None:
    assert redirect_target("http://a.com/x/y?q=1", "z") == "http://a.com/x/z"
    assert redirect_target("http://a.com/x/y", "/root#frag") == "http://a.com/root"
    assert redirect_target("https://a.com/x", "//b.org/p") == "https://b.org/p"
    assert redirect_target("http://a.com/", "http://0177.0.0.1/") == "http://0177.0.0.1/"
    assert redirect_target("http://a.com/", "file:///etc/passwd").startswith("file:")


async def test_check_url_returns_the_addresses() -> None:
    assert await check_url("http://127.0.0.1:9/", True) == [ipaddress.ip_address("127.0.0.1")]
    assert await check_url("https://93.184.215.14/", False) == [
        ipaddress.ip_address("93.184.215.14")
    ]
    with pytest.raises(ToolError, match="no host"):
        await check_url("http:///path", False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("deadbeef", None),
    ],
)
def test_parse_host(host: str, expected: str | None) -> None:
    parsed = parse_host(host)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.127.255.254", False),
        ("::ffff:10.0.0.1", False),
        ("fd12::1", False),
        ("ff02::1", False),
        ("192.0.2.1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_https_requests_keep_the_name_for_sni_and_host() -> None:
    request = _pinned_request(
        "https://user:pw@example.com:8443/p?q=1", ipaddress.ip_address("93.184.215.14"), 5.0
    )
    assert request.url.host == "93.184.215.14"
    assert request.url.port == 8443
    assert request.headers["host"] == "example.com:8443"
    assert request.extensions["sni_hostname"] == "example.com"
    assert request.extensions["timeout"]["read"] == 5.0
    v6 = _pinned_request("http://example.com/", ipaddress.ip_address("2606:4700::1"), 5.0)
    assert v6.url.netloc == b"[2606:4700::1]"
    assert v6.headers["host"] == "example.com"
