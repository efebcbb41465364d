"""Bearer tokens, each mapped to a tenant; only their SHA-256 is ever stored.

Tokens come from three places: ``<data_dir>/tokens.json`` (written by ``planweave token create``
and re-read when it changes), the ``[tokens]`` table of ``planweave.toml`` (hashes) and
``PLANWEAVE_TOKENS`` (plaintext pairs, hashed as they are read). A presented token is hashed and
compared with every known hash in constant time, so neither the token nor the time taken says
which tenant is near a match.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planweave.config import Settings, hash_token
from planweave.errors import ConfigError

__all__ = [
    "TOKEN_FILE",
    "TokenRecord",
    "TokenRegistry",
    "add_token",
    "new_token",
    "read_token_file",
    "remove_token",
]

TOKEN_FILE = "tokens.json"
TOKEN_PREFIX = "pw_"
MAX_TOKEN_CHARS = 512
RELOAD_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: its id (for revoking), its tenant and the hash of its text."""

    id: str
    tenant: str
    sha256: str
    created_at: float


def new_token() -> str:
    """A new random token: ``pw_`` and 32 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def read_token_file(path: Path) -> list[TokenRecord]:
    """The tokens stored in ``path`` (none when it does not exist).

    Raises:
        ConfigError: The file is not a token file.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the token file {str(path)!r}: {exc}") from None
    entries = raw.get("tokens") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected an object with a 'tokens' list")
    records = []
    for entry in entries:
        try:
            records.append(
                TokenRecord(
                    id=str(entry["id"]),
                    tenant=str(entry["tenant"]),
                    sha256=str(entry["sha256"]),
                    created_at=float(entry.get("created_at", 0.0)),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"{path}: malformed token entry") from None
    return records


def _write_token_file(path: Path, records: list[TokenRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "tokens": [
            {"id": r.id, "tenant": r.tenant, "sha256": r.sha256, "created_at": r.created_at}
            for r in records
        ]
    }
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def add_token(path: Path, tenant: str) -> tuple[str, TokenRecord]:
    """Make a token for ``tenant``, store its hash in ``path``; return the token and record."""
    token = new_token()
    record = TokenRecord(
        id=secrets.token_hex(4), tenant=tenant, sha256=hash_token(token), created_at=time.time()
    )
    _write_token_file(path, [*read_token_file(path), record])
    return token, record


def remove_token(path: Path, token_id: str) -> bool:
    """Forget the stored token with this id; ``False`` when there is none."""
    records = read_token_file(path)
    kept = [r for r in records if r.id != token_id]
    if len(kept) == len(records):
        return False
    _write_token_file(path, kept)
    return True


class TokenRegistry:
    """Answers which tenant a presented token belongs to.

    Args:
        static: Token hashes (``sha256:<hex>``) by tenant, from settings.
        file: The token file to read (and re-read when it changes), if any.
    """

    def __init__(self, static: dict[str, tuple[str, ...]], file: Path | None = None) -> None:
        self._static = [(h, tenant, h[:15]) for tenant, hashes in static.items() for h in hashes]
        self._file = file
        self._file_mtime: float | None = None
        self._file_hashes: list[tuple[str, str, str]] = []
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._reload(force=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRegistry:
        return cls(settings.tokens, settings.data_dir / TOKEN_FILE)

    @property
    def empty(self) -> bool:
        """No token is configured anywhere (the server then runs without auth)."""
        self._reload()
        return not self._static and not self._file_hashes

    def tenant_for(self, token: str) -> str | None:
        """The tenant of ``token``, or ``None`` when it is unknown."""
        found = self.identify(token)
        return None if found is None else found[0]

    def identify(self, token: str) -> tuple[str, str] | None:
        """The tenant of ``token`` and the token's name (its id in the token file, or the
        start of its hash for a token from settings), or ``None`` when it is unknown."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        self._reload()
        digest = hash_token(token).encode()
        found: tuple[str, str] | None = None
        for known, tenant, name in (*self._static, *self._file_hashes):
            if hmac.compare_digest(digest, known.encode()) and found is None:
                found = (tenant, name)
        return found

    def _reload(self, *, force: bool = False) -> None:
        if self._file is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked_at = now
            try:
                mtime: float | None = self._file.stat().st_mtime
            except OSError:
                mtime = None
            if mtime == self._file_mtime and not force:
                return
            records = read_token_file(self._file) if mtime is not None else []
            self._file_hashes = [(r.sha256, r.tenant, r.id) for r in records]
            self._file_mtime = mtime


def bearer_token(headers: list[tuple[bytes, bytes]], query: bytes | None = None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or of ``?access_token=`` when allowed."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    if query:
        from urllib.parse import parse_qs

        values = parse_qs(query.decode("latin-1")).get("access_token")
        if values:
            return values[0]
    return None


def describe(records: list[TokenRecord]) -> list[dict[str, Any]]:
    """Token records without their hashes, for listing."""
    return [{"id": r.id, "tenant": r.tenant, "created_at": r.created_at} for r in records]
