"""The API server against hostile clients: half-open and trickling connections, connection
floods, token guessing, stream hoarding, refused WebSocket handshakes and the metrics' reach.

Each test uses real sockets against a real uvicorn server (one test a real ``planweave serve``
process), small limits that still trip, and asserts what a user would see: the server closes
what it must, and other clients keep being answered meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from planweave import Engine
from planweave.config import Settings
from planweave.llm import ScriptedModel
from planweave.server.testing import RunningServer, running_server

pytestmark = pytest.mark.timeout(60)

ALICE = "pw_alice_hostile_token_00000000000"
BOB = "pw_bob_hostile_token_111111111111111"
SCRAPER = "pw_scraper_hostile_token_2222222222"
CLOSED_WITHIN_S = 10.0  # generous: only a connection the server never closes misses it
PLAN = {"plan": {"tasks": [{"id": "a", "kind": "tool", "tool": "current_time"}]}}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **settings: Any) -> AsyncIterator[RunningServer]:
    # No workers: a submitted job stays running, so its event stream stays open.
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        run_workers=False,
    )
    values = {"data_dir": tmp_path / "data", "rate_limit_per_s": 10_000, **settings}
    try:
        async with running_server(engine, Settings.model_validate(values)) as server:
            yield server
    finally:
        await engine.close()


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def half_open(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    """Whether the server closes the connection (EOF) within ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def close_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in conns:
        writer.close()


async def test_half_open_connections_are_closed_while_others_are_answered(
    tmp_path: Path,
) -> None:
    async with serving(
        tmp_path, request_header_timeout_s=1.0, request_body_timeout_s=1.0, max_connections=200
    ) as server:
        port = port_of(server)
        conns = [await half_open(port, b"GET /v1/jo") for _ in range(40)]
        # Headers in, the body never finishes.
        body = b"POST /v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        body += b'content-length: 500\r\n\r\n{"goal": "'
        conns += [await half_open(port, body) for _ in range(5)]
        # A trickle: a header byte at a time keeps sending, but never finishes the head.
        trickle = await half_open(port, b"GET /healthz HTTP/1.1\r\nx-slow: ")

        async def keep_trickling() -> None:
            with contextlib.suppress(ConnectionError):
                while not trickle[1].is_closing():
                    trickle[1].write(b"a")
                    await trickle[1].drain()
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(keep_trickling())
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
                for _ in range(5):  # a normal client is answered all along
                    assert (await http.get("/healthz")).status_code == 200
                    assert (await http.post("/v1/jobs", json=PLAN)).status_code == 201
                closed = await asyncio.gather(
                    *(closed_by_server(r, CLOSED_WITHIN_S) for r, _ in [*conns, trickle])
                )
                assert all(closed), f"{closed.count(False)} connections still open"
                assert (await http.get("/healthz")).status_code == 200
        finally:
            trickling.cancel()
            close_all([*conns, trickle])


async def test_an_idle_keep_alive_connection_gets_a_new_head_deadline(tmp_path: Path) -> None:
    async with serving(tmp_path, request_header_timeout_s=1.0, keep_alive_timeout_s=30) as server:
        reader, writer = await half_open(
            port_of(server), b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readexactly(int(_header(head, b"content-length"))), 5)
            # The next request starts but never ends: the 30 s keep-alive does not keep it.
            writer.write(b"GET /heal")
            await writer.drain()
            assert await closed_by_server(reader, CLOSED_WITHIN_S)
        finally:
            writer.close()


def _header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} header in {head!r}")


