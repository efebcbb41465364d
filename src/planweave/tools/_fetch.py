"""Fetch a web page (or call an HTTP API) for an agent without letting it reach private networks.

Each hop is checked with :func:`check_url` and then fetched from exactly the address that was
checked: the request goes to the IP literal, with the original ``Host`` header and, for https,
the original name as SNI and certificate host. Redirects are followed by hand so every hop is
checked again, and the body is streamed and cut at a byte limit under one overall deadline.

The limit holds for the decoded body: the raw bytes are decompressed here, incrementally, never
asked for more output than the bytes left, so a small gzip body that inflates to gigabytes costs
no more than the limit. Stacked encodings (``gzip, gzip``: a bomb of bombs) and encodings other
than gzip and deflate are refused (the request asks for ``identity`` anyway).

:func:`request_url` is the general form every network tool uses (a method, headers and a body):
the headers a caller adds are dropped when a redirect leaves the origin, so a credential sent to
one host never reaches another, and a 301/302/303 redirect of a request with a body goes on as a
bodyless GET, as browsers do.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from planweave.errors import ToolError
from planweave.tools._net import AddressPolicy, IPAddress, check_url, redirect_target

__all__ = ["MAX_REDIRECTS", "HttpResponse", "fetch_url", "request_url"]

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "planweave-http-fetch/0.1"
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


@dataclass(frozen=True)
class _Hop:
    status: int
    content_type: str
    location: str | None
    body: bytes
    truncated: bool
    encoding: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Send:
    """What one request sends besides its URL."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None


@dataclass(frozen=True)
class HttpResponse:
    """The final response of :func:`request_url` (redirects followed).

    Attributes:
        url: The URL that answered, after redirects.
        status: Its HTTP status code.
        content_type: Its ``Content-Type`` header ("" when absent).
        body: The decoded body, cut at the byte limit.
        truncated: Whether the body was longer than the limit.
        encoding: The text encoding the response declares (UTF-8 by default).
        headers: The response headers, lower-cased names, in order.
    """

    url: str
    status: int
    content_type: str
    body: bytes
    truncated: bool
    encoding: str
    headers: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        """The body as text, in the declared encoding (bad bytes replaced)."""
        return _decode(self.body, self.encoding)


