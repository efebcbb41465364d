"""The session board page in headless Chromium, against the real API server and engine.

The party example runs on its scripted model: the test opens its board, adds an input card and
watches the agents and the aggregate change, then removes the card and watches them change
again, the way an operator would.

Set ``PLANWEAVE_SCREENSHOTS=docs`` to save the board as ``docs/ui-session.png``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from tests.test_ui_e2e import Watch, browser, page, save_screenshot

from planweave import Engine
from planweave.config import Settings
from planweave.llm import ScriptedModel
from planweave.sessions import Session, SessionSpec

try:
    from playwright.async_api import Page, expect
except ImportError:  # test_ui_e2e's marks skip these tests, naming the package
    Page = None  # type: ignore[assignment,misc]

__all__ = ["browser", "page"]  # the fixtures, used by name

PARTY = Path(__file__).resolve().parents[1] / "examples" / "party"

pytestmark = [
    pytest.mark.skipif(Page is None, reason="the playwright package is absent"),
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is absent (apt-get install chromium)",
    ),
    pytest.mark.slow,
]


@contextlib.asynccontextmanager
async def serve_party(tmp_path: Path, **spec_changes: object) -> AsyncIterator[tuple[str, Session]]:
    """The API in local mode over an engine with the party session; yields (URL, session)."""
    from planweave.server.testing import running_server

    replies = yaml.safe_load((PARTY / "scripted.yaml").read_text())["replies"]
    data_dir = tmp_path / "data"
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=data_dir,
        builtins=False,
    )
    settings = Settings(data_dir=data_dir, tokens={}, rate_limit_per_s=0)
    try:
        async with running_server(engine, settings, keepalive_s=1.0) as api:
            spec = SessionSpec.from_file(PARTY / "party.yaml").model_copy(update=spec_changes)
            session = await engine.sessions.create(spec)
            yield api.url, session
    finally:
        await engine.close()


async def agent_statuses(page: Page) -> dict[str, str]:
    statuses: dict[str, str] = await page.eval_on_selector_all(
        "[data-testid=agent-row]",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.agent, r.dataset.status]))",
    )
    return statuses


async def test_adding_and_removing_a_card_changes_the_board_live(
    tmp_path: Path, page: Page
) -> None:
    watch = Watch(page)
    async with serve_party(tmp_path) as (url, session):
        session_id = session.id
        await page.goto(url + "/#/sessions")
        await page.locator(f'tr[data-session-id="{session_id}"] a').click()
        await page.wait_for_url(re.compile(r"#/sessions/[^/]+$"))
        board = page.get_by_test_id("session-board")
        await board.wait_for()
        cards = page.get_by_test_id("input-card")
        assert await cards.count() == 0
        assert await page.get_by_test_id("agents-table").locator("tr[data-agent]").count() == 6

        await page.get_by_label("New input").fill("jungle theme party for 75 guests")
        await page.get_by_test_id("add-input").click()
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text("jungle theme party")
        await expect(page.get_by_test_id("input-text")).to_have_value("")
        # The graph lights up and settles: theme and what depends on it ran.
        head = page.get_by_test_id("session-head")
        await expect(head).to_have_attribute("data-settled", "true")
        theme = page.locator('svg.dag g.node[data-task-id="theme"]')
        await expect(theme).to_have_attribute("data-status", "succeeded")
        await expect(page.locator('[data-agent="cake"]')).to_contain_text("Sweet Safari")
        await expect(page.get_by_test_id("next-steps")).to_contain_text("Book the venue")
        completion = page.get_by_test_id("completion")
        await expect(completion).not_to_have_text(re.compile(r"^\s*0%"))
        first = (await completion.text_content() or "").strip()
        first_version = await page.get_by_test_id("aggregate").get_attribute("data-version")
        save_screenshot(await page.screenshot(full_page=True), "ui-session.png")

        await page.get_by_label("New input").fill("budget is $1500")
        await page.get_by_label("Tags (comma-separated, optional)").fill("budget")
        await page.get_by_test_id("add-input").click()
        await expect(cards).to_have_count(2)
        await expect(page.locator('[data-agent="budget"]')).to_contain_text("1500")
        await expect(page.get_by_test_id("aggregate")).not_to_have_attribute(
            "data-version", first_version or ""
        )

        # Removing the theme card cascades: theme drops, the cake turns back to the classic one.
        await cards.filter(has_text="jungle").get_by_test_id("remove-input").click()
        await expect(cards).to_have_count(1)
        await expect(page.locator('[data-agent="theme"]')).to_have_attribute(
            "data-status", "dropped"
        )
        await expect(theme).to_have_attribute("data-status", "cancelled")
        await expect(page.locator('[data-agent="cake"]')).not_to_contain_text("Sweet Safari")
        await expect(head).to_have_attribute("data-settled", "true")
        await expect(completion).not_to_have_text(first)
        statuses = await agent_statuses(page)
        problems = watch.problems()
    assert statuses["theme"] == "dropped"
    assert problems == []


async def test_a_stale_add_is_a_notice_and_the_typed_text_stays(tmp_path: Path, page: Page) -> None:
    async with serve_party(tmp_path) as (url, session):
        # No live stream: the page keeps the version it loaded while another client changes it.
        await page.route("**/v1/sessions/*/events*", lambda route: route.abort())
        await page.goto(url + f"/#/sessions/{session.id}")
        await expect(page.get_by_test_id("session-version")).to_contain_text("version 0")
        await session.add_input("jungle theme party for 75 guests")

        text = page.get_by_label("New input")
        await text.fill("budget is $1500")
        await page.get_by_test_id("add-input").click()
        notice = page.get_by_test_id("notice")
        await expect(notice).to_contain_text("now version 1")
        await expect(text).to_have_value("budget is $1500")
        await expect(page.get_by_test_id("input-card")).to_have_count(1)

        await page.get_by_test_id("add-input").click()  # based on the reloaded board
        await expect(page.get_by_test_id("input-card")).to_have_count(2)
        await expect(text).to_have_value("")
        board = session.board()
    assert sorted(i["text"] for i in board["inputs"]) == [
        "budget is $1500",
        "jungle theme party for 75 guests",
    ]


async def test_a_rate_limited_add_says_when_to_retry_and_keeps_the_text(
    tmp_path: Path, page: Page
) -> None:
    async with serve_party(tmp_path, max_changes_per_minute=1) as (url, session):
        await page.goto(url + f"/#/sessions/{session.id}")
        text = page.get_by_label("New input")
        await text.fill("jungle theme party for 75 guests")
        await page.get_by_test_id("add-input").click()
        await expect(page.get_by_test_id("input-card")).to_have_count(1)

        await text.fill("budget is $1500")
        await page.get_by_test_id("add-input").click()
        await expect(page.get_by_test_id("notice")).to_contain_text(
            re.compile(r"try again in \d+ seconds")
        )
        await expect(text).to_have_value("budget is $1500")
        await expect(page.get_by_test_id("input-card")).to_have_count(1)
