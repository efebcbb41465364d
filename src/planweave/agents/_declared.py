"""Declarative agents: one ``*.yaml`` file per agent in a project's ``agents/`` folder.

A file is read with the bounded YAML loader (no aliases, bounded size and depth) and checked
field by field, and the whole folder is checked together (every sub-agent and tool exists, no
agent contains itself) *before* any agent is built, so a mistake is reported at start-up, with
the file, the field and its line, never half-way through a job. Workflow kinds are built from
the workflow classes of :mod:`planweave.agents`, imported only when a folder uses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from planweave._files import read_text_file
from planweave.errors import ConfigError

if TYPE_CHECKING:
    from planweave.agents._agent import Agent, AgentRegistry

__all__ = [
    "AgentDefinition",
    "build_agents",
    "check_definitions",
    "load_definitions",
    "register_folder",
]

AgentKind = Literal["react", "sequential", "parallel", "conditional", "loop"]

KINDS: tuple[AgentKind, ...] = ("react", "sequential", "parallel", "conditional", "loop")
MERGES = ("concat", "dict")
_COMMON = ("name", "kind", "description")
FIELDS: dict[str, tuple[str, ...]] = {
    "react": (
        *_COMMON,
        "instructions",
        "model",
        "tools",
        "agents",
        "max_steps",
        "output_schema",
        "critic",
    ),
    "sequential": (*_COMMON, "agents"),
    "parallel": (*_COMMON, "agents", "merge"),
    "conditional": (*_COMMON, "branches", "default"),
    "loop": (*_COMMON, "body", "max_iterations"),
}
"""The fields of each kind of agent file."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_WHAT = "agent file"


@dataclass(frozen=True, kw_only=True)
class AgentDefinition:
    """One agent as its file defines it (checked, not yet built).

    Attributes:
        name: The agent's name.
        kind: ``react`` (an LLM agent) or a workflow kind.
        description: One line for the planner and ``planweave agents list``.
        file: The file it came from.
        fields: Every field as written (``name`` and ``kind`` filled in).
        lines: The line of each field in the file (1-based).
    """

    name: str
    kind: AgentKind
    description: str
    file: Path
    fields: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def tools(self) -> list[str]:
        """The tools a ``react`` agent names (empty: every registered tool)."""
        tools = self.fields.get("tools")
        return list(tools) if isinstance(tools, list) else []

    @property
    def sub_agents(self) -> list[tuple[str, str]]:
        """``(field, agent name)`` for every agent this one runs."""
        out: list[tuple[str, str]] = [("agents", name) for name in self.fields.get("agents", [])]
        out += [("branches", name) for name in self.fields.get("branches", {}).values()]
        for key in ("default", "body"):
            if isinstance(self.fields.get(key), str):
                out.append((key, self.fields[key]))
        return out

    def problem(self, key: str, message: str) -> ConfigError:
        """A ``ConfigError`` naming this file, ``key`` and its line."""
        return _problem(self.file, self.lines.get(key), key, message)


def load_definitions(folder: Path) -> list[AgentDefinition]:
    """Read and check every ``*.yaml`` / ``*.yml`` file of ``folder``, by file name.

    Raises:
        ConfigError: the folder does not exist, or a file is not valid (not YAML, an unknown
            or missing field, a value of the wrong type, an unknown kind, two agents of one
            name); the message names the file, the field and its line.
    """
    if not folder.is_dir():
        raise ConfigError(f"agents folder {str(folder)!r} does not exist")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    seen: dict[str, Path] = {}
    out = []
    for file in files:
        definition = _definition(file)
        if definition.name in seen:
            raise definition.problem(
                "name", f"another agent is named {definition.name!r} (in {seen[definition.name]})"
            )
        seen[definition.name] = file
        out.append(definition)
    return out


def check_definitions(
    definitions: Iterable[AgentDefinition],
    *,
    known_agents: Collection[str],
    known_tools: Collection[str],
) -> None:
    """Check what the definitions refer to: sub-agents and tools exist, no cycle.

    Args:
        definitions: The folder's agents.
        known_agents: Agents registered in code, which a file may use as sub-agents (its own
            names must differ from them).
        known_tools: Tools a ``react`` agent may name.

    Raises:
        ConfigError: naming the file, the field and its line.
    """
    by_name = {each.name: each for each in definitions}
    for each in by_name.values():
        if each.name in known_agents:
            raise each.problem("name", f"an agent named {each.name!r} is already registered")
        for tool in each.tools:
            if tool not in known_tools:
                raise each.problem(
                    "tools",
                    f"unknown tool {tool!r}; registered tools: "
                    + (", ".join(sorted(known_tools)) or "none"),
                )
        for key, name in each.sub_agents:
            if name not in by_name and name not in known_agents:
                names = sorted({*by_name, *known_agents})
                raise each.problem(key, f"unknown agent {name!r}; agents: {', '.join(names)}")
    _check_cycles(by_name)