async def test_connections_past_the_cap_are_closed_at_once(tmp_path: Path) -> None:
    async with serving(tmp_path, request_header_timeout_s=30.0, max_connections=10) as server:
        port = port_of(server)
        held = [await half_open(port, b"GET /") for _ in range(10)]
        try:
            held.append(await half_open(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"))
            # Closed well before the 30 s head deadline could have closed it.
            assert await closed_by_server(held[-1][0], 5.0)
        finally:
            close_all(held)
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            for _ in range(50):  # the server notices the closed ones at once
                if (await http.get("/healthz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await http.get("/healthz")).status_code == 200


LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


async def test_planweave_serve_takes_the_limits_from_its_flags(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "planweave.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        "data",
        "--request-header-timeout-s",
        "1",
        "--max-connections",
        "50",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = None
        async with asyncio.timeout(45):
            while url is None and (line := await proc.stdout.readline()):
                found = LISTENING.search(line.decode())
                url = found.group(1) if found else None
        assert url is not None, "planweave serve did not start"
        port = int(url.rsplit(":", 1)[1])
        conns = [await half_open(port, b"GET /v1/jobs HTTP/1.1\r\nhost") for _ in range(20)]
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                assert (await http.get("/healthz")).status_code == 200
            closed = await asyncio.gather(*(closed_by_server(r, CLOSED_WITHIN_S) for r, _ in conns))
            assert all(closed), f"{closed.count(False)} connections still open"
        finally:
            close_all(conns)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


def _client(server: RunningServer, token: str | None, source: str = "127.0.0.1") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=5, transport=transport)


async def test_failed_logins_are_limited_per_address_and_valid_tokens_spend_nothing(
    tmp_path: Path,
) -> None:
    async with (
        serving(
            tmp_path,
            tokens=f"alice:{ALICE}",
            auth_failure_rate_per_s=0.1,
            auth_failure_burst=5,
        ) as server,
        _client(server, ALICE) as alice,
        _client(server, "pw_guess") as guesser,
        _client(server, "pw_guess", source="127.0.0.2") as elsewhere,
    ):
        for _ in range(30):  # valid tokens take nothing from the budget
            assert (await alice.get("/v1/jobs")).status_code == 200
        statuses = [(await guesser.get("/v1/jobs")).status_code for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        limited = await guesser.get("/v1/jobs")
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        # Past the budget, the address is refused before any token is looked at, so a
        # guesser learns nothing, not even from a right guess ...
        assert (await alice.get("/v1/jobs")).status_code == 429
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.ws_url}/v1/jobs/x/events/ws?access_token=nope"):
                pass
        assert refused.value.response.status_code == 429
        # ... while other addresses are still told 401.
        assert (await elsewhere.get("/v1/jobs")).status_code == 401


async def test_rejected_websocket_handshakes_log_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path, tokens=f"alice:{ALICE},bob:{BOB}") as server:
        async with _client(server, ALICE) as alice:
            job_id = (await alice.post("/v1/jobs", json=PLAN)).json()["job_id"]
        caplog.set_level(logging.DEBUG)
        # uvicorn's loggers do not propagate to the root logger: listen to them directly.
        uvicorn_log = logging.getLogger("uvicorn")
        uvicorn_log.addHandler(caplog.handler)
        levels = {name: logging.getLogger(name).level for name in ("uvicorn", "uvicorn.error")}
        for name in levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            await _refused_handshakes(server, job_id)
        finally:
            uvicorn_log.removeHandler(caplog.handler)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
    served = [r for r in caplog.records if r.name.startswith(("uvicorn", "planweave"))]
    loud = [r for r in served if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.levelname, r.getMessage()) for r in loud]
    assert any("WebSocket" in r.getMessage() for r in served), "the log capture is not working"
    assert not any(ALICE in r.getMessage() or BOB in r.getMessage() for r in served)


async def _refused_handshakes(server: RunningServer, job_id: str) -> None:
    url = f"{server.ws_url}/v1/jobs"
    for target, status in (
        (f"{url}/{job_id}/events/ws?access_token=nope", 401),
        (f"{url}/{job_id}/events/ws", 401),
        (f"{url}/{job_id}/events/ws?access_token={BOB}", 404),
        (f"{url}/unknown-job/events/ws?access_token={ALICE}", 404),
        (f"{url}/{job_id}/events/ws?access_token={ALICE}&after=x", 422),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(target):
                pass
        assert refused.value.response.status_code == status
    async with connect(f"{url}/{job_id}/events/ws?access_token={ALICE}") as ws:
        assert '"JobSubmitted"' in str(await asyncio.wait_for(ws.recv(), 5))
    await asyncio.sleep(0.2)


async def test_event_streams_are_capped_per_tenant(tmp_path: Path) -> None:
    async with (
        serving(
            tmp_path, tokens=f"alice:{ALICE},bob:{BOB}", max_event_streams_per_tenant=3
        ) as server,
        _client(server, ALICE) as alice,
        _client(server, BOB) as bob,
    ):
        job_id = (await alice.post("/v1/jobs", json=PLAN)).json()["job_id"]
        ws_url = f"{server.ws_url}/v1/jobs/{job_id}/events/ws?access_token={ALICE}"
        async with contextlib.AsyncExitStack() as streams:
            for path in ("/v1/events", f"/v1/jobs/{job_id}/events"):
                response = await streams.enter_async_context(alice.stream("GET", path))
                assert response.status_code == 200
            await streams.enter_async_context(connect(ws_url))
            # A fourth stream of any kind is refused; the other tenant is not.
            over = await alice.get("/v1/events")
            assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
            assert int(over.headers["retry-after"]) >= 1
            over = await alice.get(f"/v1/jobs/{job_id}/events")
            assert over.status_code == 429
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url):
                    pass
            assert refused.value.response.status_code == 429
            assert (await alice.get(f"/v1/jobs/{job_id}/events?format=json")).status_code == 200
            async with bob.stream("GET", "/v1/events") as theirs:
                assert theirs.status_code == 200
        # Closed streams free their places.
        for _ in range(50):
            async with alice.stream("GET", "/v1/events") as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        assert again.status_code == 200


async def test_metrics_take_their_own_token(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, tokens=f"alice:{ALICE}", metrics_token=SCRAPER) as server,
        _client(server, ALICE) as alice,
        _client(server, SCRAPER) as scraper,
    ):
        refused = await alice.get("/metrics")
        assert refused.status_code == 403 and "planweave_jobs" not in refused.text
        assert "metrics_token" in refused.json()["error"]["message"]
        scraped = await scraper.get("/metrics")
        assert scraped.status_code == 200 and "planweave_jobs" in scraped.text
        assert (await scraper.get("/v1/jobs")).status_code == 401
    # Without a metrics token no token reads them; with no tokens at all (this machine only,
    # one tenant) they are open.
    async with (
        serving(tmp_path / "b", tokens=f"alice:{ALICE}") as server,
        _client(server, ALICE) as alice,
    ):
        assert (await alice.get("/metrics")).status_code == 403
    async with serving(tmp_path / "c") as server, _client(server, None) as anyone:
        assert (await anyone.get("/metrics")).status_code == 200