def _pinned_request(
    url: str, ip: IPAddress, timeout_s: float, send: _Send | None = None
) -> httpx.Request:
    send = send or _Send()
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(ip))
    host_header = original.netloc.decode("ascii").rsplit("@", 1)[-1]
    extensions: dict[str, Any] = {"timeout": dict.fromkeys(_TIMEOUT_KEYS, timeout_s)}
    if original.scheme == "https":
        extensions["sni_hostname"] = original.raw_host.decode("ascii")
    headers = {"Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
    headers.update(dict(send.headers))
    headers["Host"] = host_header  # last: a caller's header never redirects the connection
    return httpx.Request(
        send.method, pinned, headers=headers, content=send.content, extensions=extensions
    )


async def _get(
    transport: httpx.AsyncBaseTransport,
    url: str,
    ip: IPAddress,
    max_bytes: int,
    timeout_s: float,
    send: _Send | None = None,
) -> _Hop:
    # The transport, not a client: a client would parse the Location header itself (and fail on
    # hosts it cannot parse) and would honour proxy settings from the environment.
    response = await transport.handle_async_request(_pinned_request(url, ip, timeout_s, send))
    try:
        location = response.headers.get("location")
        if response.status_code in _REDIRECT_STATUSES and location:
            return _Hop(response.status_code, "", location, b"", False, "utf-8")
        decoder = _decoder(response.headers.get("content-encoding", ""), url)
        chunks: list[bytes] = []
        size = 0
        raw_size = 0
        truncated = False
        async for raw in response.aiter_raw():
            raw_size += len(raw)
            chunk = decoder.decode(raw, max_bytes + 1 - size)
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes or raw_size > max_bytes + _RAW_SLACK:
                truncated = True
                break
        body = b"".join(chunks)[:max_bytes]
        content_type = response.headers.get("content-type", "")
        headers = tuple((k.lower(), v) for k, v in response.headers.items())
        return _Hop(
            response.status_code,
            content_type,
            None,
            body,
            truncated,
            response.encoding or "utf-8",
            headers,
        )
    finally:
        await response.aclose()


_RAW_SLACK = 1 << 16
"""Raw bytes read beyond the limit before giving up on a body that decodes to little."""


class _Decoder:
    """Decodes one content coding, producing at most the bytes asked for per call."""

    def __init__(self, coding: str, url: str) -> None:
        self.coding = coding
        self.url = url
        if coding == "identity":
            self._zlib = None
        elif coding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._first = True

    def decode(self, data: bytes, max_out: int) -> bytes:
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(data, max_out)
        except zlib.error as exc:
            if not (self._first and self.coding == "deflate"):
                raise ToolError(
                    f"cannot decode the {self.coding} body of {self.url!r}: {exc}"
                ) from None
            # "deflate" is often sent raw, without the zlib header: try that once.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            return self.decode(data, max_out)
        self._first = False
        # Whatever did not fit stays in unconsumed_tail: the caller stops at the limit.
        return out


def _decoder(header: str, url: str) -> _Decoder:
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1:
        raise ToolError(
            f"refusing the response of {url!r}: it is encoded several times over "
            f"({header!r}), which only a decompression bomb needs"
        )
    if not codings:
        return _Decoder("identity", url)
    coding = "gzip" if codings[0] == "x-gzip" else codings[0]
    if coding not in ("gzip", "deflate"):
        raise ToolError(
            f"refusing the response of {url!r}: unsupported content encoding {coding!r}"
        )
    return _Decoder(coding, url)


def _decode(body: bytes, encoding: str) -> str:
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


async def _fetch_hop(
    transport: httpx.AsyncBaseTransport,
    url: str,
    addresses: list[IPAddress],
    max_bytes: int,
    timeout_s: float,
    send: _Send | None = None,
) -> _Hop:
    last: httpx.TransportError | None = None
    for ip in addresses:
        try:
            return await _get(transport, url, ip, max_bytes, timeout_s, send)
        except httpx.ConnectError as exc:
            last = exc
    raise ToolError(f"cannot connect to {url!r}: {last}", retryable=True)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return (parsed.scheme, parsed.host, parsed.port)


def _next_send(send: _Send, status: int, current: str, target: str) -> _Send:
    """What a redirect from ``current`` to ``target`` sends: a caller's headers stay on the
    origin, and 301/302/303 turn a request with a body into a GET."""
    method, content = send.method, send.content
    if (status == 303 and method != "HEAD") or (
        status in (301, 302) and method not in ("GET", "HEAD")
    ):
        method, content = "GET", None
    headers = send.headers
    try:
        same_origin = _origin(current) == _origin(target)
    except httpx.InvalidURL:
        same_origin = False
    if not same_origin or content is None:
        headers = tuple(
            (k, v)
            for k, v in headers
            if same_origin and k.lower() not in ("content-type", "content-length")
        )
    return _Send(method=method, headers=headers, content=content)


async def request_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    policy: AddressPolicy | None = None,
) -> HttpResponse:
    """Send one request within the network policy, following redirects, and read the answer.

    Every hop is checked with :func:`check_url` first and connected to at exactly the checked
    address. The caller's ``headers`` go only to the first URL's origin; a 301, 302 or 303
    redirect of a request with a body continues as a GET without it.

    Args:
        url: An absolute http or https URL.
        max_bytes: Most body bytes to read; the body is cut there.
        timeout_s: Deadline for the whole exchange, redirects included.
        allow_private: Let the request reach non-public addresses.
        method: The HTTP method.
        headers: Headers to add (``Host`` cannot be set).
        content: The request body.
        policy: Replace the address check (see :func:`check_url`).

    Raises:
        PolicyViolation: A hop breaks the policy (nothing is sent to that hop).
        ToolError: The request failed; ``retryable`` for timeouts and network errors.
    """
    current = url
    send = _Send(method=method.upper(), headers=tuple((headers or {}).items()), content=content)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncHTTPTransport(retries=0) as transport,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                addresses = await check_url(current, allow_private, policy=policy)
                hop = await _fetch_hop(transport, current, addresses, max_bytes, timeout_s, send)
                if hop.location is None:
                    return HttpResponse(
                        url=current,
                        status=hop.status,
                        content_type=hop.content_type,
                        body=hop.body,
                        truncated=hop.truncated,
                        encoding=hop.encoding,
                        headers=hop.headers,
                    )
                target = redirect_target(current, hop.location)
                send = _next_send(send, hop.status, current, target)
                current = target
    except TimeoutError:
        raise ToolError(
            f"fetching {url!r} took longer than {timeout_s:g} s", retryable=True
        ) from None
    except httpx.TimeoutException:
        raise ToolError(f"fetching {current!r} timed out", retryable=True) from None
    except httpx.HTTPError as exc:
        raise ToolError(f"fetching {current!r} failed: {exc}", retryable=True) from None
    raise ToolError(f"too many redirects fetching {url!r} (more than {MAX_REDIRECTS})")


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool,
    policy: AddressPolicy | None = None,
) -> dict[str, Any]:
    """GET ``url`` within the network policy and return what an agent needs of the response.

    Args:
        url: An absolute http or https URL.
        max_bytes: Most body bytes to read; the text is cut there.
        timeout_s: Deadline for the whole fetch, redirects included.
        allow_private: Let the fetch reach non-public addresses.
        policy: Replace the address check (see :func:`check_url`).

    Returns:
        ``{"url", "status", "content_type", "text", "truncated"}`` of the final response.

    Raises:
        PolicyViolation: A hop breaks the policy (nothing is sent to that hop).
        ToolError: The fetch failed; ``retryable`` for timeouts and network errors.
    """
    response = await request_url(
        url, max_bytes=max_bytes, timeout_s=timeout_s, allow_private=allow_private, policy=policy
    )
    return {
        "url": response.url,
        "status": response.status,
        "content_type": response.content_type,
        "text": response.text,
        "truncated": response.truncated,
    }
