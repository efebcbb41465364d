"""Spell packages: a folder with a ``spell.toml`` and a ``main.lua`` or ``main.js``.

A package looks like this::

    spells/summarize/
        spell.toml
        main.lua
        tests/test_summarize.lua

and its ``spell.toml``::

    [spell]
    name = "summarize"
    version = "0.1.0"
    language = "lua"              # or "js"
    description = "Fetch a page and summarize it."
    expose = "none"               # "tool" or "agent": plans and agents can call it
    tools = ["http_fetch"]        # tools it needs; an engine without one refuses to run it

    [params.url]
    type = "string"               # string, integer, number, boolean, array, object
    required = true
    description = "The page to summarize."

    [params.words]
    type = "integer"
    default = 100

    [limits]                      # each optional; defaults are the runtime's
    instructions = 50_000_000
    memory_bytes = 33_554_432
    wall_s = 30
    host_calls = 200
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planweave._files import read_text_file
from planweave.errors import ConfigError
from planweave.spells._errors import SpellNotFound, SpellParamsInvalid
from planweave.spells._js import JsLimits
from planweave.spells._lua import LuaLimits

__all__ = [
    "SPELL_FILE",
    "ParamSpec",
    "ParamType",
    "SpellLimitsSpec",
    "SpellPackage",
    "discover_spells",
    "find_spell",
]

SPELL_FILE = "spell.toml"
"""The file that makes a folder a spell package."""

ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
Language = Literal["lua", "js"]
Expose = Literal["none", "tool", "agent"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_ENTRY: dict[str, str] = {"lua": "main.lua", "js": "main.js"}


def _fits(kind: str, value: Any) -> bool:
    """Whether a value is of a parameter type (``true`` is not an integer)."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _type_name(value: Any) -> str:
    """A value's type in the words of ``spell.toml``."""
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if _fits(kind, value):
            return kind
    return "null" if value is None else type(value).__name__


class ParamSpec(BaseModel):
    """One parameter of a spell.

    Attributes:
        type: Its JSON type: ``string``, ``integer``, ``number``, ``boolean``, ``array`` or
            ``object``.
        default: Its value when the caller gives none.
        required: The caller must give it (a parameter with a default never is).
        description: What it means, for ``spell list`` and for a model calling the spell.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ParamType = "string"
    default: Any = None
    required: bool = False
    description: str = ""


class SpellLimitsSpec(BaseModel):
    """What one run of the spell may use; an unset limit takes the runtime's default.

    Attributes:
        instructions: Lua VM instructions (JavaScript has no instruction count).
        memory_bytes: Memory the script's runtime may allocate.
        wall_s: Wall-clock seconds from start to end, host calls included.
        host_calls: Host calls (models, tools, agents, logs) the spell may make.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instructions: int | None = Field(default=None, ge=1)
    memory_bytes: int | None = Field(default=None, ge=1024 * 1024)
    wall_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    host_calls: int | None = Field(default=None, ge=0)

    def lua(self) -> LuaLimits:
        """These limits for :func:`~planweave.spells.run_lua`."""
        base = LuaLimits()
        return LuaLimits(
            instructions=self.instructions or base.instructions,
            memory_bytes=self.memory_bytes or base.memory_bytes,
            wall_s=self.wall_s or base.wall_s,
            host_calls=base.host_calls if self.host_calls is None else self.host_calls,
        )

    def js(self) -> JsLimits:
        """These limits for :func:`~planweave.spells.run_js`."""
        base = JsLimits()
        return JsLimits(
            memory_bytes=self.memory_bytes or base.memory_bytes,
            wall_s=self.wall_s or base.wall_s,
            host_calls=base.host_calls if self.host_calls is None else self.host_calls,
        )


