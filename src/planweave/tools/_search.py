"""Web search through a provider the operator chooses: SearXNG, Brave or Tavily.

One small :class:`SearchProvider` per service turns a query into a request and the service's
answer into ``{"title", "url", "snippet"}`` results; the request itself goes through the same
network guard as every other tool (``_fetch.request_url``). Which provider serves a job is the
operator's setting (:class:`WebSearchConfig`, from ``web_search_*`` in ``planweave.toml``), or
found from ``BRAVE_API_KEY`` / ``TAVILY_API_KEY`` in the environment. With none, the tool says so
to the model: it never makes results up.

An API key travels only in a request header to the provider's own origin (redirects elsewhere
drop it); it is not an argument of the call, never part of a result or an error message, and
hidden from the config's ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

from planweave._text import truncate
from planweave.errors import ConfigError, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool
from planweave.tools._fetch import HttpResponse, request_url

__all__ = [
    "PROVIDER_NAMES",
    "SearchProvider",
    "WebSearchConfig",
    "web_search",
    "web_search_config",
]

ProviderName = Literal["searxng", "brave", "tavily"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("searxng", "brave", "tavily")
KEY_VARIABLES: dict[str, str] = {"brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}
_KEYED: tuple[ProviderName, ...] = ("brave", "tavily")
MAX_RESULTS = 20
MAX_QUERY_CHARS = 400
MAX_ANSWER_BYTES = 2_000_000
_SNIPPET_CHARS = 500
_TITLE_CHARS = 300
NOT_CONFIGURED = (
    "no web search provider is configured; set web_search_url (a SearXNG instance) in "
    "planweave.toml or PLANWEAVE_WEB_SEARCH_URL, or BRAVE_API_KEY or TAVILY_API_KEY in the "
    "environment"
)


@dataclass(frozen=True, kw_only=True)
class WebSearchConfig:
    """Which search service ``web_search`` asks, and how.

    Attributes:
        provider: ``searxng``, ``brave`` or ``tavily``.
        url: The service's endpoint: required for SearXNG (its base URL, e.g.
            ``http://searx.internal:8080``); for Brave and Tavily their public API unless set.
        api_key: The key for Brave or Tavily (``None``: read ``BRAVE_API_KEY`` or
            ``TAVILY_API_KEY`` from the environment when a search runs).
    """

    provider: ProviderName
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.provider not in PROVIDER_NAMES:
            raise ConfigError(
                f"unknown web search provider {self.provider!r}: use one of "
                + ", ".join(PROVIDER_NAMES)
            )
        if self.provider == "searxng" and not self.url:
            raise ConfigError("the searxng web search provider needs web_search_url")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ConfigError(f"web_search_url must be an http or https URL, not {self.url!r}")


def web_search_config(
    provider: str | None, url: str | None, api_key: str | None
) -> WebSearchConfig | None:
    """The config the ``web_search_*`` settings describe (a URL alone means SearXNG), or
    ``None`` when they name no provider."""
    if provider is None and url is None and api_key is None:
        return None
    if provider is None:
        if url is None:
            raise ConfigError("web_search_api_key needs web_search_provider (brave or tavily)")
        provider = "searxng"
    if provider not in PROVIDER_NAMES:
        raise ConfigError(
            f"unknown web search provider {provider!r}: use one of " + ", ".join(PROVIDER_NAMES)
        )
    return WebSearchConfig(provider=provider, url=url, api_key=api_key)


@dataclass(frozen=True)
class _Request:
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None


class SearchProvider(Protocol):
    """Turns a query into one HTTP request and the service's answer into results."""

    def request(self, query: str, count: int) -> _Request: ...

    def results(self, answer: Any) -> list[dict[str, str]]: ...


def _result(title: Any, url: Any, snippet: Any) -> dict[str, str] | None:
    if not isinstance(url, str) or not url:
        return None
    return {
        "title": truncate(str(title or ""), _TITLE_CHARS),
        "url": url,
        "snippet": truncate(str(snippet or ""), _SNIPPET_CHARS),
    }


def _listed(answer: Any, *path: str) -> list[Any]:
    node = answer
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, list) else []


@dataclass(frozen=True)
class _SearxNG:
    base: str

    def request(self, query: str, count: int) -> _Request:
        split = urlsplit(self.base)
        path = split.path.rstrip("/")
        if not path.endswith("/search"):
            path += "/search"
        query_string = urlencode({"q": query, "format": "json"})
        return _Request(
            urlunsplit((split.scheme, split.netloc, path, query_string, "")),
            headers={"Accept": "application/json"},
        )

    def results(self, answer: Any) -> list[dict[str, str]]:
        found = (_result(r.get("title"), r.get("url"), r.get("content")) for r in _dicts(answer))
        return [r for r in found if r is not None]


