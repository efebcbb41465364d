"""Pure ASGI middleware: security headers and a last-resort 500, body limits, auth, rate limits
(per token, and of failed authentications per client address).

Written against raw ASGI (not ``BaseHTTPMiddleware``) so that streamed responses (SSE) pass
through untouched, and so that a request is refused before the app reads or parses a byte of it:
a missing token is a 401 and an oversize body a 413 whatever the route would have done with it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from planweave.config import hash_token
from planweave.server._auth import MAX_TOKEN_CHARS, TokenRegistry, bearer_token
from planweave.server._errors import ErrorCode, dumps, error_payload

__all__ = [
    "AuthMiddleware",
    "BodyLimitMiddleware",
    "SecurityHeadersMiddleware",
    "TokenBucketLimiter",
    "client_key",
]

log = logging.getLogger("planweave.server")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
METRICS_PATH = "/metrics"
DEFAULT_TENANT = "default"


def _with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    return [*headers, *(h for h in SECURITY_HEADERS if h[0] not in present)]


async def send_error(
    send: Send,
    status: int,
    code: ErrorCode,
    message: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    websocket: bool = False,
) -> None:
    """Answer with the JSON error shape straight from ASGI (a WebSocket gets an HTTP denial)."""
    body = dumps(error_payload(code, message))
    prefix = "websocket.http.response" if websocket else "http.response"
    await send(
        {
            "type": f"{prefix}.start",
            "status": status,
            "headers": _with_security_headers(
                [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ]
            ),
        }
    )
    await send({"type": f"{prefix}.body", "body": body, "more_body": False})


class SecurityHeadersMiddleware:
    """Adds the security headers to every response and turns an escaped exception into a
    JSON 500 (logged with its traceback; the caller learns nothing of it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                started = True
                message = {**message, "headers": _with_security_headers(message["headers"])}
            elif kind in ("websocket.accept", "websocket.close"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method", "WS"), scope["path"])
            if started:
                raise
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011})
            else:
                await send_error(send, 500, "internal", "internal error")


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413: upfront by ``Content-Length``, and by
    counting the bytes of a streamed (chunked) body as the app reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        message = f"the request body is over the limit of {limit} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await send_error(send, 400, "validation_error", "bad Content-Length")
                    return
                if length > limit:
                    await send_error(send, 413, "payload_too_large", message)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, message)
            return received

        async def send_wrapper(out: Message) -> None:
            nonlocal started
            if out["type"] == "http.response.start":
                started = True
            await send(out)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await send_error(send, 413, "payload_too_large", message)


