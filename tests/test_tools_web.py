"""The web tools (http_fetch as Markdown, http_request, http_download, web_search) against real
HTTP servers started by the test, and their SSRF, path and secret guards."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from planweave import Engine
from planweave.config import load_settings
from planweave.errors import ConfigError
from planweave.events import ToolCalled
from planweave.llm.scripted import ScriptedModel
from planweave.plan import Plan, TaskSpec
from planweave.tools import (
    ToolContext,
    ToolRegistry,
    ToolResult,
    WebSearchConfig,
    _net,
    builtin_tools,
    invoke,
    run_tool_call,
)
from planweave.tools._tool import is_high_impact, sandbox_of

PAGE = """<html><head><title>Go channels</title><script>stealCookies()</script>
<style>.nav{color:red}</style></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/login">Log in</a></nav>
<article><h1>Go channels</h1>
<p>Channels are typed conduits through which goroutines send and receive values. They let
concurrent code synchronise without explicit locks or condition variables.</p>
<p>See <a href="https://go.dev/doc">the documentation</a> for <b>buffered</b> channels, which
hold a fixed number of values before a send blocks.</p></article>
<footer>Copyright 2026 Example Corp. All rights reserved.</footer></body></html>"""

SEARXNG_ANSWER = {
    "query": "go channels",
    "results": [
        {"title": "Channels - Go", "url": "https://go.dev/tour/channels", "content": "Typed."},
        {"title": "No URL", "content": "dropped"},
        {"title": "Effective Go", "url": "https://go.dev/doc/effective_go", "content": "Tips."},
    ],
}
BRAVE_ANSWER = {
    "web": {
        "results": [
            {"title": "Brave one", "url": "https://one.example/", "description": "First."},
            {"title": "Brave two", "url": "https://two.example/", "description": "Second."},
        ]
    }
}
TAVILY_ANSWER = {"results": [{"title": "T", "url": "https://t.example/", "content": "Tav."}]}
SECRET = "sk-brave-SECRET-4242"


@dataclass
class Server:
    """A real HTTP server on loopback that records every request and answers by path."""

    host: str
    port: int = 0
    hits: list[dict[str, Any]] = field(default_factory=list)
    redirect_to: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _answer(server: Server, handler: BaseHTTPRequestHandler, method: str) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    server.hits.append(
        {
            "method": method,
            "path": handler.path,
            "headers": {k.lower(): v for k, v in handler.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
    )
    status, ctype, out, extra = 200, "text/plain", b"ok", {}
    path = handler.path.split("?", 1)[0]
    if path.startswith("/redirect"):
        status, extra, out = (307 if "307" in path else 302), {"Location": server.redirect_to}, b""
    elif path == "/page":
        ctype, out = "text/html; charset=utf-8", PAGE.encode()
    elif path == "/echo":
        ctype = "application/json"
        out = json.dumps({"method": method, "body": body.decode(), "path": handler.path}).encode()
        extra = {"Set-Cookie": "session=s3cr3t", "X-Trace": "abc"}
    elif path == "/big":
        out = b"x" * 5000
    elif path == "/missing":
        status = 404
    elif path == "/search":
        ctype, out = "application/json", json.dumps(SEARXNG_ANSWER).encode()
    elif path == "/res/v1/web/search":
        if handler.headers.get("X-Subscription-Token") != SECRET:
            status, out = 401, f"bad token {handler.headers.get('X-Subscription-Token')}".encode()
        else:
            ctype, out = "application/json", json.dumps(BRAVE_ANSWER).encode()
    elif path == "/tavily":
        if handler.headers.get("Authorization") != f"Bearer {SECRET}":
            status = 401
        ctype, out = "application/json", json.dumps(TAVILY_ANSWER).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(out)))
    for key, value in extra.items():
        handler.send_header(key, value)
    handler.end_headers()
    if method != "HEAD":
        handler.wfile.write(out)


def _serve(host: str) -> Iterator[Server]:
    server = Server(host=host)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _answer(server, self, "GET")

        def do_POST(self) -> None:
            _answer(server, self, "POST")

        def do_HEAD(self) -> None:
            _answer(server, self, "HEAD")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        httpd = ThreadingHTTPServer((host, 0), Handler)
    except OSError as exc:
        pytest.skip(f"cannot bind {host}: {exc}")
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def site() -> Iterator[Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def other() -> Iterator[Server]:
    yield from _serve("127.0.0.2")


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)


@pytest.fixture
def loopback_one_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 plays a public web site; every other non-public address stays refused."""
    real = _net.is_public_address
    site_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(_net, "is_public_address", lambda ip: ip == site_ip or real(ip))


def allowing(tmp_path: Path, **kw: Any) -> ToolContext:
    return ToolContext(workspace=tmp_path, allow_private_network=True, http_timeout_s=5.0, **kw)


