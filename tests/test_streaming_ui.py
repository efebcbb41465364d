"""The web UI's task panel shows a running task's reply growing, in a real headless Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from planweave import Engine
from planweave.config import Settings
from planweave.llm import ScriptedModel
from planweave.server.testing import running_server

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # the skip below says what to install
    async_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
REPLY = "Live words appear here while the model is still writing them down"

pytestmark = [
    pytest.mark.skipif(
        async_playwright is None, reason="the playwright package is absent (pip install playwright)"
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"
    ),
    pytest.mark.slow,
]


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    assert async_playwright is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(15_000)
            yield await context.new_page()
        finally:
            await browser.close()


async def test_the_task_panel_shows_the_reply_as_it_grows(tmp_path: Path, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    gate = asyncio.Event()
    model = ScriptedModel(
        [{"match": {"role": "executor"}, "content": REPLY, "delta_delay_s": 0.25}],
        stream_gate=gate,
    )
    engine = Engine(store=f"sqlite:///{tmp_path / 'j.db'}", model=model, data_dir=tmp_path / "d")
    settings = Settings(data_dir=tmp_path / "d", tokens={}, rate_limit_per_s=0)
    try:
        async with running_server(engine, settings, keepalive_s=1.0) as api:
            async with httpx.AsyncClient(base_url=api.url) as http:
                body = {"plan": {"tasks": [{"id": "write", "goal": "Write it down"}]}}
                response = await http.post("/v1/jobs", json=body)
                assert response.status_code == 201, response.text
                job_id = response.json()["job_id"]
            await page.goto(f"{api.url}/#/jobs/{job_id}")
            await page.get_by_test_id("stream-state").filter(has_text="live").wait_for()
            await page.click("g.node[data-task-id=write]")
            detail = page.locator('[data-testid=task-detail][data-task-id="write"]')
            await detail.wait_for()
            gate.set()  # the model goes on writing, a word every quarter second
            # Seen mid-call: part of the reply, not yet its end, and no finished call listed.
            await page.wait_for_function(
                """() => {
                    const box = document.querySelector('[data-testid=live-reply]');
                    return box && box.textContent.includes('appear')
                        && !box.textContent.includes('down');
                }"""
            )
            assert await detail.get_by_test_id("llm-call").count() == 0
            await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
            await page.locator('[data-testid=task-detail][data-status="succeeded"]').wait_for()
            assert await page.get_by_test_id("live-reply").count() == 0
            reply = detail.get_by_test_id("llm-reply").first
            assert REPLY in (await reply.text_content() or "")
    finally:
        gate.set()
        await engine.close()
    assert errors == []
