"""User tools named in settings: what ``--tools`` and the ``tools`` setting load.

Every process of a cluster needs the same tools: a worker runs them, and a control plane checks
plans against their parameters and tells planners their names. So they are named once, in the
settings (``tools = ["myapp.tools"]``, ``PLANWEAVE_TOOLS=myapp.tools``), and each process imports
them:

* ``package.module``: every tool defined at the top of the module (``@tool`` functions and
  objects implementing ``Tool``);
* ``package.module:name``: that one attribute, a tool or a list of tools;
* ``path/to/file.py`` (or ``file.py:name``): the same, from a file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from planweave.errors import UsageError

__all__ = ["load_tools"]


def _module(target: str) -> ModuleType:
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"tools {target!r}: no such file")
        name = f"planweave_user_tools_{abs(hash(str(path)))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"tools {target!r}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise UsageError(f"tools {target!r}: importing it failed: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise UsageError(f"tools {target!r}: cannot import it ({exc})") from exc
    except Exception as exc:
        raise UsageError(f"tools {target!r}: importing it failed: {exc}") from exc


def _is_tool(value: Any) -> bool:
    from planweave.tools import Tool

    return not isinstance(value, type) and isinstance(value, Tool)


def load_tools(specs: tuple[str, ...] | list[str]) -> list[Any]:
    """The tools ``specs`` name, in order, each once.

    Raises:
        UsageError: a module or file cannot be imported, a name is missing, or it holds no tool.
    """
    found: dict[int, Any] = {}
    for spec in specs:
        target, _, attr = spec.strip().rpartition(":") if _has_attr(spec) else (spec, "", "")
        module = _module(target.strip())
        if attr:
            if not hasattr(module, attr):
                raise UsageError(f"tools {spec!r}: {target} has no {attr!r}")
            value = getattr(module, attr)
            values = value if isinstance(value, list | tuple) else [value]
            bad = [v for v in values if not _is_tool(v)]
            if bad:
                raise UsageError(f"tools {spec!r}: {bad[0]!r} is not a tool (use @tool)")
        else:
            values = [v for v in vars(module).values() if _is_tool(v)]
            if not values:
                raise UsageError(f"tools {spec!r}: the module defines no tool (use @tool)")
        for value in values:
            found.setdefault(id(value), value)
    return list(found.values())


def _has_attr(spec: str) -> bool:
    """Whether ``spec`` ends in ``:name`` (and not a Windows drive letter)."""
    head, sep, tail = spec.rpartition(":")
    return bool(sep) and tail.isidentifier() and len(head) > 1
