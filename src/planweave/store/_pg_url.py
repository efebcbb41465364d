"""The Postgres store's URL: its options, the DSN asyncpg gets, the form shown to people, and
what a failed connection means for the person who wrote the URL.

A store URL carries a password; it must never reach a log line or an error message, so the
store shows only ``masked`` (the password replaced by ``***``) and keeps the DSN to itself.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from planweave.errors import ConfigError, StoreUnavailable

__all__ = ["PgUrl", "connect_error", "parse_url"]

SCHEMES: Final = ("postgresql", "postgres", "postgresql+asyncpg")
"""URL schemes the Postgres store accepts."""

_MASK: Final = "***"


@dataclass(frozen=True, slots=True)
class PgUrl:
    """A parsed store URL.

    Attributes:
        dsn: What asyncpg connects with (``postgresql://``, the password included, planweave's
            own options removed).
        masked: The URL as people see it: the password replaced by ``***``.
        where: ``host:port/database`` for messages.
        user: The user name, if the URL has one.
        database: The database name, if the URL has one.
        options: planweave's options from the query (``min_size``, ``max_size``,
            ``connect_timeout_s``, ``command_timeout_s``), as text.
    """

    dsn: str
    masked: str
    where: str
    user: str | None
    database: str | None
    options: dict[str, str]


OPTIONS: Final = frozenset({"min_size", "max_size", "connect_timeout_s", "command_timeout_s"})
"""Query options the store reads itself; any other is passed on to asyncpg (``sslmode``…)."""


def parse_url(url: str) -> PgUrl:
    """Split ``url`` into what asyncpg needs and what people may see.

    Raises:
        ConfigError: not a ``postgresql://`` URL, or its port is not a number.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"bad PostgreSQL store URL {_mask_raw(url)!r}: {exc}; write "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.netloc:
        raise ConfigError(
            f"bad PostgreSQL store URL {_mask_raw(url)!r}: write "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in OPTIONS}
    passed = urlencode([(k, v) for k, v in query if k not in OPTIONS])
    database = unquote(parts.path.lstrip("/")) or None
    host = parts.hostname or "localhost"
    where = f"{host}:{port or 5432}/{database or parts.username or ''}"
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, passed, ""))
    masked_netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        masked_netloc = f"{user}:{_MASK}@{hostport}"
    masked = urlunsplit((parts.scheme, masked_netloc, parts.path, parts.query, ""))
    user_name = unquote(parts.username) if parts.username else None
    return PgUrl(dsn, masked, where, user_name, database, options)


def _mask_raw(url: str) -> str:
    """``url`` with anything between ``://user:`` and ``@`` hidden, for a URL too broken to
    parse."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    return f"{head}://{userinfo.partition(':')[0]}:{_MASK}@{hostpart}"


def connect_error(url: PgUrl, exc: BaseException, timeout_s: float) -> Exception:
    """The planweave error for a failed first connection, saying what to fix.

    A mistake in the URL (wrong password, unknown user or database, a host that does not
    resolve or answer) is a ``ConfigError``; anything else ``StoreUnavailable``.
    """
    shown = url.masked
    user = url.user or "(default)"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return ConfigError(
            f"PostgreSQL at {url.where} refused the password of user {user!r}: "
            f"check the user and password in the store URL {shown}"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return ConfigError(
            f"PostgreSQL at {url.where} refused user {user!r} ({exc}): check the user in the "
            f"store URL {shown}, or let that user connect (pg_hba.conf)"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        name = url.database or url.user or "(default)"
        return ConfigError(
            f"PostgreSQL at {url.where} has no database {name!r}: create it "
            f"(createdb {name}) or fix the database in the store URL {shown}"
        )
    if isinstance(exc, socket.gaierror):
        return ConfigError(
            f"cannot find the PostgreSQL host of {shown} ({exc.strerror or exc}): "
            "check the host name in the store URL"
        )
    if isinstance(exc, TimeoutError):
        return ConfigError(
            f"PostgreSQL at {url.where} did not answer within {timeout_s:g} s: check the host "
            f"and port in the store URL {shown} and that the server is reachable"
        )
    if isinstance(exc, OSError):
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = exc.strerror or str(exc) or type(exc).__name__
        return ConfigError(
            f"cannot reach PostgreSQL at {url.where} ({reason}): check the host and port in "
            f"the store URL {shown} and that the server is running"
        )
    error = StoreUnavailable(f"PostgreSQL store {shown}: cannot connect: {exc}")
    error.__cause__ = exc
    return error
