"""List prices of common hosted models, so every response can carry its cost.

Prices are USD per million tokens (input, output) as published by the providers; they change, so
treat the figures as estimates. Unknown and local models cost 0. Names match by longest prefix, so
dated snapshots (``gpt-4o-mini-2024-07-18``) take the price of their family.
"""

from __future__ import annotations

__all__ = ["PRICES_USD_PER_MTOK", "price_usd"]

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


def price_usd(model: str, tokens_in: int, tokens_out: int) -> float:
    """Estimate the cost of one call.

    Args:
        model: The provider's model name, with or without a ``scheme:`` prefix
            (``gpt-4o-mini``, ``openai:gpt-4o-mini``).
        tokens_in: Prompt tokens.
        tokens_out: Completion tokens.

    Returns:
        The cost in USD; 0.0 for models not in the table (local models, unknown servers).
    """
    name = model.split(":", 1)[1] if ":" in model else model
    best = ""
    for prefix in PRICES_USD_PER_MTOK:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    if not best:
        return 0.0
    price_in, price_out = PRICES_USD_PER_MTOK[best]
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000
