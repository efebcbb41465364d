"""Fetch a web page for an agent without letting it reach private networks.

Each hop is checked with :func:`check_url` and then fetched from exactly the address that was
checked: the request goes to the IP literal, with the original ``Host`` header and, for https,
the original name as SNI and certificate host. Redirects are followed by hand so every hop is
checked again, and the body is streamed and cut at a byte limit under one overall deadline.

The limit holds for the decoded body: the raw bytes are decompressed here, incrementally, never
asked for more output than the bytes left, so a small gzip body that inflates to gigabytes costs
no more than the limit. Stacked encodings (``gzip, gzip``: a bomb of bombs) and encodings other
than gzip and deflate are refused (the request asks for ``identity`` anyway).
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import httpx

from planweave.errors import ToolError
from planweave.tools._net import AddressPolicy, IPAddress, check_url, redirect_target

__all__ = ["MAX_REDIRECTS", "fetch_url"]

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


def _pinned_request(url: str, ip: IPAddress, timeout_s: float) -> httpx.Request:
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(ip))
    host_header = original.netloc.decode("ascii").rsplit("@", 1)[-1]
    extensions: dict[str, Any] = {"timeout": dict.fromkeys(_TIMEOUT_KEYS, timeout_s)}
    if original.scheme == "https":
        extensions["sni_hostname"] = original.raw_host.decode("ascii")
    headers = {"Host": host_header, "Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
    return httpx.Request("GET", pinned, headers=headers, extensions=extensions)


async def _get(
    transport: httpx.AsyncBaseTransport, url: str, ip: IPAddress, max_bytes: int, timeout_s: float
) -> _Hop:
    # The transport, not a client: a client would parse the Location header itself (and fail on
    # hosts it cannot parse) and would honour proxy settings from the environment.
    response = await transport.handle_async_request(_pinned_request(url, ip, timeout_s))
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
        return _Hop(
            response.status_code, content_type, None, body, truncated, response.encoding or "utf-8"
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
) -> _Hop:
    last: httpx.TransportError | None = None
    for ip in addresses:
        try:
            return await _get(transport, url, ip, max_bytes, timeout_s)
        except httpx.ConnectError as exc:
            last = exc
    raise ToolError(f"cannot connect to {url!r}: {last}", retryable=True)


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
    current = url
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncHTTPTransport(retries=0) as transport,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                addresses = await check_url(current, allow_private, policy=policy)
                hop = await _fetch_hop(transport, current, addresses, max_bytes, timeout_s)
                if hop.location is None:
                    return {
                        "url": current,
                        "status": hop.status,
                        "content_type": hop.content_type,
                        "text": _decode(hop.body, hop.encoding),
                        "truncated": hop.truncated,
                    }
                current = redirect_target(current, hop.location)
    except TimeoutError:
        raise ToolError(
            f"fetching {url!r} took longer than {timeout_s:g} s", retryable=True
        ) from None
    except httpx.TimeoutException:
        raise ToolError(f"fetching {current!r} timed out", retryable=True) from None
    except httpx.HTTPError as exc:
        raise ToolError(f"fetching {current!r} failed: {exc}", retryable=True) from None
    raise ToolError(f"too many redirects fetching {url!r} (more than {MAX_REDIRECTS})")
