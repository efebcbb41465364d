"""Checks made before a command creates or adopts a job, so a usage mistake exits 2 at once.

A missing API key, a model file that is not there or a data folder that cannot be written are
mistakes a user fixes by changing a setting; found only when the first task runs, they would
leave a failed job behind and exit 1. Each check raises a ``UsageError`` whose message names the
variable, file or folder to fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from planweave.errors import ModelUnavailable, UnknownBackend, UsageError

if TYPE_CHECKING:
    from planweave.config import Settings

__all__ = ["check_model", "check_model_url", "check_writable", "unknown_backend_message"]

log = logging.getLogger("planweave.cli")

_SQLITE_PREFIX = "sqlite:///"


def check_model_url(url: str) -> None:
    """Refuse a model URL whose scheme planweave does not know (without loading the model)."""
    from planweave.llm._registry import BACKENDS

    scheme = url.partition(":")[0].strip().lower()
    if not url.partition(":")[1] or scheme not in BACKENDS:
        raise UnknownBackend("model", url, sorted(BACKENDS))


async def check_model(
    settings: Settings, url: str, *, needs_model: bool, env: Mapping[str, str] | None = None
) -> None:
    """Fail before a job starts when the model ``url`` cannot work and the job needs a model.

    Raises:
        UsageError: an unknown scheme (always), or (when ``needs_model``) a missing API key, a
            missing local model file, or a model that cannot be built from its URL.
    """
    from planweave.llm import ModelOptions, load_model

    env = os.environ if env is None else env
    check_model_url(url)
    if not needs_model:
        return
    scheme, _, target = url.partition(":")
    scheme, target = scheme.strip().lower(), target.strip()
    if scheme == "openai" and not (
        settings.openai_base_url or env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY")
    ):
        raise UsageError(
            "OPENAI_API_KEY is not set: export it, or point planweave at an OpenAI-compatible "
            "server (Ollama, vLLM, llama.cpp) with OPENAI_BASE_URL=http://HOST:PORT/v1"
        )
    if scheme == "anthropic" and not env.get("ANTHROPIC_API_KEY"):
        raise UsageError(
            "ANTHROPIC_API_KEY is not set: export it (get a key at console.anthropic.com), "
            "or choose another model with --model"
        )
    if scheme == "local":
        _check_local_file(url, target, env)
    options = ModelOptions(n_threads=settings.local_threads, base_url=settings.openai_base_url)
    try:
        model = load_model(url, options, env=env)
    except ModelUnavailable as exc:  # built from a URL that names nothing usable
        raise UsageError(str(exc)) from None
    await model.aclose()


def _check_local_file(url: str, target: str, env: Mapping[str, str]) -> None:
    given = target or env.get("PLANWEAVE_LOCAL_MODEL_PATH") or ""
    if given and not Path(given).expanduser().is_file():
        where = f"--model {url}" if target else f"PLANWEAVE_LOCAL_MODEL_PATH={given}"
        raise UsageError(
            f"local model file {Path(given).expanduser()} does not exist ({where}): "
            "point it at a .gguf file, or leave it out for the bundled model"
        )


def check_writable(settings: Settings, *, workspaces: bool) -> None:
    """Refuse a data folder or SQLite store folder that cannot be created or written.

    Args:
        settings: The merged settings.
        workspaces: Whether the command runs jobs (and so writes per-job workspaces in the
            data folder); the store folder is checked either way.
    """
    folders: list[tuple[Path, str]] = []
    if workspaces:
        folders.append((settings.data_dir.expanduser(), "the data folder (--data-dir)"))
        if settings.workspace is not None:
            folders.append((settings.workspace.expanduser(), "the workspace (--workspace)"))
    url = settings.store_url
    if url.startswith(_SQLITE_PREFIX):
        file = Path(url[len(_SQLITE_PREFIX) :].partition("?")[0]).expanduser()
        if file.name:
            folders.append((file.parent if str(file.parent) else Path("."), "the store's folder"))
    for folder, what in folders:
        _writable(folder.resolve(), what)


def _writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create {what} {folder}: {exc.strerror or exc}; "
            "choose a folder you can write to"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {folder} is not writable: choose a folder you can write to")


_REGISTRIES = {"store": "planweave.store", "bus": "planweave.bus"}
"""Package whose ``_BACKENDS`` table maps each scheme of a concern to ``module:Class``."""


def unknown_backend_message(exc: UnknownBackend) -> str:
    """The error for an unknown backend URL, naming only schemes this installation can open.

    A scheme can be in the URL table before its module ships; suggesting it would send the user
    to a second error.
    """
    package = _REGISTRIES.get(exc.concern)
    if package is None:
        return str(exc)
    table = getattr(importlib.import_module(package), "_BACKENDS", None)
    if not isinstance(table, dict):
        return str(exc)
    usable = [
        scheme
        for scheme in exc.valid
        if _module_exists(str(table.get(scheme.partition(":")[0], "")).partition(":")[0])
    ]
    if not usable:
        return str(exc)
    return f"unknown {exc.concern} URL {exc.url!r}: use one of the schemes {', '.join(usable)}"


def _module_exists(name: str) -> bool:
    if not name:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