def refusing(tmp_path: Path, **kw: Any) -> ToolContext:
    return ToolContext(workspace=tmp_path, http_timeout_s=5.0, **kw)


async def call(ctx: ToolContext, name: str, **args: Any) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), name, args, ctx)


# http_fetch


async def test_http_fetch_reads_an_html_page_as_markdown(tmp_path: Path, site: Server) -> None:
    result = await call(allowing(tmp_path), "http_fetch", url=f"{site.url}/page")
    assert result.ok, result.error
    page = result.value
    assert page["title"] == "Go channels"
    assert page["status"] == 200
    assert "Channels are typed conduits" in page["text"]
    assert "[the documentation](https://go.dev/doc)" in page["text"]
    assert "**buffered**" in page["text"]
    for junk in ("stealCookies", "About us", "color:red", "<p>"):
        assert junk not in page["text"]


async def test_http_fetch_raw_and_text_formats(tmp_path: Path, site: Server) -> None:
    raw = await call(allowing(tmp_path), "http_fetch", url=f"{site.url}/page", format="raw")
    assert raw.value["text"] == PAGE
    assert "title" not in raw.value
    text = await call(allowing(tmp_path), "http_fetch", url=f"{site.url}/page", format="text")
    assert "Channels are typed conduits" in text.value["text"]
    assert "](https://go.dev/doc)" not in text.value["text"]


# http_request


async def test_http_request_get_and_post_json(tmp_path: Path, site: Server) -> None:
    got = await call(allowing(tmp_path), "http_request", url=f"{site.url}/echo?a=1")
    assert got.ok, got.error
    assert got.value["status"] == 200
    assert got.value["json"] == {"method": "GET", "body": "", "path": "/echo?a=1"}
    assert got.value["headers"]["x-trace"] == "abc"
    assert "set-cookie" not in got.value["headers"]
    posted = await call(
        allowing(tmp_path),
        "http_request",
        url=f"{site.url}/echo",
        method="POST",
        json={"name": "Ada"},
        headers={"X-Api-Key": "k1"},
    )
    assert posted.value["json"]["body"] == '{"name": "Ada"}'
    hit = site.hits[-1]
    assert hit["method"] == "POST"
    assert hit["headers"]["content-type"] == "application/json"
    assert hit["headers"]["x-api-key"] == "k1"


def test_http_request_needs_approval_except_for_get_and_head() -> None:
    tools = {t.name: t for t in builtin_tools()}
    request = tools["http_request"]
    assert not is_high_impact(request, {"url": "http://x/"})
    assert not is_high_impact(request, {"url": "http://x/", "method": "HEAD"})
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert is_high_impact(request, {"url": "http://x/", "method": method})
    assert not is_high_impact(tools["http_fetch"], {"url": "http://x/"})


async def test_http_request_refuses_headers_it_sets_itself(tmp_path: Path, site: Server) -> None:
    for headers in ({"Host": "evil.test"}, {"Content-Length": "1"}, {"X-A": "1\r\nHost: evil"}):
        result = await call(
            allowing(tmp_path), "http_request", url=f"{site.url}/echo", headers=headers
        )
        assert not result.ok
    assert site.hits == []


async def test_caller_headers_do_not_follow_a_redirect_to_another_origin(
    tmp_path: Path, site: Server, other: Server
) -> None:
    site.redirect_to = f"{other.url}/echo"
    result = await call(
        allowing(tmp_path),
        "http_request",
        url=f"{site.url}/redirect307",
        method="POST",
        body="payload",
        headers={"Authorization": "Bearer top-secret"},
    )
    assert result.ok, result.error
    assert site.hits[0]["headers"]["authorization"] == "Bearer top-secret"
    assert "authorization" not in other.hits[0]["headers"]
    assert other.hits[0]["method"] == "POST"  # 307 keeps the method


async def test_a_302_after_post_continues_as_a_get_without_the_body(
    tmp_path: Path, site: Server
) -> None:
    site.redirect_to = "/echo"
    result = await call(
        allowing(tmp_path), "http_request", url=f"{site.url}/redirect", method="POST", json=[1]
    )
    assert result.value["json"] == {"method": "GET", "body": "", "path": "/echo"}


# http_download


async def test_http_download_writes_the_file(tmp_path: Path, site: Server) -> None:
    result = await call(
        allowing(tmp_path), "http_download", url=f"{site.url}/page", path="pages/go.html"
    )
    assert result.ok, result.error
    assert (tmp_path / "pages" / "go.html").read_text() == PAGE
    assert result.value["bytes"] == len(PAGE.encode())
    assert result.value["path"] == "pages/go.html"