def _dicts(answer: Any, *path: str) -> list[dict[str, Any]]:
    return [r for r in _listed(answer, *(path or ("results",))) if isinstance(r, dict)]


@dataclass(frozen=True)
class _Brave:
    key: str
    base: str = "https://api.search.brave.com/res/v1/web/search"

    def request(self, query: str, count: int) -> _Request:
        return _Request(
            f"{self.base}?{urlencode({'q': query, 'count': count})}",
            headers={"Accept": "application/json", "X-Subscription-Token": self.key},
        )

    def results(self, answer: Any) -> list[dict[str, str]]:
        found = (
            _result(r.get("title"), r.get("url"), r.get("description"))
            for r in _dicts(answer, "web", "results")
        )
        return [r for r in found if r is not None]


@dataclass(frozen=True)
class _Tavily:
    key: str
    base: str = "https://api.tavily.com/search"

    def request(self, query: str, count: int) -> _Request:
        body = json.dumps({"query": query, "max_results": count}).encode("utf-8")
        return _Request(
            self.base,
            method="POST",
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.key}",
            },
            content=body,
        )

    def results(self, answer: Any) -> list[dict[str, str]]:
        found = (_result(r.get("title"), r.get("url"), r.get("content")) for r in _dicts(answer))
        return [r for r in found if r is not None]


def _configured(ctx: ToolContext) -> tuple[WebSearchConfig, str | None]:
    """The job's provider and its key (from the config, else the environment)."""
    config = ctx.web_search
    if config is None:
        for name in _KEYED:
            if os.environ.get(KEY_VARIABLES[name]):
                config = WebSearchConfig(provider=name)
                break
        else:
            raise ToolError(NOT_CONFIGURED)
    key = config.api_key
    if config.provider in KEY_VARIABLES and not key:
        key = os.environ.get(KEY_VARIABLES[config.provider]) or None
        if key is None:
            raise ToolError(
                f"the {config.provider} web search provider has no API key; set "
                f"{KEY_VARIABLES[config.provider]} or web_search_api_key"
            )
    return config, key


def _provider(config: WebSearchConfig, key: str | None) -> SearchProvider:
    if config.provider == "searxng":
        assert config.url is not None  # checked by WebSearchConfig
        return _SearxNG(config.url)
    assert key is not None
    if config.provider == "brave":
        return _Brave(key, config.url) if config.url else _Brave(key)
    return _Tavily(key, config.url) if config.url else _Tavily(key)


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text


def _answer(response: HttpResponse, provider: str, key: str | None) -> Any:
    if response.status in (401, 403):
        raise ToolError(f"the {provider} web search provider refused the API key")
    if response.status == 429:
        raise ToolError(f"the {provider} web search provider is rate limiting", retryable=True)
    if not 200 <= response.status < 300:
        raise ToolError(
            f"the {provider} web search provider answered HTTP {response.status}: "
            f"{truncate(_redact(response.text, key), 200)!r}",
            retryable=response.status >= 500,
        )
    if response.truncated:
        raise ToolError(f"the {provider} web search answer is over {MAX_ANSWER_BYTES} bytes")
    try:
        return json.loads(response.text)
    except ValueError:
        raise ToolError(f"the {provider} web search provider did not answer JSON") from None


@tool(
    timeout_s=60.0,
    sandbox="asks only the configured search provider's endpoint, through the SSRF guard "
    "(a private or loopback endpoint needs the job to allow private networks); its API key "
    "goes in a header to that origin only and never into arguments, results or errors",
)
async def web_search(query: str, ctx: ToolContext, max_results: int = 5) -> list[dict[str, str]]:
    """Search the web and return the top results as title, URL and snippet.

    Fetch a result's URL with http_fetch to read the page itself.

    Args:
        query: What to search for, as you would type it into a search engine.
        max_results: How many results to return (1 to 20).
    """
    query = query.strip()
    if not query:
        raise ToolError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ToolError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= max_results <= MAX_RESULTS:
        raise ToolError(f"max_results must be from 1 to {MAX_RESULTS}")
    config, key = _configured(ctx)
    provider = _provider(config, key)
    request = provider.request(query, max_results)
    try:
        response = await request_url(
            request.url,
            max_bytes=MAX_ANSWER_BYTES,
            timeout_s=ctx.http_timeout_s,
            allow_private=ctx.allow_private_network,
            method=request.method,
            headers=request.headers,
            content=request.content,
        )
    except ToolError as exc:
        message = _redact(str(exc), key)
        raise type(exc)(message, retryable=exc.retryable) from None
    return provider.results(_answer(response, config.provider, key))[:max_results]
