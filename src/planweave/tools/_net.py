"""Which addresses a tool may reach over the network (SSRF guard).

A URL is judged by the addresses its host resolves to, not by how the host is spelled: numeric
hosts in any legacy form (``2130706433``, ``0177.0.0.1``, ``0x7f.1``), IPv4-mapped and other
IPv6 forms that embed an IPv4 address, and names such as ``localhost`` are all normalised with
``ipaddress`` and judged the same way. Every address a name resolves to must be public; the
caller then connects to one of exactly those addresses, so a second DNS answer cannot swap in a
private one (DNS rebinding).

A job's policy may also name the hosts its tools may reach at all (its egress allowlist). The
tool runtime puts the calling job's allowlist in force around every tool call
(:func:`egress_in_force`), and :func:`check_url` applies it to every URL and every redirect
target it is shown, so every network tool, including one written later, is held to it without
passing anything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urljoin, urlsplit

import httpx

from planweave.errors import PolicyViolation, ToolError

__all__ = [
    "EgressRules",
    "IPAddress",
    "check_url",
    "egress_in_force",
    "host_matches",
    "is_public_address",
    "parse_host",
    "redirect_target",
    "resolve_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

ALLOWED_SCHEMES = ("http", "https")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")

EgressRules = Mapping[str, Sequence[str]]
"""Egress allowlists by the name of the policy rule that sets each: a host must be on all."""

_EGRESS: ContextVar[EgressRules | None] = ContextVar("planweave_egress", default=None)


@contextmanager
def egress_in_force(rules: EgressRules | None) -> Iterator[None]:
    """Hold every :func:`check_url` inside the block to ``rules`` (``None``: no allowlist)."""
    token = _EGRESS.set(rules)
    try:
        yield
    finally:
        _EGRESS.reset(token)


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: a name or address (exact, any case), a
    ``*.example.org`` wildcard (its subdomains, not the name itself) or ``*`` (any host)."""
    host = host.lower().strip("[]").rstrip(".")
    for pattern in patterns:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _check_egress(url: str, host: str) -> None:
    rules = _EGRESS.get()
    if rules is None:
        return
    for rule, patterns in rules.items():
        if not host_matches(host, patterns):
            raise PolicyViolation(
                f"refusing to fetch {url!r}: host {host!r} is not on this job's egress "
                f"allowlist (policy rule {rule}: {', '.join(patterns) or 'no hosts'})",
                rule=rule,
            )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address, safe to fetch from without special leave.

    Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud
    metadata address, fe80::/10), unspecified, multicast, reserved, shared CGNAT space
    (100.64/10), and IPv6 addresses that embed one of those (IPv4-mapped, 6to4, Teredo, NAT64).
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.scope_id:
            return False
    if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified:
        return False
    if ip.is_multicast or ip.is_reserved:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global


def parse_host(host: str) -> IPAddress | None:
    """The address a host literal stands for (any IPv4 spelling ``inet_aton`` accepts), or None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order, without duplicates."""
    literal = parse_host(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        retryable = exc.errno == socket.EAI_AGAIN
        raise ToolError(f"cannot resolve host {host!r}: {exc}", retryable=retryable) from None
    except UnicodeError:
        raise ToolError(f"invalid host name {host!r}") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise ToolError(f"host {host!r} has no addresses", retryable=True)
    return found


def _refuse(url: str, ip: IPAddress) -> PolicyViolation:
    return PolicyViolation(
        f"refusing to fetch {url!r}: it points to the non-public address {ip} "
        "(private networks are not allowed for this job)"
    )


async def check_url(
    url: str, allow_private: bool, *, policy: AddressPolicy | None = None
) -> list[IPAddress]:
    """Check a URL against the network policy and return the addresses to connect to.

    Args:
        url: An absolute http or https URL.
        allow_private: Skip the address check (loopback, private networks and so on allowed).
        policy: Replace :func:`is_public_address` as the address check.

    Returns:
        The addresses the host resolves to; connect only to these.

    The egress allowlist in force (:func:`egress_in_force`) applies too.

    Raises:
        PolicyViolation: The scheme is not http/https, the host is off the egress allowlist,
            or an address is not allowed.
        ToolError: The URL is malformed or the host cannot be resolved.
    """
    allowed = policy or is_public_address
    try:
        split = urlsplit(url)
        scheme = split.scheme.lower()
    except ValueError as exc:
        raise ToolError(f"invalid URL {url!r}: {exc}") from None
    if scheme not in ALLOWED_SCHEMES:
        raise PolicyViolation(
            f"refusing to fetch {url!r}: only http and https URLs are allowed, not {scheme!r}"
        )
    _check_egress(url, split.hostname or "")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx refuses some numeric hosts (0177.0.0.1) that other parsers accept: judge them too.
        literal = parse_host(split.hostname or "")
        if literal is not None and not allow_private and not allowed(literal):
            raise _refuse(url, literal) from None
        raise ToolError(f"invalid URL {url!r}: {exc}") from None
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ToolError(f"invalid URL {url!r}: it has no host")
    _check_egress(url, host)  # as httpx reads it too, should the two parsers disagree
    port = parsed.port or (443 if scheme == "https" else 80)
    addresses = await resolve_host(host, port)
    if not allow_private:
        for ip in addresses:
            if not allowed(ip):
                raise _refuse(url, ip)
    return addresses


def redirect_target(current: str, location: str) -> str:
    """The absolute URL a redirect from ``current`` to ``location`` leads to (fragment dropped).

    The result must be checked with :func:`check_url` again before it is fetched.
    """
    try:
        return str(httpx.URL(current).join(location.strip()).copy_with(fragment=None))
    except httpx.InvalidURL:
        # Let check_url judge (and refuse) what httpx cannot parse, such as 0177.0.0.1.
        return urljoin(current, location.strip()).split("#", 1)[0]