async def test_http_download_over_the_cap_writes_nothing(tmp_path: Path, site: Server) -> None:
    result = await call(
        allowing(tmp_path), "http_download", url=f"{site.url}/big", path="big.txt", max_bytes=100
    )
    assert (result.ok, result.error_type) == (False, "policy")
    assert "nothing was written" in (result.error or "")
    assert not (tmp_path / "big.txt").exists()
    missing = await call(allowing(tmp_path), "http_download", url=f"{site.url}/missing", path="m")
    assert not missing.ok
    assert "404" in (missing.error or "")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/tmp/evil.txt", "a/../../outside.txt", "link/evil.txt"]
)
async def test_http_download_path_attacks_are_refused_before_any_request(
    tmp_path: Path, site: Server, path: str
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "out").mkdir()
    (ws / "link").symlink_to(tmp_path / "out", target_is_directory=True)
    result = await call(allowing(ws), "http_download", url=f"{site.url}/page", path=path)
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert site.hits == []
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "outside.txt").exists()


# SSRF


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("http_fetch", {}),
        ("http_request", {"method": "POST", "json": {"a": 1}}),
        ("http_download", {"path": "f.txt"}),
    ],
)
async def test_every_network_tool_refuses_loopback_and_metadata(
    tmp_path: Path, site: Server, name: str, args: dict[str, Any]
) -> None:
    for url in (f"{site.url}/page", "http://169.254.169.254/latest/meta-data/"):
        result = await call(refusing(tmp_path), name, url=url, **args)
        assert (result.ok, result.error_type) == (False, "policy"), result.error
        assert "non-public address" in (result.error or "")
    assert site.hits == []
    assert not (tmp_path / "f.txt").exists()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("http_fetch", {}),
        ("http_request", {"method": "POST", "json": {"a": 1}}),
        ("http_download", {"path": "f.txt"}),
    ],
)
@pytest.mark.usefixtures("loopback_one_is_public")
async def test_a_redirect_from_a_public_site_to_a_private_address_is_refused(
    tmp_path: Path, site: Server, other: Server, name: str, args: dict[str, Any]
) -> None:
    for target in (f"{other.url}/page", "http://169.254.169.254/latest/meta-data/"):
        site.redirect_to = target
        result = await call(refusing(tmp_path), name, url=f"{site.url}/redirect307", **args)
        assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert [hit["path"] for hit in site.hits] == ["/redirect307", "/redirect307"]
    assert other.hits == []
    assert not (tmp_path / "f.txt").exists()


@pytest.mark.usefixtures("loopback_one_is_public")
async def test_the_public_looking_site_itself_is_reachable(tmp_path: Path, site: Server) -> None:
    result = await call(refusing(tmp_path), "http_fetch", url=f"{site.url}/page")
    assert result.ok, result.error


# web_search


@pytest.mark.usefixtures("no_env_keys")
async def test_web_search_without_a_provider_says_so(tmp_path: Path) -> None:
    result = await call(allowing(tmp_path), "web_search", query="go channels")
    assert (result.ok, result.error_type) == (False, "error")
    assert "no web search provider is configured" in (result.error or "")
    assert "BRAVE_API_KEY" in (result.error or "")


async def test_web_search_through_searxng(tmp_path: Path, site: Server) -> None:
    ctx = allowing(tmp_path, web_search=WebSearchConfig(provider="searxng", url=site.url))
    result = await call(ctx, "web_search", query="go channels", max_results=5)
    assert result.ok, result.error
    assert result.value == [
        {"title": "Channels - Go", "url": "https://go.dev/tour/channels", "snippet": "Typed."},
        {"title": "Effective Go", "url": "https://go.dev/doc/effective_go", "snippet": "Tips."},
    ]
    assert site.hits[0]["path"] == "/search?q=go+channels&format=json"
    one = await call(ctx, "web_search", query="go channels", max_results=1)
    assert len(one.value) == 1


async def test_web_search_searxng_endpoint_goes_through_the_ssrf_guard(
    tmp_path: Path, site: Server
) -> None:
    ctx = refusing(tmp_path, web_search=WebSearchConfig(provider="searxng", url=site.url))
    result = await call(ctx, "web_search", query="go channels")
    assert (result.ok, result.error_type) == (False, "policy")
    assert site.hits == []


async def _recorded(ctx: ToolContext, **args: Any) -> tuple[ToolResult, list[ToolCalled]]:
    events: list[ToolCalled] = []

    def record(event: ToolCalled) -> None:
        events.append(event)

    result = await run_tool_call(
        ToolRegistry(builtin_tools()), "web_search", args, ctx, record=record
    )
    return result, events


