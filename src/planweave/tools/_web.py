"""HTTP tools: read a page as Markdown, call a JSON API, download a file into the workspace.

All three send their requests through :func:`~planweave.tools._fetch.request_url`, so each hop,
redirects included, passes the one network guard (``_net.check_url``) and is connected to at the
address that was checked. Pages are reduced to their main content (navigation, scripts and
boilerplate dropped) by trafilatura, so a model reads the article rather than the menu.
"""

from __future__ import annotations

import asyncio
import hashlib
import json as jsonlib
import posixpath
from collections.abc import Mapping
from typing import Any, Literal

from planweave.errors import PolicyViolation, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool
from planweave.tools._fetch import HttpResponse, request_url
from planweave.tools._paths import resolve_in_workspace, write_workspace_file

__all__ = ["html_to_markdown", "http_download", "http_fetch", "http_request"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)
_HIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "set-cookie2"})
MAX_REQUEST_HEADERS = 50
MAX_REQUEST_BODY_BYTES = 1_000_000
MAX_RESPONSE_HEADERS = 50

_NETWORK_SANDBOX = (
    "http and https only, through the SSRF guard: loopback, private, link-local (cloud "
    "metadata 169.254.169.254) and other non-public addresses are refused unless the job allows "
    "private networks, every redirect is checked again, and the body is cut at the job's limit"
)


def _limit(max_bytes: int | None, cap: int) -> int:
    limit = cap if max_bytes is None else min(max_bytes, cap)
    if limit <= 0:
        raise ToolError("max_bytes must be positive")
    return limit


