"""The web UI's files, read as text: no HTML strings, no inline code, nothing from elsewhere.

These are the rules that make model output safe to show (S10): if a file broke one, a model's
``<script>`` or image could run or load in an operator's browser. The browser tests in
``test_ui_e2e.py`` check the same behaviour end to end.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "src" / "planweave" / "server" / "static"
SCRIPTS = sorted(STATIC.rglob("*.js"))


def test_the_ui_is_plain_files_with_an_entry_page() -> None:
    names = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert {
        "index.html",
        "app.js",
        "style.css",
        "markdown.js",
        "sse.js",
        "dag.js",
        "api.js",
    } <= names
    assert not any(n.endswith((".ts", ".jsx", ".map")) for n in names), "no build step"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_scripts_never_turn_strings_into_html_or_code(script: Path) -> None:
    source = script.read_text()
    code = re.sub(r"^\s*//.*$", "", source, flags=re.M)  # comments may name what is banned
    banned = {
        "innerHTML": r"\.innerHTML\b",
        "outerHTML": r"\.outerHTML\b",
        "insertAdjacentHTML": r"insertAdjacentHTML",
        "document.write": r"document\.write",
        "eval": r"\beval\s*\(",
        "new Function": r"new\s+Function\b",
        "string timers": r"set(?:Timeout|Interval)\(\s*[\"'`]",
        "createContextualFragment": r"createContextualFragment",
        "DOMParser": r"DOMParser",
        "inline styles": r"\.style\.|setAttribute\(\s*[\"']style",
        "img elements": r"[\"']img[\"']",
    }
    found = [name for name, pattern in banned.items() if re.search(pattern, code)]
    assert found == [], f"{script.name} uses {found}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_scripts_import_only_files_that_exist_here(script: Path) -> None:
    source = script.read_text()
    specifiers = re.findall(r"^import\s[^;]*?from\s+\"([^\"]+)\";", source, flags=re.M | re.S)
    for spec in specifiers:
        assert spec.startswith("./") or spec.startswith("../"), f"{script.name}: {spec}"
        assert (script.parent / spec).resolve().is_file(), f"{script.name}: {spec} is missing"
    urls = set(re.findall(r"https?://[^\s\"'`)]+", source)) - {"http://www.w3.org/2000/svg"}
    assert urls == set(), f"{script.name} refers to {urls}"


class _PageScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.refs: list[str] = []
        self.csp = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if not values.get("src"):
                self.problems.append("inline <script>")
            else:
                self.refs.append(values["src"] or "")
        if tag == "link" and values.get("rel") == "stylesheet":
            self.refs.append(values.get("href") or "")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = values.get("content") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_the_entry_page_has_no_inline_code_and_a_strict_policy() -> None:
    scan = _PageScan()
    scan.feed((STATIC / "index.html").read_text())
    assert scan.problems == []
    assert sorted(scan.refs) == ["/static/app.js", "/static/style.css"]
    for ref in scan.refs:
        assert (STATIC / ref.removeprefix("/static/")).is_file()
    policy = {part.split()[0]: part.split()[1:] for part in scan.csp.split(";") if part.strip()}
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]


def test_the_stylesheet_loads_nothing_from_elsewhere() -> None:
    css = (STATIC / "style.css").read_text()
    assert "@import" not in css
    assert re.findall(r"url\(", css) == []
    assert "@font-face" not in css