async def test_web_search_through_brave_keeps_the_key_out_of_events(
    tmp_path: Path, site: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAVE_API_KEY", SECRET)
    config = WebSearchConfig(provider="brave", url=f"{site.url}/res/v1/web/search")
    result, events = await _recorded(allowing(tmp_path, web_search=config), query="rust async")
    assert result.ok, result.error
    assert [r["title"] for r in result.value] == ["Brave one", "Brave two"]
    assert site.hits[0]["headers"]["x-subscription-token"] == SECRET
    assert "count=5" in site.hits[0]["path"]
    assert len(events) == 1
    assert SECRET not in events[0].model_dump_json()
    assert SECRET not in repr(config) and SECRET not in repr(allowing(tmp_path, web_search=config))


async def test_a_refused_brave_key_is_not_echoed(tmp_path: Path, site: Server) -> None:
    config = WebSearchConfig(
        provider="brave", url=f"{site.url}/res/v1/web/search", api_key="wrong-key-777"
    )
    result, events = await _recorded(allowing(tmp_path, web_search=config), query="q")
    assert not result.ok
    assert "refused the API key" in (result.error or "")
    assert "wrong-key-777" not in events[0].model_dump_json()


async def test_the_search_key_does_not_follow_a_redirect(
    tmp_path: Path, site: Server, other: Server
) -> None:
    site.redirect_to = f"{other.url}/res/v1/web/search"
    config = WebSearchConfig(provider="brave", url=f"{site.url}/redirect", api_key=SECRET)
    result, _ = await _recorded(allowing(tmp_path, web_search=config), query="q")
    assert not result.ok  # the other origin got no key, so it refused
    assert "x-subscription-token" not in other.hits[0]["headers"]
    assert SECRET not in (result.error or "")


async def test_web_search_through_tavily(
    tmp_path: Path, site: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    config = WebSearchConfig(provider="tavily", url=f"{site.url}/tavily")
    result, events = await _recorded(
        allowing(tmp_path, web_search=config), query="q", max_results=3
    )
    assert result.value == [{"title": "T", "url": "https://t.example/", "snippet": "Tav."}]
    assert site.hits[0]["method"] == "POST"
    assert json.loads(site.hits[0]["body"]) == {"query": "q", "max_results": 3}
    assert SECRET not in events[0].model_dump_json()


def test_web_search_settings(tmp_path: Path) -> None:
    settings = load_settings({}, env={"PLANWEAVE_WEB_SEARCH_URL": "http://searx.internal:8080"})
    config = settings.engine_kwargs(with_tools=False)["web_search"]
    assert config == WebSearchConfig(provider="searxng", url="http://searx.internal:8080")
    keyed = load_settings(
        {}, env={"PLANWEAVE_WEB_SEARCH_PROVIDER": "brave", "PLANWEAVE_WEB_SEARCH_API_KEY": "k9"}
    )
    assert keyed.engine_kwargs(with_tools=False)["web_search"].api_key == "k9"
    assert "k9" not in repr(keyed)
    assert "web_search" not in load_settings({}, env={}).engine_kwargs(with_tools=False)
    with pytest.raises(ConfigError, match="PLANWEAVE_WEB_SEARCH_URL"):
        load_settings({}, env={"PLANWEAVE_WEB_SEARCH_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="PLANWEAVE_WEB_SEARCH_PROVIDER"):
        load_settings({}, env={"PLANWEAVE_WEB_SEARCH_PROVIDER": "google"})
    with pytest.raises(ConfigError, match="needs web_search_url"):
        load_settings({}, env={"PLANWEAVE_WEB_SEARCH_PROVIDER": "searxng"}).engine_kwargs(
            with_tools=False
        )


# the registry

OURS = {
    "http_fetch",
    "http_request",
    "http_download",
    "web_search",
    "regex_extract",
    "text_diff",
    "text_stats",
    "text_chunk",
    "summarize",
    "json_query",
    "csv_query",
    "parse_data",
    "unit_convert",
    "date_parse",
    "date_add",
    "date_diff",
}


def test_builtin_tools_list_the_web_text_and_data_tools_with_valid_schemas() -> None:
    tools = {t.name: t for t in builtin_tools()}
    assert tools.keys() >= OURS
    for name in OURS:
        tool = tools[name]
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        assert tool.parameters["type"] == "object"
        assert tool.description, name
        assert sandbox_of(tool), name
        for prop, schema in tool.parameters["properties"].items():
            assert schema.get("description"), f"{name}.{prop} has no description"


async def test_a_job_searches_through_the_engines_provider(tmp_path: Path, site: Server) -> None:
    """``Engine(web_search=...)`` reaches the tool of a job's ``tool`` task, in the workers."""
    plan = Plan(
        tasks=(TaskSpec(id="s", kind="tool", tool="web_search", args={"query": "go channels"}),)
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        allow_private_network=True,
        web_search=WebSearchConfig(provider="searxng", url=site.url),
    ) as engine:
        result = await engine.run(plan=plan, allow_private_network=True)
    assert result.status == "succeeded", result.error
    assert "https://go.dev/tour/channels" in json.dumps(result.result)
    assert site.hits[0]["path"] == "/search?q=go+channels&format=json"