class SpellPackage(BaseModel):
    """A spell as its ``spell.toml`` describes it, with the folder it lives in.

    Attributes:
        name: Its name (``spell run NAME``; the tool or agent name when exposed).
        version: Its version, as written.
        language: ``lua`` or ``js``.
        description: What it does.
        parameters: Its parameters by name, checked before the script starts.
        tools: The tools it needs; running it on an engine without one of them is refused.
        limits: What one run may use.
        expose: ``tool`` or ``agent`` registers it so plans and agents can call it.
        dir: The package's folder.
        entry: Its script (``main.lua`` or ``main.js`` in ``dir``).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: str = "0.1.0"
    language: Language = "lua"
    description: str = ""
    parameters: dict[str, ParamSpec] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    limits: SpellLimitsSpec = Field(default_factory=SpellLimitsSpec)
    expose: Expose = "none"
    dir: Path
    entry: Path

    @classmethod
    def load(cls, dir: Path | str) -> SpellPackage:
        """Read the package in a folder.

        Raises:
            ConfigError: ``spell.toml`` or the script is missing, or a field is wrong (the
                message names the file and the field).
        """
        folder = Path(dir)
        file = folder / SPELL_FILE
        if not file.is_file():
            raise ConfigError(f"{file}: not found (a spell package needs a {SPELL_FILE})")
        try:
            data = tomllib.loads(read_text_file(file, what="spell file"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{file}: nested too deeply") from None
        return cls._from_toml(data, folder, file)

    @classmethod
    def _from_toml(cls, data: dict[str, Any], folder: Path, file: Path) -> SpellPackage:
        unknown = sorted(set(data) - {"spell", "params", "limits", "tools"})
        if unknown:
            raise ConfigError(
                f"{file}: unknown table {unknown[0]!r} (expected [spell], [params.NAME], [limits])"
            )
        spell = data.get("spell")
        if not isinstance(spell, dict):
            raise ConfigError(f"{file}: [spell] table missing (with name, version, language)")
        allowed = {"name", "version", "language", "description", "expose", "tools"}
        extra = sorted(set(spell) - allowed)
        if extra:
            raise ConfigError(f"{file}: [spell] {extra[0]}: unknown field")
        name = spell.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{file}: [spell] name: expected a name of letters, digits, '_' and '-' "
                f"starting with a letter, got {name!r}"
            )
        tools = spell.get("tools", data.get("tools", []))
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise ConfigError(f"{file}: tools: expected a list of tool names")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{file}: params: expected [params.NAME] tables")
        parsed: dict[str, ParamSpec] = {}
        for pname, raw in params.items():
            parsed[pname] = _param(file, pname, raw)
        try:
            limits = SpellLimitsSpec.model_validate(data.get("limits", {}))
        except ValidationError as exc:
            raise ConfigError(_first(file, "[limits]", exc)) from None
        language = spell.get("language", "lua")
        fields = {
            "name": name,
            "version": str(spell.get("version", "0.1.0")),
            "language": language,
            "description": spell.get("description", ""),
            "expose": spell.get("expose", "none"),
        }
        entry = folder / _ENTRY.get(str(language), "main.lua")
        try:
            pkg = cls(
                **fields,
                parameters=parsed,
                tools=tools,
                limits=limits,
                dir=folder,
                entry=entry,
            )
        except ValidationError as exc:
            raise ConfigError(_first(file, "[spell]", exc)) from None
        if not entry.is_file():
            raise ConfigError(f"{file}: [spell] language = {language!r} needs {entry}: not found")
        return pkg

    def source(self) -> str:
        """The script's text."""
        return read_text_file(self.entry, what="spell script")

    def test_files(self) -> list[Path]:
        """The package's tests: ``tests/*.lua`` or ``tests/*.js``, in name order."""
        suffix = ".lua" if self.language == "lua" else ".js"
        tests = self.dir / "tests"
        return sorted(tests.glob(f"*{suffix}")) if tests.is_dir() else []

    def check_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters a run gets: the given ones checked against their types, with the
        defaults of those not given.

        Raises:
            SpellParamsInvalid: a required parameter is missing, one is unknown, or one has the
                wrong type (one line naming the spell and the parameter).
        """
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise SpellParamsInvalid(
                f"spell {self.name}: unknown parameter {unknown[0]!r} (parameters: {known})"
            )
        out: dict[str, Any] = {}
        for pname, spec in self.parameters.items():
            if pname in given and given[pname] is not None:
                value = given[pname]
                if not _fits(spec.type, value):
                    raise SpellParamsInvalid(
                        f"spell {self.name}: parameter {pname!r} must be {spec.type}, "
                        f"got {_type_name(value)} {json.dumps(value, default=str)[:60]}"
                    )
                out[pname] = float(value) if spec.type == "number" else value
            elif spec.default is not None:
                out[pname] = spec.default
            elif spec.required:
                raise SpellParamsInvalid(
                    f"spell {self.name}: missing parameter {pname!r} ({spec.type}"
                    + (f": {spec.description}" if spec.description else "")
                    + ")"
                )
        return out

    def parse_params(self, pairs: Sequence[str]) -> dict[str, Any]:
        """Parameters from the command line's ``key=value`` pairs, each read as its declared
        type (``words=100``, ``strict=true``, ``tags=["a","b"]``), then checked as by
        :meth:`check_params`.

        Raises:
            SpellParamsInvalid: a pair has no ``=``, or a value does not read as its type.
        """
        given: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or not key:
                raise SpellParamsInvalid(f"--param {pair!r}: expected key=value")
            spec = self.parameters.get(key)
            given[key] = text if spec is None else self._read(key, spec, text)
        return self.check_params(given)

    def _read(self, key: str, spec: ParamSpec, text: str) -> Any:
        if spec.type == "string":
            return text
        if spec.type == "boolean" and text.lower() in ("true", "false", "yes", "no", "1", "0"):
            return text.lower() in ("true", "yes", "1")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if spec.type == "number" and _fits("integer", value):
            value = float(value)
        if not _fits(spec.type, value):
            raise SpellParamsInvalid(
                f"spell {self.name}: parameter {key!r} must be {spec.type}, got {text!r}"
            )
        return value

    def summary(self) -> dict[str, Any]:
        """What ``spell list --json`` shows of it."""
        return {
            "name": self.name,
            "version": self.version,
            "language": self.language,
            "description": self.description,
            "expose": self.expose,
            "tools": list(self.tools),
            "parameters": {k: v.model_dump() for k, v in self.parameters.items()},
            "dir": str(self.dir),
        }


def _param(file: Path, name: str, raw: Any) -> ParamSpec:
    where = f"[params.{name}]"
    if not _NAME.match(name):
        raise ConfigError(f"{file}: {where}: a parameter name is letters, digits, '_' and '-'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {where}: expected a table with type (and default, required)")
    try:
        spec = ParamSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_first(file, where, exc)) from None
    if spec.default is not None and not _fits(spec.type, spec.default):
        raise ConfigError(
            f"{file}: {where} default: must be {spec.type}, got {_type_name(spec.default)}"
        )
    return spec


def _first(file: Path, where: str, exc: ValidationError) -> str:
    """One line for the first problem pydantic found."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{file}: {where} {field}: {msg}"


