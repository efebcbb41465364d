"""Approving and rejecting from the web UI, in a real headless Chromium against the real API:
the task panel of a waiting task shows the call with Approve / Reject and a reason box, and
the decision once made."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.test_ui_e2e import CHROMIUM, CHROMIUM_ARGS, TOKEN, Watch, async_playwright, serve_ui

from planweave import tool

if async_playwright is not None:
    from playwright.async_api import Page

pytestmark = [
    pytest.mark.skipif(
        async_playwright is None, reason="the playwright package is absent (pip install playwright)"
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"
    ),
    pytest.mark.slow,
]

REPLIES: list[dict[str, Any]] = [
    {
        "match": {"contains": "Remove the old report"},
        "tool_calls": [{"name": "remove_report", "arguments": {"name": "old"}}],
    },
    {"match": {"contains": "Remove the old report"}, "content": "the agent is done"},
    {"match": {"contains": "Write a summary"}, "content": "summary written"},
    {
        "match": {"contains": "Remove the new report"},
        "tool_calls": [{"name": "remove_report", "arguments": {"name": "new"}}],
    },
    {"match": {"contains": "Remove the new report"}, "content": "kept the new report"},
]


@pytest.fixture
async def ui_page() -> AsyncIterator[Page]:
    assert async_playwright is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield await context.new_page()
        finally:
            await context.close()
            await browser.close()


async def _submit(url: str, tasks: list[dict[str, Any]]) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        response = await client.post("/v1/jobs", json={"plan": {"tasks": tasks}})
        assert response.status_code == 201, response.text
        job_id: str = response.json()["job_id"]
        return job_id


async def _open_job(page: Page, url: str, job_id: str) -> None:
    await page.goto(url + "/")
    await page.evaluate("t => localStorage.setItem('planweave.token', t)", TOKEN)
    await page.goto(f"{url}/#/jobs/{job_id}")
    await page.wait_for_url(re.compile(r"#/jobs/[^/]+$"))


async def test_approve_and_reject_from_the_task_panel(tmp_path: Path, ui_page: Page) -> None:
    page = ui_page
    ledger: list[str] = []

    @tool(high_impact=True)
    def remove_report(name: str) -> str:
        """Remove a report for good."""
        ledger.append(name)
        return f"removed {name}"

    watch = Watch(page)
    async with serve_ui(tmp_path, REPLIES, tools=[remove_report]) as url:
        job_id = await _submit(
            url,
            [
                {"id": "risky", "kind": "execute", "goal": "Remove the old report"},
                {"id": "safe", "kind": "execute", "goal": "Write a summary"},
            ],
        )
        await _open_job(page, url, job_id)
        # Only the risky branch waits; the other one finishes.
        await page.locator('g.node[data-task-id=risky][data-status="awaiting_approval"]').wait_for()
        await page.locator('g.node[data-task-id=safe][data-status="succeeded"]').wait_for()
        await page.click("g.node[data-task-id=risky]")
        panel = page.locator('[data-testid=task-detail][data-task-id="risky"]')
        request = panel.get_by_test_id("approval-request")
        await request.wait_for()
        text = await request.text_content() or ""
        assert "remove_report" in text and '"old"' in text and "high impact" in text

        # Reject needs a reason: without one the page says so and sends nothing.
        await panel.get_by_test_id("reject-task").click()
        await panel.get_by_test_id("approval-problem").filter(has_text="reason").wait_for()
        assert ledger == []

        await panel.get_by_test_id("approval-reason").fill("looks fine")
        await panel.get_by_test_id("approve-task").click()
        await page.locator('g.node[data-task-id=risky][data-status="succeeded"]').wait_for()
        await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
        assert ledger == ["old"]
        await page.click("g.node[data-task-id=safe]")
        await page.click("g.node[data-task-id=risky]")
        decision = panel.get_by_test_id("approval-decision")
        await decision.filter(has_text="approved").wait_for()
        assert "by ui/" in (await decision.text_content() or "")
        assert "looks fine" in (await decision.text_content() or "")

        job2 = await _submit(
            url, [{"id": "again", "kind": "execute", "goal": "Remove the new report"}]
        )
        await _open_job(page, url, job2)
        await page.locator('g.node[data-task-id=again][data-status="awaiting_approval"]').wait_for()
        await page.click("g.node[data-task-id=again]")
        panel = page.locator('[data-testid=task-detail][data-task-id="again"]')
        await panel.get_by_test_id("approval-reason").fill("keep the new one")
        await panel.get_by_test_id("reject-task").click()
        await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
        await page.click("g.node[data-task-id=again]")
        decision = panel.get_by_test_id("approval-decision")
        await decision.filter(has_text="rejected").wait_for()
        assert "keep the new one" in (await decision.text_content() or "")
        problems = watch.problems()
    assert ledger == ["old"]
    assert problems == []
