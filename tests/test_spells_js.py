"""JavaScript spells in their V8 isolate: host calls, errors with the script's own line, and a
hostile script's attempts, refused or stopped with the host unharmed."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from planweave.spells import JsLimits, SpellError, SpellLimitExceeded, SpellSyntaxError, run_js

SMALL = JsLimits(memory_bytes=32 * 1024 * 1024, wall_s=3)


class Host:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    async def __call__(self, op: str, args: list[Any]) -> Any:
        self.calls.append((op, args))
        if op == "tools.call" and args and args[0] == "fail":
            raise SpellError("tool 'fail' failed: it always does")
        return {"tool": args[0] if args else None, "args": args[1:] or [{}]}


async def run(source: str, host: Host | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("limits", SMALL)
    return await run_js(source, host=host or Host(), ops=["tools.call", "log.info"], **kwargs)


async def test_a_spell_awaits_host_calls_and_returns_plain_values() -> None:
    host = Host()
    result = await run(
        "const page = await tools.call('http_fetch', { url: params.url });\n"
        "await log.info('fetched');\n"
        "return { url: page.args[0].url, list: params.list, none: undefined };",
        host,
        globals_={"params": {"url": "https://example.org", "list": [1, 2]}},
    )
    assert result == {"url": "https://example.org", "list": [1, 2]}
    assert host.calls == [
        ("tools.call", ["http_fetch", {"url": "https://example.org"}]),
        ("log.info", ["fetched"]),
    ]


async def test_host_calls_run_concurrently_with_promise_all() -> None:
    waiting = 0
    all_here = asyncio.Event()

    class Gathering(Host):
        async def __call__(self, op: str, args: list[Any]) -> Any:
            nonlocal waiting
            waiting += 1
            if waiting == 3:
                all_here.set()
            await asyncio.wait_for(all_here.wait(), 10)  # returns only once all three wait
            return args[0]

    result = await run(
        "return await Promise.all(['a', 'b', 'c'].map(n => tools.call(n)));", Gathering()
    )
    assert result == ["a", "b", "c"]


async def test_errors_name_the_script_and_its_line() -> None:
    with pytest.raises(SpellError, match=r"^main\.js:2: TypeError: Cannot read properties of null"):
        await run("const x = 1;\nnull.y;")
    with pytest.raises(SpellError, match=r"^review\.js:1: Error: tool 'fail' failed"):
        await run("await tools.call('fail');", chunk="review.js")
    with pytest.raises(SpellSyntaxError, match=r"^main\.js:\d+: SyntaxError"):
        await run("const x = 1;\nreturn 1 +")


async def test_a_failed_host_call_can_be_caught_by_the_spell() -> None:
    result = await run("try { await tools.call('fail'); } catch (e) { return e.message; }")
    assert "tool 'fail' failed" in result


@pytest.mark.parametrize(
    "source",
    [
        "return typeof require",
        "return typeof process",
        "return typeof __planweave_host",
        "return ({}).constructor.constructor('return typeof process')()",
        "return Object.getOwnPropertyNames(globalThis)"
        ".filter(n => /^(require|process|python|fs|os|module)$|host|planweave/i.test(n)).join()",
    ],
)
async def test_nothing_of_the_host_is_reachable(source: str) -> None:
    assert await run(source) in ("undefined", "")


async def test_a_spell_that_replaces_json_still_reaches_the_host() -> None:
    host = Host()
    result = await run(
        "globalThis.JSON = null;\nconst got = await tools.call('echo', { n: 1 });\nreturn got.tool;",
        host,
    )
    assert result == "echo"
    assert host.calls == [("tools.call", ["echo", {"n": 1}])]


async def test_prototype_tricks_stay_inside_the_spell() -> None:
    polluted = await run(
        "Object.prototype.polluted = 'yes'; Array.prototype.push = () => 0;\nreturn polluted;"
    )
    assert polluted == "yes"  # the script's own isolate only
    assert await run("return [typeof ({}).polluted, [1].push(2), typeof JSON.parse];") == [
        "undefined",
        2,
        "function",
    ]


async def test_dynamic_import_is_refused() -> None:
    with pytest.raises(SpellError, match="Not supported"):
        await run("return await import('fs');")


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("while (1) {}", "wall_time"),
        ("await tools.call('a'); while (true) {}", "wall_time"),
        ("return /(a+)+$/.test('a'.repeat(40) + 'b');", "wall_time"),
        ("const a = []; while (true) a.push('x'.repeat(1000) + a.length);", "memory"),
        (
            "const m = new Map(); for (let i = 0; ; i++) m.set(i, { i, s: 'y'.repeat(64) + i });",
            "memory",
        ),
    ],
)
async def test_runaway_spells_are_stopped_at_their_limit(source: str, limit: str) -> None:
    with pytest.raises(SpellLimitExceeded) as raised:
        await run(source, limits=JsLimits(memory_bytes=32 * 1024 * 1024, wall_s=1.5))
    assert raised.value.limit == limit


async def test_deep_recursion_and_giant_strings_are_errors_the_host_survives() -> None:
    with pytest.raises(SpellError, match="Maximum call stack size exceeded"):
        await run("function f() { return f() + 1; } return f();")
    with pytest.raises(SpellError, match="Invalid string length"):
        await run("let s = 'x'; while (true) s = s + s;")


async def test_a_spell_past_its_host_call_limit_is_stopped() -> None:
    with pytest.raises(SpellLimitExceeded) as raised:
        await run(
            "for (let i = 0; i < 100; i++) await tools.call('x');",
            limits=JsLimits(host_calls=5, wall_s=10),
        )
    assert raised.value.limit == "host_calls"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_the_host_survives_bombs_with_its_memory_flat() -> None:
    await run("return 1")  # the first isolate loads V8
    before = _rss_bytes()
    for _ in range(4):
        with pytest.raises(SpellLimitExceeded):
            await run("const a = []; while (true) a.push('x'.repeat(1000) + a.length);")
    assert _rss_bytes() - before < 128 * 1024 * 1024
    assert await run("return 'still here'") == "still here"


async def test_math_random_is_seeded_so_a_rerun_draws_the_same() -> None:
    source = "return [Math.random(), Math.random()];"
    assert await run(source, seed=7) == await run(source, seed=7)
    assert await run(source, seed=7) != await run(source, seed=8)