def build_agents(
    definitions: Iterable[AgentDefinition],
    *,
    known_agents: Mapping[str, Agent],
    known_tools: Collection[str],
) -> list[tuple[AgentDefinition, Agent]]:
    """Check the definitions (see :func:`check_definitions`), then build them, sub-agents
    first; each agent comes with its definition.

    Raises:
        ConfigError: a definition is not valid; nothing is built.
    """
    definitions = list(definitions)
    check_definitions(definitions, known_agents=known_agents, known_tools=known_tools)
    by_name = {each.name: each for each in definitions}
    built: dict[str, Agent] = dict(known_agents)
    out: list[tuple[AgentDefinition, Agent]] = []

    def build(definition: AgentDefinition) -> None:
        for _, name in definition.sub_agents:
            if name not in built:
                build(by_name[name])
        agent = _construct(definition, built, by_name, known_tools)
        built[definition.name] = agent
        out.append((definition, agent))

    for each in definitions:
        if each.name not in built:
            build(each)
    return out


# --- one file ---------------------------------------------------------------------------------


def _definition(file: Path) -> AgentDefinition:
    data, lines = _read(file)
    if not isinstance(data, dict):
        raise _problem(file, 1, None, "an agent file is a mapping of fields (name: ..., ...)")
    for key in data:
        if not isinstance(key, str):
            raise _problem(file, lines.get(str(key)), None, f"field names are text, not {key!r}")
    kind = data.get("kind", "react")
    if kind not in KINDS:
        raise _problem(
            file, lines.get("kind"), "kind", f"unknown kind {kind!r}; use one of {', '.join(KINDS)}"
        )
    unknown = [key for key in data if key not in FIELDS[kind]]
    if unknown:
        raise _problem(
            file,
            lines.get(unknown[0]),
            unknown[0],
            f"unknown field for a {kind} agent; the fields are {', '.join(FIELDS[kind])}",
        )
    name = data.get("name", file.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise _problem(
            file,
            lines.get("name"),
            "name",
            f"{name!r} is not a valid agent name (a letter, then letters, digits, '_', '-', "
            "'.'; at most 64 characters)",
        )
    fields = {**data, "name": name, "kind": kind}
    definition = AgentDefinition(
        name=name,
        kind=kind,
        description=_text(fields, "description", file, lines, one_line=True),
        file=file,
        fields=fields,
        lines=lines,
    )
    _check_fields(definition)
    return definition


def _read(file: Path) -> tuple[Any, dict[str, int]]:
    """The file's data and the line of each top-level key."""
    import yaml

    from planweave._yaml import BoundedLoader

    try:
        text = read_text_file(file, what=_WHAT)
    except OSError as exc:
        raise ConfigError(f"{_WHAT} {str(file)!r} cannot be read: {exc}") from None
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines.setdefault(str(key.value), key.start_mark.line + 1)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise _problem(
            file, mark.line + 1 if mark is not None else None, None, str(exc.problem)
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{_WHAT} {str(file)!r} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def _check_fields(each: AgentDefinition) -> None:
    fields = each.fields
    if each.kind == "react":
        for key in ("instructions", "model"):
            _text(fields, key, each.file, each.lines)
        _names(each, "tools", required=False)
        _names(each, "agents", required=False)
        _positive(each, "max_steps", required=False)
        critic = fields.get("critic")
        if critic is not None and not (
            isinstance(critic, bool) or (isinstance(critic, str) and critic.strip())
        ):
            raise each.problem("critic", "must be true, false or the name of a critic")
        schema = fields.get("output_schema")
        if schema is not None:
            if not isinstance(schema, dict):
                raise each.problem("output_schema", "must be a JSON schema (a mapping)")
            from planweave.agents._output import OutputSchema

            try:
                OutputSchema(schema, owner=each.name)
            except ConfigError as exc:
                raise each.problem("output_schema", str(exc)) from None
    elif each.kind in ("sequential", "parallel"):
        _names(each, "agents", required=True)
        merge = fields.get("merge", "concat")
        if merge not in MERGES:
            raise each.problem("merge", f"unknown merge {merge!r}; use one of {', '.join(MERGES)}")
    elif each.kind == "conditional":
        branches = fields.get("branches")
        if isinstance(branches, list):  # a list of agents: each branch is named by its agent
            _names(each, "branches", required=True)
            fields["branches"] = {name: name for name in branches}
        elif not (
            isinstance(branches, dict)
            and branches
            and all(isinstance(k, str) and isinstance(v, str) for k, v in branches.items())
        ):
            raise each.problem(
                "branches", "must list agent names, or map branch names to agent names"
            )
        default = fields.get("default")
        if default is not None and not isinstance(default, str):
            raise each.problem("default", "must be an agent name")
    else:  # loop
        body = fields.get("body")
        if not isinstance(body, str):
            raise each.problem("body", "a loop needs body: the agent it repeats")
        _positive(each, "max_iterations", required=True)


def _text(
    fields: dict[str, Any],
    key: str,
    file: Path,
    lines: dict[str, int],
    *,
    one_line: bool = False,
) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _problem(file, lines.get(key), key, "must be text")
    return " ".join(value.split()) if one_line else value


def _names(each: AgentDefinition, key: str, *, required: bool) -> None:
    value = each.fields.get(key)
    if value is None and not required:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise each.problem(key, "must be a list of names")
    if required and not value:
        raise each.problem(key, "must name at least one agent")


def _positive(each: AgentDefinition, key: str, *, required: bool) -> None:
    value = each.fields.get(key)
    if value is None:
        if required:
            raise each.problem(
                key, f"a {each.kind} agent needs {key}: a bound on how often it repeats"
            )
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise each.problem(key, f"must be a whole number of at least 1, not {value!r}")


def _problem(file: Path, line: int | None, key: str | None, message: str) -> ConfigError:
    where = f", line {line}" if line is not None else ""
    what = f", field {key!r}" if key is not None else ""
    return ConfigError(f"{_WHAT} {str(file)!r}{where}{what}: {message}")


def _check_cycles(by_name: Mapping[str, AgentDefinition]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        each = by_name[name]
        for key, sub in each.sub_agents:
            if sub not in by_name:
                continue  # an agent registered in code: it cannot name these
            if state.get(sub) == 1:
                cycle = " -> ".join([*path[path.index(sub) :], sub])
                raise each.problem(key, f"agents contain each other in a cycle: {cycle}")
            if sub not in state:
                visit(sub, [*path, sub])
        state[name] = 2

    for name in by_name:
        if name not in state:
            visit(name, [name])


# --- building -----------------------------------------------------------------------------------


def _construct(
    each: AgentDefinition,
    built: Mapping[str, Agent],
    by_name: Mapping[str, AgentDefinition],
    known_tools: Collection[str],
) -> Agent:
    fields = each.fields
    if each.kind == "react":
        from planweave.agents.react import ReactAgent

        tools: list[Any] | None = fields.get("tools")
        if fields.get("agents"):
            # Sub-agents are offered as tools, next to the named tools (or all of them).
            as_tool = _workflow_part(each, "as_tool")
            tools = list(tools if tools is not None else sorted(known_tools))
            for name in fields["agents"]:
                known = by_name.get(name)
                text = known.description if known is not None else ""
                text = text or getattr(built[name], "description", None) or f"Run agent {name}"
                tools.append(as_tool(built[name], description=text))
        return ReactAgent(
            each.name,
            instructions=fields.get("instructions"),
            tools=tools,
            max_steps=fields.get("max_steps"),
            model=fields.get("model"),
            description=each.description or None,
            output_schema=fields.get("output_schema"),
            critic=fields.get("critic"),
        )
    cls = _workflow_class(each)
    description = each.description or ""
    if each.kind == "sequential":
        return cls(each.name, [built[name] for name in fields["agents"]], description=description)
    if each.kind == "parallel":
        return cls(
            each.name,
            [built[name] for name in fields["agents"]],
            merge=fields.get("merge", "concat"),
            description=description,
        )
    if each.kind == "conditional":
        branches: dict[str, str] = dict(fields["branches"])
        default = fields.get("default")
        if default is not None and default not in branches:
            # ``default`` names an agent: its branch, or a branch of its own
            default = next((b for b, name in branches.items() if name == default), None) or (
                branches.setdefault(default, default)
            )
        return cls(
            each.name,
            branches={branch: built[name] for branch, name in branches.items()},
            decide="llm",  # a file cannot hold a predicate: the model chooses the branch
            default=default,
            description=description,
        )
    return cls(
        each.name,
        body=built[fields["body"]],
        max_iterations=fields["max_iterations"],
        description=description,
    )


def _workflow_class(each: AgentDefinition) -> Callable[..., Agent]:
    """The workflow class of ``each``'s kind (``Sequential``, ...), from ``planweave.agents``."""
    cls: Callable[..., Agent] = _workflow_part(each, each.kind.capitalize())
    return cls


def _workflow_part(each: AgentDefinition, name: str) -> Any:
    """``planweave.agents.<name>`` (a workflow class, ``as_tool``), imported when used."""
    import importlib

    part = getattr(importlib.import_module("planweave.agents"), name, None)
    if part is None:
        key = "agents" if name == "as_tool" else "kind"
        raise each.problem(key, f"this planweave has no {name} for agents")
    return part


def register_folder(registry: AgentRegistry, folder: Path, *, known_tools: Collection[str]) -> None:
    """Build the agents of ``folder`` (see :func:`build_agents`) and add them to ``registry``;
    they may use its agents as sub-agents.

    Raises:
        ConfigError: a file is not valid; no agent of the folder is added.
    """
    known = {name: registry.get(name) for name in registry.names()}
    for definition, agent in build_agents(
        load_definitions(folder), known_agents=known, known_tools=known_tools
    ):
        registry.register(agent, description=definition.description)