class TokenBucketLimiter:
    """One token bucket per key: ``rate_per_s`` refill, ``burst`` capacity.

    At most ``MAX_KEYS`` buckets are kept: full ones are dropped first (they hold nothing a
    fresh bucket would not), then the oldest.
    """

    MAX_KEYS = 10_000

    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one request from ``key``'s bucket; return 0 if allowed, else seconds to wait."""
        if self.rate_per_s <= 0:
            return 0.0
        now = self._clock()
        tokens = self._level(key, now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._prune()
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate_per_s

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may take one again (0: it may now); takes nothing."""
        if self.rate_per_s <= 0 or key not in self._buckets:
            return 0.0
        tokens = self._level(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate_per_s)

    def _prune(self) -> None:
        if len(self._buckets) <= self.MAX_KEYS:
            return
        now = self._clock()
        full = self.burst / self.rate_per_s
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= full:
                del self._buckets[key]
        while len(self._buckets) > self.MAX_KEYS:
            del self._buckets[next(iter(self._buckets))]


def client_key(scope: Scope) -> str:
    """The key of a request's client address for failure limits: the address itself, or its
    /64 network for IPv6 (one host is given a whole /64)."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "a:" + host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "a:" + str(address.ipv4_mapped)
        return "a:" + str(ipaddress.ip_network(f"{address}/64", strict=False))
    return "a:" + str(address)


class AuthMiddleware:
    """Finds the tenant of a request's bearer token (401 without a valid one), then applies
    the token's rate limit (429 with ``Retry-After``).

    Failed authentications (no token, or an unknown one) are limited per client address by
    ``failures``: once an address has used its budget, every request from it that needs a token
    is answered 429 until the budget refills, before its token is even looked at, so guessing
    goes no faster with a valid token among the guesses. A valid token takes nothing from it.

    ``/metrics`` counts every tenant's work, so it takes the metrics token (``metrics_hash``,
    the setting ``metrics_token``) and nothing else: a tenant's token gets 403. Without a
    metrics token it is open in ``open_mode`` (one tenant, this machine only) and no token
    reads it otherwise.

    With ``open_mode`` (no tokens configured, loopback only) every request is tenant
    ``default``. The tenant goes to ``scope["state"]["tenant"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: TokenRegistry,
        limiter: TokenBucketLimiter,
        failures: TokenBucketLimiter,
        open_mode: bool,
        metrics_hash: str | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.limiter = limiter
        self.failures = failures
        self.open_mode = open_mode
        self.metrics_hash = metrics_hash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        websocket = kind == "websocket"
        if path == METRICS_PATH:
            await self._metrics(scope, receive, send)
            return
        if self.open_mode:
            tenant: str | None = DEFAULT_TENANT
            token_name = ""
            key = DEFAULT_TENANT
        else:
            address = client_key(scope)
            if await self._blocked(scope, send, address, websocket):
                return
            token = bearer_token(scope["headers"], scope.get("query_string") if websocket else None)
            found = self.registry.identify(token) if token else None
            if found is None:
                await self._unauthorized(scope, send, address, websocket)
                return
            tenant, token_name = found
            key = "t:" + _fingerprint(token or "")
        if not await self._within_rate(scope, send, key, websocket):
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["tenant"] = tenant
        state["token_name"] = token_name
        await self.app(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics_hash is None and self.open_mode:
            if await self._within_rate(scope, send, DEFAULT_TENANT, False):
                await self.app(scope, receive, send)
            return
        address = client_key(scope)
        if await self._blocked(scope, send, address, False):
            return
        token = bearer_token(scope["headers"])
        digest = hash_token(token).encode() if token and len(token) <= MAX_TOKEN_CHARS else b""
        if self.metrics_hash is not None and hmac.compare_digest(
            digest, self.metrics_hash.encode()
        ):
            if await self._within_rate(scope, send, "m:metrics", False):
                await self.app(scope, receive, send)
            return
        if token and self.registry.tenant_for(token) is not None:
            await send_error(
                send,
                403,
                "forbidden",
                "/metrics counts every tenant's work: it takes the metrics token (the server "
                "setting metrics_token), not a tenant's",
            )
            return
        await self._unauthorized(scope, send, address, False)

    async def _blocked(self, scope: Scope, send: Send, address: str, websocket: bool) -> bool:
        wait_s = self.failures.wait_s(address)
        if wait_s <= 0:
            return False
        await self._deny(
            scope,
            send,
            429,
            "rate_limited",
            "too many failed authentications from this address; wait before trying again",
            [(b"retry-after", str(max(1, math.ceil(wait_s))).encode())],
            websocket,
        )
        return True

    async def _unauthorized(self, scope: Scope, send: Send, address: str, websocket: bool) -> None:
        self.failures.take(address)
        await self._deny(
            scope,
            send,
            401,
            "unauthorized",
            "a valid API token is required (Authorization: Bearer <token>)",
            [(b"www-authenticate", b'Bearer realm="planweave"')],
            websocket,
        )

    async def _within_rate(self, scope: Scope, send: Send, key: str, websocket: bool) -> bool:
        wait_s = self.limiter.take(key)
        if wait_s <= 0:
            return True
        retry = str(max(1, math.ceil(wait_s))).encode()
        await self._deny(
            scope,
            send,
            429,
            "rate_limited",
            "too many requests for this token; slow down",
            [(b"retry-after", retry)],
            websocket,
        )
        return False

    @staticmethod
    async def _deny(
        scope: Scope,
        send: Send,
        status: int,
        code: ErrorCode,
        message: str,
        headers: list[tuple[bytes, bytes]],
        websocket: bool,
    ) -> None:
        if websocket and "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 4401 if status == 401 else 4429})
            return
        await send_error(send, status, code, message, headers=headers, websocket=websocket)


def _fingerprint(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]