def discover_spells(folders: Iterable[Path | str]) -> dict[str, SpellPackage]:
    """The spells in some folders (each sub-folder with a ``spell.toml``), by name; a name in
    an earlier folder wins over the same name later.

    Raises:
        ConfigError: a package's ``spell.toml`` is wrong, or two packages in one folder have
            the same name.
    """
    found: dict[str, SpellPackage] = {}
    for folder in folders:
        base = Path(folder)
        if not base.is_dir():
            continue
        here: dict[str, SpellPackage] = {}
        candidates = [base] if (base / SPELL_FILE).is_file() else sorted(base.iterdir())
        for sub in candidates:
            if not (sub / SPELL_FILE).is_file():
                continue
            pkg = SpellPackage.load(sub)
            if pkg.name in here:
                raise ConfigError(
                    f"{sub / SPELL_FILE}: [spell] name: {pkg.name!r} is also the name of "
                    f"{here[pkg.name].dir / SPELL_FILE}"
                )
            here[pkg.name] = pkg
        for name, pkg in here.items():
            found.setdefault(name, pkg)
    return found


def find_spell(name: str, folders: Iterable[Path | str]) -> SpellPackage:
    """The spell of that name in some folders (as :func:`discover_spells` finds them).

    Raises:
        SpellNotFound: none has that name (the message lists those found).
        ConfigError: a package's ``spell.toml`` is wrong.
    """
    folders = list(folders)
    spells = discover_spells(folders)
    if name in spells:
        return spells[name]
    where = ", ".join(str(f) for f in folders) or "no folders"
    known = ", ".join(sorted(spells)) or "none"
    raise SpellNotFound(f"no spell named {name!r} in {where} (found: {known})")
