"""List prices of common hosted models, so every response can carry its cost.

Prices are USD per million tokens (input, output) as published by the providers; they change, so
treat the figures as estimates. Unknown and local models cost 0. Names match by longest prefix, so
dated snapshots (``gpt-4o-mini-2024-07-18``) take the price of their family.

The settings' ``prices`` table (``[prices]`` in ``planweave.toml``) overrides these figures and
prices any other model, local and scripted ones included: every model call the engine records
is priced by it (``set_price_overrides``, done by the engine and by ``planweave worker``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PRICES_USD_PER_MTOK", "override_price_usd", "price_usd", "set_price_overrides"]

PRICES_USD_PER_MTOK: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    # Anthropic
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
}


_overrides: dict[str, tuple[float, float]] = {}


def set_price_overrides(prices: Mapping[str, tuple[float, float]]) -> None:
    """Price models by this table (model name or prefix -> USD per million tokens in, out)
    before the built-in one, in this process. An empty table removes the overrides."""
    _overrides.clear()
    _overrides.update({name: (float(a), float(b)) for name, (a, b) in prices.items()})


def _longest(table: Mapping[str, tuple[float, float]], *names: str) -> tuple[float, float] | None:
    best = ""
    for prefix in table:
        if len(prefix) > len(best) and any(name.startswith(prefix) for name in names):
            best = prefix
    return table[best] if best else None


def override_price_usd(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """The cost of one call by the settings' ``prices`` table, matched against the model URL
    (``scripted:plan.yaml``) and its name without the scheme; ``None`` when no entry fits."""
    if not _overrides:
        return None
    name = model.split(":", 1)[1] if ":" in model else model
    price = _longest(_overrides, model, name)
    if price is None:
        return None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


def price_usd(model: str, tokens_in: int, tokens_out: int) -> float:
    """Estimate the cost of one call.

    Args:
        model: The provider's model name, with or without a ``scheme:`` prefix
            (``gpt-4o-mini``, ``openai:gpt-4o-mini``).
        tokens_in: Prompt tokens.
        tokens_out: Completion tokens.

    Returns:
        The cost in USD by the settings' ``prices`` table where an entry fits, else by the list
        prices; 0.0 for models in neither (local models, unknown servers).
    """
    overridden = override_price_usd(model, tokens_in, tokens_out)
    if overridden is not None:
        return overridden
    name = model.split(":", 1)[1] if ":" in model else model
    price = _longest(PRICES_USD_PER_MTOK, name)
    if price is None:
        return 0.0
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
