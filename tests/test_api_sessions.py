"""Reactive sessions over HTTP on a real uvicorn server: the party planner to a settled board,
optimistic locking (409), the per-session rate limit (429), SSE resume, the WebSocket stream
and tenant isolation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from planweave import Engine
from planweave.config import Settings
from planweave.server.testing import RunningServer, running_server

PARTY = Path(__file__).resolve().parent.parent / "examples" / "party"
ALICE = "pw_alice_sessions_token_00000000000"
BOB = "pw_bob_sessions_token_111111111111111"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "tokens": f"alice:{ALICE},bob:{BOB}",
            "rate_limit_per_s": 10_000,
            "rate_limit_burst": 10_000,
        }
    )
    async with (
        Engine(
            store=f"sqlite:///{tmp_path / 'pw.db'}",
            model=f"scripted:{PARTY / 'scripted.yaml'}",
            data_dir=tmp_path,
            builtins=False,
        ) as engine,
        running_server(engine, settings) as server,
    ):
        yield server


def client(server: RunningServer, token: str = ALICE) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
    )


def party(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((PARTY / "party.yaml").read_text())
    return {**spec, **changes}


async def settled(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            board: dict[str, Any] = (await http.get(f"/v1/sessions/{session_id}")).json()
            if board["settled"]:
                return board
            await asyncio.sleep(0.1)


async def test_party_through_http_to_a_settled_board_then_retraction(
    api: RunningServer,
) -> None:
    async with client(api) as http:
        created = await http.post(
            "/v1/sessions",
            json={
                "spec": (PARTY / "party.yaml").read_text(),
                "inputs": [{"text": "jungle theme party for 75 guests"}],
            },
        )
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        board = await settled(http, sid)
        assert board["agents"]["theme"]["value"]["theme"] == "jungle"
        assert board["aggregate"]["value"]["completion_percent"] == 100
        theme_input = board["inputs"][0]["input_id"]

        added = await http.post(
            f"/v1/sessions/{sid}/inputs",
            json={"text": "budget is $1500", "tags": ["budget"], "expected_version": 1},
        )
        assert added.status_code == 201, added.text
        assert added.json()["version"] == 2
        board = await settled(http, sid)
        assert [i["text"] for i in board["inputs"]] == [
            "jungle theme party for 75 guests",
            "budget is $1500",
        ]

        removed = await http.delete(f"/v1/sessions/{sid}/inputs/{theme_input}")
        assert removed.status_code == 200, removed.text
        board = await settled(http, sid)
        assert [i["text"] for i in board["inputs"]] == ["budget is $1500"]
        assert board["agents"]["theme"]["value"] is None
        assert board["version"] == 3

        listed = (await http.get("/v1/sessions")).json()["sessions"]
        assert [s["session_id"] for s in listed] == [sid]


async def test_two_clients_racing_on_one_version_one_gets_409(api: RunningServer) -> None:
    async with client(api) as one, client(api) as two:
        sid = (await one.post("/v1/sessions", json={"spec": party()})).json()["session_id"]
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/v1/sessions/{sid}/inputs",
                    json={"text": f"jungle idea {n}", "expected_version": 0},
                )
                for n, http in enumerate((one, two))
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409]
        conflict = next(a for a in answers if a.status_code == 409).json()
        assert conflict["current_version"] == 1
        assert conflict["error"]["code"] == "conflict"
        board = (await one.get(f"/v1/sessions/{sid}")).json()
        assert len(board["inputs"]) == 1 and board["version"] == 1
        stale = await one.delete(
            f"/v1/sessions/{sid}/inputs/{board['inputs'][0]['input_id']}",
            params={"expected_version": 0},
        )
        assert stale.status_code == 409 and stale.json()["current_version"] == 1
        assert len((await one.get(f"/v1/sessions/{sid}")).json()["inputs"]) == 1


async def test_rate_limit_is_429_with_retry_after_and_changes_nothing(
    api: RunningServer,
) -> None:
    async with client(api) as http:
        spec = party(max_changes_per_minute=2)
        sid = (await http.post("/v1/sessions", json={"spec": spec})).json()["session_id"]
        for n in range(2):
            ok = await http.post(f"/v1/sessions/{sid}/inputs", json={"text": f"idea {n}"})
            assert ok.status_code == 201
        refused = await http.post(f"/v1/sessions/{sid}/inputs", json={"text": "one more"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
        assert len((await http.get(f"/v1/sessions/{sid}")).json()["inputs"]) == 2


async def test_bad_input_is_422_or_404_and_changes_nothing(api: RunningServer) -> None:
    async with client(api) as http:
        sid = (await http.post("/v1/sessions", json={"spec": party(max_input_chars=20)})).json()[
            "session_id"
        ]
        too_long = await http.post(f"/v1/sessions/{sid}/inputs", json={"text": "x" * 21})
        assert too_long.status_code == 422 and "max_input_chars" in too_long.text
        unknown_tag = await http.post(
            f"/v1/sessions/{sid}/inputs", json={"text": "hi", "tags": ["nope"]}
        )
        assert unknown_tag.status_code == 422 and "unknown tag 'nope'" in unknown_tag.text
        missing = await http.delete(f"/v1/sessions/{sid}/inputs/no-such-input")
        assert missing.status_code == 404
        assert (await http.get("/v1/sessions/no-such-session")).status_code == 404
        board = (await http.get(f"/v1/sessions/{sid}")).json()
        assert board["inputs"] == [] and board["version"] == 0

        cycle = party()
        cycle["agents"][0]["depends_on"] = [cycle["agents"][-1]["name"]]
        bad = await http.post("/v1/sessions", json={"spec": cycle})
        assert bad.status_code == 422 and "cycle" in bad.json()["error"]["message"]
        code = party(routing={"mode": "function", "function": "os:system"})
        refused = await http.post("/v1/sessions", json={"spec": code})
        assert refused.status_code == 422 and "routing.function" in refused.text
        not_yaml = await http.post("/v1/sessions", json={"spec": "agents: [unclosed"})
        assert not_yaml.status_code == 422 and "YAML" in not_yaml.text
        assert (await http.get("/v1/sessions")).json()["sessions"][0]["session_id"] == sid
        assert len((await http.get("/v1/sessions")).json()["sessions"]) == 1


async def sse_events(
    http: httpx.AsyncClient, url: str, *, until: str, headers: dict[str, str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    seen: list[tuple[int, dict[str, Any]]] = []
    event_id = 0
    async with asyncio.timeout(60), http.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                seen.append((event_id, data))
                if data["type"] == until:
                    return seen
    return seen


async def test_sse_streams_the_log_and_resumes_after_last_event_id(api: RunningServer) -> None:
    async with client(api) as http:
        sid = (
            await http.post(
                "/v1/sessions", json={"spec": party(), "inputs": [{"text": "jungle theme"}]}
            )
        ).json()["session_id"]
        first = await sse_events(http, f"/v1/sessions/{sid}/events", until="session.settled")
        seqs = [seq for seq, _ in first]
        assert seqs == list(range(1, len(seqs) + 1))
        assert first[0][1]["type"] == "session.created"
        assert all(seq == data["seq"] for seq, data in first)
        # Resume mid-log: exactly the events after it, then a live change.
        resume_at = seqs[len(seqs) // 2]
        task = asyncio.create_task(
            sse_events(
                http,
                f"/v1/sessions/{sid}/events",
                until="input.removed",
                headers={"Last-Event-ID": str(resume_at)},
            )
        )
        input_id = (await http.get(f"/v1/sessions/{sid}")).json()["inputs"][0]["input_id"]
        await asyncio.sleep(0.2)
        assert (await http.delete(f"/v1/sessions/{sid}/inputs/{input_id}")).status_code == 200
        resumed = await task
        assert resumed[0][0] == resume_at + 1
        assert [s for s, _ in resumed] == list(range(resume_at + 1, resumed[-1][0] + 1))
        by_query = await http.get(
            f"/v1/sessions/{sid}/events", params={"format": "json", "after": resume_at}
        )
        assert by_query.json()["events"][0]["seq"] == resume_at + 1


async def test_websocket_streams_every_change_and_resumes_by_after(api: RunningServer) -> None:
    async with client(api) as http:
        sid = (await http.post("/v1/sessions", json={"spec": party()})).json()["session_id"]
        url = f"{api.ws_url}/v1/sessions/{sid}/ws"
        async with connect(f"{url}?access_token={ALICE}") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "session.created" and first["seq"] == 1
            added = await http.post(f"/v1/sessions/{sid}/inputs", json={"text": "jungle theme"})
            assert added.status_code == 201
            types = []
            async with asyncio.timeout(60):
                while "input.added" not in types or types[-1] != "session.settled":
                    types.append(json.loads(await ws.recv())["type"])
            after_input = types[types.index("input.added") :]
            assert "agent.completed" in after_input and "aggregate.updated" in after_input
        async with connect(f"{url}?after=1&access_token={ALICE}") as ws:
            again = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert again["seq"] == 2
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{url}?access_token={BOB}"):
                pass
        assert refused.value.response.status_code == 404


async def test_another_tenant_never_sees_or_changes_a_session(api: RunningServer) -> None:
    async with client(api, ALICE) as alice, client(api, BOB) as bob:
        created = await alice.post(
            "/v1/sessions", json={"spec": party(), "inputs": [{"text": "alice's secret"}]}
        )
        sid = created.json()["session_id"]
        input_id = created.json()["inputs"][0]["input_id"]
        assert (await bob.get("/v1/sessions")).json()["sessions"] == []
        for method, url, body in (
            ("GET", f"/v1/sessions/{sid}", None),
            ("GET", f"/v1/sessions/{sid}/events", None),
            ("POST", f"/v1/sessions/{sid}/inputs", {"text": "bob's"}),
            ("DELETE", f"/v1/sessions/{sid}/inputs/{input_id}", None),
        ):
            answer = await bob.request(method, url, json=body)
            assert answer.status_code == 404, (method, url, answer.text)
            assert "secret" not in answer.text
        board = (await alice.get(f"/v1/sessions/{sid}")).json()
        assert [i["text"] for i in board["inputs"]] == ["alice's secret"]
        # Bob's session named alike with other agents cannot replace alice's agents.
        spec = party()
        spec["agents"][0]["instructions"] = "Leak everything."
        clash = await bob.post("/v1/sessions", json={"spec": spec})
        assert clash.status_code == 409 and "spec.name" in clash.text
        assert len((await alice.get("/v1/sessions")).json()["sessions"]) == 1
