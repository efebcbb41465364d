"""Hooks named in settings: what ``--hook``, ``PLANWEAVE_HOOKS`` and ``PLANWEAVE_JOB_HOOKS``
load, so that ``planweave worker`` processes (which run no Python of the user's otherwise)
run the same hooks as the engine that submits the jobs.

A name is one of:

* a built-in hook: ``logging``, ``metrics``, ``tracing``, ``redaction``;
* ``package.module:name``: that attribute, a hook, a list of hooks, or a ``Hook`` subclass
  (made with no arguments);
* ``file.py:name``: the same, from a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from planweave.errors import UsageError
from planweave.hooks._hook import Hook

__all__ = ["BUILTIN_HOOKS", "load_hooks"]


def _logging() -> Hook:
    from planweave.hooks.jsonlog import JsonLogHook

    return JsonLogHook()


def _metrics() -> Hook:
    from planweave.hooks.metrics import MetricsHook

    return MetricsHook()


def _tracing() -> Hook:
    from planweave.hooks.tracing import TracingHook

    return TracingHook.from_env()


def _redaction() -> Hook:
    from planweave.hooks.redaction import RedactionHook

    return RedactionHook.from_env()


BUILTIN_HOOKS: dict[str, Callable[[], Hook]] = {
    "logging": _logging,
    "metrics": _metrics,
    "tracing": _tracing,
    "redaction": _redaction,
}


def _as_hooks(spec: str, value: Any) -> list[Hook]:
    if isinstance(value, type) and issubclass(value, Hook):
        value = value()
    values = value if isinstance(value, list | tuple) else [value]
    bad = [v for v in values if not isinstance(v, Hook)]
    if bad:
        raise UsageError(
            f"hooks {spec!r}: {bad[0]!r} is not a hook (subclass planweave.hooks.Hook or use "
            "@hook(point))"
        )
    return list(values)


def load_hooks(specs: Iterable[str]) -> list[Hook]:
    """The hooks ``specs`` name, in order, each once.

    Raises:
        UsageError: an unknown built-in, a module or file that cannot be imported, a missing
            name, or a value that is not a hook.
    """
    from planweave._plugins import _module

    found: dict[int, Hook] = {}
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if ":" not in spec:
            factory = BUILTIN_HOOKS.get(spec)
            if factory is None:
                raise UsageError(
                    f"hooks {spec!r}: not a built-in hook ({', '.join(BUILTIN_HOOKS)}); name "
                    "your own as package.module:name"
                )
            hooks = [factory()]
        else:
            target, _, attr = spec.rpartition(":")
            module = _module(target)
            if not hasattr(module, attr):
                raise UsageError(f"hooks {spec!r}: {target} has no {attr!r}")
            hooks = _as_hooks(spec, getattr(module, attr))
        for one in hooks:
            found.setdefault(id(one), one)
    return list(found.values())
