"""The critic's verdicts in the web UI's task panel, in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.test_ui_e2e import TOKEN, Watch, browser, page, serve_ui

from planweave import Plan, TaskSpec

try:
    from playwright.async_api import Page
except ImportError:  # test_ui_e2e's marks skip these tests, naming the package
    Page = None  # type: ignore[assignment,misc]

__all__ = ["browser", "page"]  # the fixtures, used by name

pytestmark = [
    pytest.mark.skipif(Page is None, reason="the playwright package is absent"),
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is absent (apt-get install chromium)",
    ),
    pytest.mark.slow,
]


async def test_the_task_panel_shows_the_critics_verdicts(tmp_path: Path, page: Page) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "cite a source"}, "content": "Rain, per NOAA"},
        {"match": {"role": "executor"}, "content": "Rain"},
        {"match": {"role": "critic"}, "json": {"verdict": "revise", "feedback": "cite a source"}},
        {"match": {"role": "critic"}, "json": {"verdict": "pass", "feedback": ""}},
    ]
    plan = Plan(tasks=(TaskSpec(id="poem", goal="Write about rain", critic=True),))
    watch = Watch(page)
    async with serve_ui(tmp_path, replies) as url:
        await page.goto(url + "/#/new")
        await page.evaluate("t => localStorage.setItem('planweave.token', t)", TOKEN)
        await page.reload()
        await page.get_by_test_id("mode-plan").check(force=True)
        await page.get_by_test_id("plan-input").fill(json.dumps(plan.model_dump(mode="json")))
        await page.get_by_test_id("submit-job").click()
        await page.wait_for_url(re.compile(r"#/jobs/[^/]+$"))
        await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
        events = page.get_by_test_id("events")
        assert await events.locator('tr[data-type="CriticVerdict"]').count() == 2

        await page.click("g.node[data-task-id=poem]")
        panel = page.locator('[data-testid=task-detail][data-task-id="poem"]')
        verdicts = panel.get_by_test_id("critic-verdict")
        await verdicts.nth(1).wait_for()
        assert [await v.get_attribute("data-verdict") for v in await verdicts.all()] == [
            "revise",
            "pass",
        ]
        assert "cite a source" in (await verdicts.nth(0).text_content() or "")
        assert "Rain, per NOAA" in (await panel.get_by_test_id("task-output").text_content() or "")
        problems = watch.problems()
    assert problems == []
