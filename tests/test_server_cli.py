"""``planweave serve`` and ``planweave token`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    return {**env, **extra}


def planweave(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=tmp_path,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, banner: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.banner = banner

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def _start(tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "planweave.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            "data",
            *args,
        ],
        cwd=tmp_path,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line.strip())
            found = LISTENING.search(line)
            url = found.group(1) if found else None
        assert url is not None, (banner, proc.stderr.read() if proc.poll() is not None else "")
        yield Served(proc, url, banner)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[Served]:
    yield from _start(tmp_path)


def test_serve_without_tokens_is_local_and_open_and_stops_on_sigterm(
    open_server: Served,
) -> None:
    assert any("without authentication" in line for line in open_server.banner)
    assert httpx.get(f"{open_server.url}/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{open_server.url}/readyz", timeout=10).status_code == 200
    plan = {
        "plan": {
            "tasks": [
                {"id": "a", "kind": "tool", "tool": "calculator", "args": {"expression": "1+1"}}
            ]
        }
    }
    created = httpx.post(f"{open_server.url}/v1/jobs", json=plan, timeout=10)
    assert created.status_code == 201
    assert open_server.stop() == 0


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    result = planweave(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", "d")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API tokens" in result.stderr
    assert "planweave token create" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_created_token_authenticates_and_a_revoked_one_stops(tmp_path: Path) -> None:
    created = planweave(tmp_path, "token", "create", "--tenant", "acme", "--data-dir", "data")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert re.fullmatch(r"pw_[A-Za-z0-9_-]{32}", token)
    stored = (tmp_path / "data" / "tokens.json").read_text()
    assert token not in stored and json.loads(stored)["tokens"][0]["tenant"] == "acme"
    assert oct((tmp_path / "data" / "tokens.json").stat().st_mode & 0o777) == "0o600"
    listed = planweave(tmp_path, "token", "list", "--json", "--data-dir", "data")
    [record] = json.loads(listed.stdout)
    assert record["tenant"] == "acme" and "sha256" not in listed.stdout

    for served in _start(tmp_path):
        assert not any("without authentication" in line for line in served.banner)
        jobs = f"{served.url}/v1/jobs"
        assert httpx.get(jobs, timeout=10).status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        assert httpx.get(jobs, headers=good, timeout=10).json()["jobs"] == []
        revoked = planweave(tmp_path, "token", "revoke", record["id"], "--data-dir", "data")
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.2)  # the server re-reads the token file at most once a second
        assert httpx.get(jobs, headers=good, timeout=10).status_code == 401
        assert served.stop() == 0
        logs = served.proc.stderr.read() if served.proc.stderr else ""
        assert token not in logs


def test_tokens_from_the_environment(tmp_path: Path) -> None:
    for served in _start(tmp_path, PLANWEAVE_TOKENS="acme:pw_env_token_for_tests"):
        jobs = f"{served.url}/v1/jobs"
        assert httpx.get(jobs, timeout=10).status_code == 401
        auth = {"Authorization": "Bearer pw_env_token_for_tests"}
        assert httpx.get(jobs, headers=auth, timeout=10).status_code == 200
        assert served.stop() == 0


def test_bad_tenant_names_are_refused(tmp_path: Path) -> None:
    result = planweave(tmp_path, "token", "create", "--tenant", "no spaces", "--data-dir", "d")
    assert result.returncode == 2 and "bad tenant name" in result.stderr
