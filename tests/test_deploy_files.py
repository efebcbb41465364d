"""The deployment files say only what the CLI understands.

``deploy/compose.yaml``, the Kubernetes manifests under ``deploy/k8s/`` and the commands in
``docs/deploy.md`` are what operators copy. Every ``planweave`` command, every flag and every
``PLANWEAVE_*`` environment variable in them must exist, so a renamed flag or setting cannot leave
them silently wrong.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from planweave.cli import app
from planweave.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "deploy.md"


def _check_command(argv: list[str], where: str) -> None:
    """``argv`` is a planweave command line without the program name."""
    commands: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    name, *rest = argv
    command = commands.get(name)
    assert command is not None, f"{where}: no command 'planweave {name}'"
    if hasattr(command, "commands"):  # a group: planweave token create ...
        sub, *rest = rest
        command = command.commands.get(sub)
        assert command is not None, f"{where}: no command 'planweave {name} {sub}'"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for arg in rest:
        if arg.startswith("--"):
            flag = arg.partition("=")[0]
            assert flag in options, f"{where}: 'planweave {name}' has no option {flag}"


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"\b" + ENV_PREFIX + r"[A-Z0-9_]+\b", text))


def _check_env(names: set[str], where: str) -> None:
    fields = set(Settings.model_fields)
    extra = {"PLANWEAVE_DEBUG"}  # read by the command line itself, not a setting
    for name in names - extra:
        field = name.removeprefix(ENV_PREFIX).lower()
        assert field in fields, f"{where}: {name} is not a setting (PLANWEAVE_<setting>)"


def _containers(doc: Any) -> list[tuple[str, list[str]]]:
    """(name, planweave argv) of every container or service in a manifest or compose file."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(doc, dict):
        if "services" in doc and isinstance(doc["services"], dict):
            for name, service in doc["services"].items():
                command = service.get("command")
                image = str(service.get("image", ""))
                if command and image.startswith("planweave"):
                    found.append((name, [str(each) for each in command]))
        containers = (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            if isinstance(doc.get("spec"), dict)
            else []
        )
        for container in containers:
            if str(container.get("image", "")).startswith("planweave"):
                found.append((container["name"], [str(each) for each in container["args"]]))
    return found


DEPLOY_FILES = sorted(p for p in DEPLOY.rglob("*.yaml"))


def test_the_deployment_files_exist() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY_FILES}
    assert {"compose.yaml", "k8s/api.yaml", "k8s/worker.yaml", "k8s/keda.yaml"} <= names
    assert (DEPLOY / "Dockerfile").is_file()


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_command_flag_and_setting_in_a_deployment_file_exists(path: Path) -> None:
    text = path.read_text()
    docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    where = path.relative_to(ROOT).as_posix()
    for name, argv in (c for doc in docs for c in _containers(doc)):
        _check_command(argv, f"{where} ({name})")
    _check_env(_env_names(text), where)


def test_compose_runs_two_servers_and_three_workers_on_postgres_and_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    commands = {name: s["command"][0] for name, s in services.items() if "command" in s}
    assert sorted(n for n, c in commands.items() if c == "serve") == ["serve-1", "serve-2"]
    assert services["worker"]["command"][0] == "worker"
    assert services["worker"]["deploy"]["replicas"] == 3
    env = services["serve-1"]["environment"]
    assert env["PLANWEAVE_STORE"].startswith("postgresql://")
    assert env["PLANWEAVE_BUS"].startswith("redis://")


def test_the_commands_in_the_deployment_guide_exist() -> None:
    text = DOC.read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]
    commands = [line for line in lines if line.startswith("planweave ")]
    assert commands, "the guide shows no planweave command"
    for line in commands:
        argv = shlex.split(line.partition("#")[0].replace("…", "x"))
        _check_command(argv[1:], f"docs/deploy.md: {line}")
    _check_env(_env_names(text), "docs/deploy.md")


def test_the_autoscaler_watches_the_streams_and_group_the_redis_bus_uses() -> None:
    from planweave.constants import (
        DEFAULT_CONCURRENCY,
        QUEUE_PREFIX,
        REDIS_GROUP,
        REDIS_QUEUE_PREFIX,
    )

    scaled = yaml.safe_load((DEPLOY / "k8s" / "keda.yaml").read_text())
    triggers = scaled["spec"]["triggers"]
    streams = {REDIS_QUEUE_PREFIX + QUEUE_PREFIX + kind for kind in DEFAULT_CONCURRENCY}
    assert triggers
    for trigger in triggers:
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["stream"] in streams
        assert trigger["metadata"]["consumerGroup"] == REDIS_GROUP
