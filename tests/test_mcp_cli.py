"""``planweave mcp add/approve/list/serve`` and ``planweave tools list``, as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx2
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

SERVER = str(Path(__file__).with_name("mcp_server.py"))
SRC = str(Path(__file__).resolve().parents[1] / "src")

USER_TOOLS = '''
from planweave import tool

@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()
'''


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_approve_list_and_tools_list(tmp_path: Path) -> None:
    added = cli(tmp_path, "mcp", "add", "calc", "--env", "A=1", "--", sys.executable, SERVER)
    assert added.returncode == 0, added.stderr
    config = tomllib.loads((tmp_path / "planweave.toml").read_text())
    assert config["mcp"]["servers"]["calc"] == {
        "command": sys.executable,
        "args": [SERVER],
        "env": {"A": "1"},
    }

    before = json.loads(cli(tmp_path, "mcp", "list", "--json").stdout)
    assert before[0]["name"] == "calc" and before[0]["approved"] is False
    assert {t["state"] for t in before[0]["tools"]} == {"new"}
    hidden = json.loads(cli(tmp_path, "tools", "list", "--json").stdout)
    assert not [row for row in hidden if row["source"] == "mcp:calc"]

    approved = cli(tmp_path, "mcp", "approve", "calc")
    assert approved.returncode == 0, approved.stderr
    assert "5 tools pinned" in approved.stdout
    pins = json.loads((tmp_path / ".planweave" / "mcp-approvals.json").read_text())
    assert pins["servers"]["calc"]["tools"]["add"]["sha256"].startswith("sha256:")

    after = json.loads(cli(tmp_path, "mcp", "list", "--json").stdout)
    assert after[0]["approved"] is True
    assert {t["name"]: t["state"] for t in after[0]["tools"]}["calc.add"] == "approved"

    (tmp_path / "mine.py").write_text(USER_TOOLS)
    listed = cli(tmp_path, "tools", "list", "--json", "--tools", "mine.py")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["calculator"]["source"] == "built-in"
    assert rows["shout"]["source"] == f"python:{tmp_path / 'mine.py'}"
    add = rows["calc.add"]
    assert add["source"] == "mcp:calc" and add["model_name"] == "calc__add"
    assert add["parameters"]["required"] == ["a", "b"]
    assert add["high_impact"] is False and "calc" in add["sandbox"]
    assert rows["calc.wipe"]["high_impact"] is True  # the server marks it destructive


def test_a_missing_command_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    done = cli(tmp_path, "mcp", "add", "ghost", "--", "no-such-mcp-binary")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "'no-such-mcp-binary' not found" in done.stderr
    assert not (tmp_path / "planweave.toml").exists()
    # Configured by hand, it stops every command that loads tools, before anything runs.
    (tmp_path / "planweave.toml").write_text(
        '[mcp.servers.ghost]\ncommand = "no-such-mcp-binary"\n'
    )
    listed = cli(tmp_path, "tools", "list")
    assert listed.returncode == 2 and "'ghost'" in listed.stderr
    ran = cli(tmp_path, "run", "a goal", "--model", "scripted:none.yaml")
    assert ran.returncode == 2 and "'ghost'" in ran.stderr


def test_a_malformed_server_table_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text('[mcp.servers.x]\nurl = "ftp://nope"\n')
    done = cli(tmp_path, "tools", "list")
    assert done.returncode == 2
    assert "planweave.toml" in done.stderr and "mcp.servers.x.url" in done.stderr


REPLIES: list[dict[str, Any]] = [
    {
        "match": {"role": "planner"},
        "json": {"tasks": [{"id": "say", "goal": "Say hi", "depends_on": [], "kind": "execute"}]},
    },
    {"match": {"role": "executor"}, "content": "hi"},
    {"match": {"role": "composer"}, "content": "# Hi\n\nhello from planweave"},
]


async def test_mcp_serve_submits_a_goal_and_reads_its_result(tmp_path: Path) -> None:
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump({"replies": REPLIES}))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "planweave.cli", "mcp", "serve", "--model", "scripted:replies.yaml"],
        env={"PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
        cwd=tmp_path,
    )
    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"submit_goal", "job_status", "job_result"}
        submitted = await client.call_tool("submit_goal", {"goal": "Greet me"})
        assert not submitted.is_error, submitted.content
        job_id = submitted.structured_content["job_id"]  # type: ignore[index]
        done = await client.call_tool("job_result", {"job_id": job_id, "wait_s": 60})
        assert not done.is_error, done.content
        assert done.structured_content is not None
        assert done.structured_content["status"] == "succeeded"
        assert "hello from planweave" in done.structured_content["result"]
        status = await client.call_tool("job_status", {"job_id": job_id})
        assert status.structured_content is not None
        assert status.structured_content["tasks"]["say"] == "succeeded"
        missing = await client.call_tool("job_status", {"job_id": "nope"})
        assert missing.is_error


def start_serve(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    full["PYTHONPATH"] = os.pathsep.join([SRC, full.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "planweave.cli", "serve", "--port", "0", *args],
        cwd=tmp_path,
        env={**full, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(50):
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
        if found:
            return proc, found.group(1)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise AssertionError("planweave serve did not start")


def mcp_client(url: str, token: str | None) -> tuple[Client, httpx2.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http)), http


async def test_serve_mcp_over_http_with_tokens_and_tenancy(tmp_path: Path) -> None:
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump({"replies": REPLIES}))
    proc, url = start_serve(
        tmp_path,
        "--mcp",
        "--model",
        "scripted:replies.yaml",
        PLANWEAVE_TOKENS="acme:tok-acme,beta:tok-beta",
    )
    try:
        client, http = mcp_client(url, "tok-acme")
        async with http, client:
            submitted = await client.call_tool("submit_goal", {"goal": "Greet me"})
            assert not submitted.is_error, submitted.content
            assert submitted.structured_content is not None
            job_id = submitted.structured_content["job_id"]
            done = await client.call_tool("job_result", {"job_id": job_id, "wait_s": 60})
            assert done.structured_content is not None, done.content
            assert done.structured_content["status"] == "succeeded"
            assert "hello from planweave" in done.structured_content["result"]
        # The job is acme's, as the REST API sees it too.
        rest = httpx2.get(
            f"{url}/v1/jobs/{job_id}", headers={"Authorization": "Bearer tok-acme"}, timeout=10
        )
        assert rest.status_code == 200 and rest.json()["job_id"] == job_id
        # Another tenant's token does not see it.
        client, http = mcp_client(url, "tok-beta")
        async with http, client:
            other = await client.call_tool("job_status", {"job_id": job_id})
            assert other.is_error
        # No token: refused before any tool runs.
        refused = httpx2.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
            timeout=10,
        )
        assert refused.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_tool_whose_schema_is_not_json_schema_is_one_line_and_not_approved(
    tmp_path: Path,
) -> None:
    added = cli(tmp_path, "mcp", "add", "calc", "--", sys.executable, SERVER, "--broken-tool")
    assert added.returncode == 0, added.stderr
    approved = cli(tmp_path, "mcp", "approve", "calc")
    assert approved.returncode == 0, approved.stderr
    [line] = [ln for ln in approved.stdout.splitlines() if "broken" in ln]
    assert "tool 'broken': inputSchema is not valid JSON Schema" in line
    assert "5 tools pinned" in approved.stdout
    rows = json.loads(cli(tmp_path, "tools", "list", "--json").stdout)
    names = {row["name"] for row in rows}
    assert "calc.add" in names and "calc.broken" not in names
