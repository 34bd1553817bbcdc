"""What we know about each model: context window and price per million tokens (USD).

Prices are list prices, used to estimate each turn's cost; unknown models cost 0 and get a
conservative 8k context window.

It lives in bots, the lowest app that reads it: bots checks a model chain's providers, and
conversations (above bots) sizes and prices each turn with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PROVIDERS = ("openai", "anthropic", "openai_compatible", "offline")


@dataclass(frozen=True)
class ModelInfo:
    context_window: int
    input_per_million: Decimal
    output_per_million: Decimal


def _m(window: int, price_in: str, price_out: str) -> ModelInfo:
    return ModelInfo(window, Decimal(price_in), Decimal(price_out))


MODELS: dict[tuple[str, str], ModelInfo] = {
    ("openai", "gpt-4o"): _m(128_000, "2.50", "10.00"),
    ("openai", "gpt-4o-mini"): _m(128_000, "0.15", "0.60"),
    ("openai", "gpt-4.1"): _m(1_000_000, "2.00", "8.00"),
    ("openai", "gpt-4.1-mini"): _m(1_000_000, "0.40", "1.60"),
    ("openai", "gpt-4.1-nano"): _m(1_000_000, "0.10", "0.40"),
    ("openai", "gpt-5"): _m(400_000, "1.25", "10.00"),
    ("openai", "gpt-5-mini"): _m(400_000, "0.25", "2.00"),
    ("openai", "gpt-5-nano"): _m(400_000, "0.05", "0.40"),
    ("anthropic", "claude-opus-4-1"): _m(200_000, "15.00", "75.00"),
    ("anthropic", "claude-sonnet-4-5"): _m(200_000, "3.00", "15.00"),
    ("anthropic", "claude-sonnet-4-0"): _m(200_000, "3.00", "15.00"),
    ("anthropic", "claude-haiku-4-5"): _m(200_000, "1.00", "5.00"),
    ("anthropic", "claude-3-5-haiku-latest"): _m(200_000, "0.80", "4.00"),
    ("offline", "extractive"): _m(32_000, "0", "0"),
}
UNKNOWN = _m(8_192, "0", "0")


def model_info(provider: str, model: str) -> ModelInfo:
    return MODELS.get((provider, model), UNKNOWN)


def turn_cost(provider: str, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    info = model_info(provider, model)
    cost = (info.input_per_million * tokens_in + info.output_per_million * tokens_out) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))


def cheapest(entries: list[dict]) -> dict | None:
    """The chain entry with the lowest output price, ignoring the offline answerer."""
    real = [e for e in entries if e.get("provider") != "offline"]
    if not real:
        return None
    return min(real, key=lambda e: model_info(e["provider"], e["model"]).output_per_million)