def _is_html(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def html_to_markdown(html: str, *, url: str | None = None, markdown: bool = True) -> dict[str, str]:
    """The main content of an HTML page, as Markdown (or plain text), and its title.

    Navigation, scripts, styles, footers and other boilerplate are left out; a page with no
    recognisable main content falls back to all of its visible text.

    Returns:
        ``{"title", "text"}`` (the title is "" when the page has none).
    """
    import trafilatura

    text = trafilatura.extract(
        html,
        url=url,
        output_format="markdown" if markdown else "txt",
        include_links=markdown,
        include_formatting=markdown,
        include_tables=True,
        include_comments=False,
        favor_recall=True,
    )
    if not text:
        text = trafilatura.html2txt(html) or ""
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = metadata.title if metadata is not None and metadata.title else ""
    return {"title": title, "text": text.strip()}


@tool(timeout_s=60.0, sandbox=_NETWORK_SANDBOX)
async def http_fetch(
    url: str,
    ctx: ToolContext,
    max_bytes: int | None = None,
    format: Literal["markdown", "text", "raw"] = "markdown",
) -> dict[str, Any]:
    """Fetch a web page over http or https and return its status, content type and text.

    An HTML page is reduced to its main content (no menus, scripts or footers) as Markdown with
    links, and its title is returned too. Private, loopback and link-local addresses are
    refused unless the job allows them.

    Args:
        url: Absolute http or https URL.
        max_bytes: Most bytes of the body to read (capped by the job's limit).
        format: For HTML pages: "markdown" (main content with links and headings), "text"
            (main content as plain text) or "raw" (the HTML itself).
    """
    limit = _limit(max_bytes, ctx.max_fetch_bytes)
    response = await request_url(
        url,
        max_bytes=limit,
        timeout_s=ctx.http_timeout_s,
        allow_private=ctx.allow_private_network,
    )
    result: dict[str, Any] = {
        "url": response.url,
        "status": response.status,
        "content_type": response.content_type,
        "text": response.text,
        "truncated": response.truncated,
    }
    if format != "raw" and _is_html(response.content_type):
        page = await asyncio.to_thread(
            html_to_markdown, response.text, url=response.url, markdown=format == "markdown"
        )
        result["title"] = page["title"]
        result["text"] = page["text"]
    return result


def _writes(args: Mapping[str, Any]) -> bool:
    """Whether an ``http_request`` call may change something remotely (anything but GET/HEAD)."""
    return str(args.get("method", "GET")).upper() not in ("GET", "HEAD")


def _request_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name.strip().lower() in _FORBIDDEN_HEADERS:
            raise ToolError(f"header {name!r} cannot be set: the tool sets it itself")
        if any(c in name + value for c in "\r\n\x00"):
            raise PolicyViolation(f"header {name!r} contains a line break or NUL")
        out[name.strip()] = value
    if len(out) > MAX_REQUEST_HEADERS:
        raise ToolError(f"at most {MAX_REQUEST_HEADERS} headers may be sent")
    return out


def _response_headers(response: HttpResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in response.headers:
        if name in _HIDDEN_RESPONSE_HEADERS or len(out) >= MAX_RESPONSE_HEADERS:
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


@tool(timeout_s=60.0, high_impact=_writes, sandbox=_NETWORK_SANDBOX)
async def http_request(
    url: str,
    ctx: ToolContext,
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET",
    headers: dict[str, str] | None = None,
    json: Any = None,
    body: str | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Call an HTTP API: send a request with a method, headers and a JSON or text body.

    Returns the status, the response headers (without cookies) and the body, parsed when it is
    JSON. Any method other than GET and HEAD needs a person's approval by default.

    Args:
        url: Absolute http or https URL.
        method: HTTP method.
        headers: Request headers, e.g. {"Accept": "application/json"}.
        json: A JSON value to send as the body (Content-Type: application/json).
        body: A text body to send instead of json.
        max_bytes: Most bytes of the response body to read (capped by the job's limit).
    """
    if json is not None and body is not None:
        raise ToolError("give json or body, not both")
    sent = _request_headers(headers)
    content: bytes | None = None
    if json is not None:
        content = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
        if not any(k.lower() == "content-type" for k in sent):
            sent["Content-Type"] = "application/json"
    elif body is not None:
        content = body.encode("utf-8")
    if content is not None and len(content) > MAX_REQUEST_BODY_BYTES:
        raise ToolError(f"the request body is over {MAX_REQUEST_BODY_BYTES} bytes")
    response = await request_url(
        url,
        max_bytes=_limit(max_bytes, ctx.max_fetch_bytes),
        timeout_s=ctx.http_timeout_s,
        allow_private=ctx.allow_private_network,
        method=method,
        headers=sent,
        content=content,
    )
    result: dict[str, Any] = {
        "url": response.url,
        "status": response.status,
        "content_type": response.content_type,
        "headers": _response_headers(response),
        "truncated": response.truncated,
    }
    if _is_json(response.content_type) and not response.truncated and response.body:
        try:
            result["json"] = jsonlib.loads(response.text)
            return result
        except ValueError:
            pass
    result["text"] = response.text
    return result


@tool(
    timeout_s=120.0,
    sandbox=_NETWORK_SANDBOX + "; the file is written inside the workspace only (no '..', "
    "absolute paths or symlinks out), and a body over the size cap writes nothing",
)
async def http_download(
    url: str, path: str, ctx: ToolContext, max_bytes: int | None = None
) -> dict[str, Any]:
    """Download a URL to a file in the job's workspace (replacing it if it exists).

    A response that is not 2xx, or larger than the size cap, writes nothing.

    Args:
        url: Absolute http or https URL.
        path: Workspace path of the file to write, e.g. "data/report.pdf".
        max_bytes: Largest download accepted (capped by the job's file size limit).
    """
    limit = _limit(max_bytes, ctx.max_file_bytes)
    # Refused before any request is sent.
    await asyncio.to_thread(resolve_in_workspace, ctx.workspace, path, must_exist=False)
    response = await request_url(
        url,
        max_bytes=limit,
        timeout_s=ctx.http_timeout_s,
        allow_private=ctx.allow_private_network,
    )
    if not 200 <= response.status < 300:
        raise ToolError(f"{response.url!r} answered HTTP {response.status}; nothing was written")
    if response.truncated:
        raise PolicyViolation(
            f"{response.url!r} sent more than {limit} bytes, over the download limit; nothing "
            "was written"
        )
    await asyncio.to_thread(
        write_workspace_file,
        ctx.workspace,
        path,
        response.body,
        max_bytes=limit,
        max_depth=ctx.max_dir_depth,
    )
    return {
        "path": posixpath.normpath(path),
        "bytes": len(response.body),
        "sha256": hashlib.sha256(response.body).hexdigest(),
        "content_type": response.content_type,
        "url": response.url,
    }
