"""What tokens cost: a price per model and token kind, and the cost of an attempt's usage.

The shipped figures are list prices in US dollars per million tokens, taken on the date in `as_of`
from the providers' public price pages as quoted in the stored public pages available here (no
network): OpenAI's API pricing (gpt-5.5), Anthropic's (Claude Sonnet 4.x), Google's Gemini API pricing
(Gemini 2.5 Pro, prompts up to 200k tokens). They change; `prices` in orchestrator.yaml overrides them
model by model (docs/configuration.md).

Usage is counted the way codex-orch records it (agents/base.py): `input_tokens` holds the cached
tokens (read and written) too, `output_tokens` holds the reasoning tokens. So an attempt costs
  (input - cached) x input + cached x cached_input + (output - reasoning) x output + reasoning x reasoning
(tokens written to a cache are billed as input: the table has no price of its own for them).
An agent that reports its own cost (Claude Code's `total_cost_usd`) is believed over the table: it
knows its tiers and discounts; the table is used for the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

PER_MILLION = 1_000_000

# The model each CLI uses when neither the plan, the role nor agents.<name>.model names one; its price
# is the one used for such attempts. Name the model in the config when yours uses another.
CLI_DEFAULT_MODELS: Mapping[str, str] = {
    "codex": "gpt-5.5",
    "claude": "claude-sonnet-4-6",
    "gemini": "gemini-2.5-pro",
}


class TokenCounts(Protocol):
    """agents.base.Usage, as this core module sees it."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def cached_input_tokens(self) -> int: ...
    @property
    def cache_write_input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def reasoning_output_tokens(self) -> int: ...


@dataclass(frozen=True)
class Price:
    """US dollars per `per` tokens of each kind; reasoning tokens are billed as output unless given."""

    input: float
    cached_input: float
    output: float
    reasoning: float | None = None
    per: int = PER_MILLION
    as_of: str | None = None

    def cost(self, usage: TokenCounts) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        reasoning = min(usage.reasoning_output_tokens, usage.output_tokens)
        reasoning_price = self.output if self.reasoning is None else self.reasoning
        total = (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + (usage.output_tokens - reasoning) * self.output
            + reasoning * reasoning_price
        )
        return round(total / self.per, 9)

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "reasoning": self.reasoning,
            "per": self.per,
            "as_of": self.as_of,
        }


DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI API pricing, standard tier (developers.openai.com/api/docs/pricing, as quoted June 2026).
    "gpt-5.5": Price(input=5.00, cached_input=0.50, output=30.00, as_of="2026-06"),
    "gpt-5.4": Price(input=2.50, cached_input=0.25, output=15.00, as_of="2026-06"),
    "gpt-5.4-mini": Price(input=0.75, cached_input=0.075, output=4.50, as_of="2026-06"),
    # Anthropic pricing (docs.anthropic.com/en/docs/about-claude/pricing; Sonnet 4.6 as quoted April 2026).
    "claude-sonnet-4-6": Price(input=3.00, cached_input=0.30, output=15.00, as_of="2026-04"),
    "claude-sonnet-4-5": Price(input=3.00, cached_input=0.30, output=15.00, as_of="2026-04"),
    # Gemini API pricing, prompts up to 200k tokens, thinking billed as output (ai.google.dev/gemini-api/docs/pricing).
    "gemini-2.5-pro": Price(input=1.25, cached_input=0.125, output=10.00, as_of="2025-10"),
}

_RATE = {"type": "number", "minimum": 0, "maximum": 1_000_000}
PRICES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "required": ["input", "output"],
        "properties": {
            "input": _RATE,
            "cached_input": _RATE,
            "output": _RATE,
            "reasoning": {**_RATE, "type": ["number", "null"]},
            "per": {"type": "integer", "minimum": 1},
            "as_of": {"type": ["string", "null"]},
        },
    },
}


def build_prices(raw: Mapping[str, Any] | None) -> dict[str, Price]:
    """The shipped table with the config's `prices` over it (each model's entry replaced whole)."""
    table = dict(DEFAULT_PRICES)
    for model, entry in (raw or {}).items():
        table[model] = Price(
            input=float(entry["input"]),
            cached_input=float(entry.get("cached_input", entry["input"])),
            output=float(entry["output"]),
            reasoning=None if entry.get("reasoning") is None else float(entry["reasoning"]),
            per=int(entry.get("per", PER_MILLION)),
            as_of=entry.get("as_of"),
        )
    return table


def priced_model(agent: str, model: str | None) -> str | None:
    """The model an attempt's price is looked up under: the one it named, else its CLI's default."""
    return model or CLI_DEFAULT_MODELS.get(agent)


@dataclass(frozen=True)
class AttemptCost:
    usd: float | None
    source: str | None  # "agent" (its own figure), "prices" (the table), None (unknown)
    note: str | None = None  # why it is unknown

    def record(self) -> dict[str, Any]:
        return {"cost_usd": self.usd, "cost_source": self.source, "cost_note": self.note}


def attempt_cost(
    prices: Mapping[str, Price], agent: str, model: str | None, usage: TokenCounts, agent_cost: float | None
) -> AttemptCost:
    """The attempt's cost: the agent's own figure when it gives one, else its usage at the table's price."""
    if agent_cost is not None:
        return AttemptCost(agent_cost, "agent")
    if usage.input_tokens + usage.output_tokens == 0:
        return AttemptCost(0.0, "prices")
    name = priced_model(agent, model)
    price = prices.get(name) if name else None
    if price is None:
        return AttemptCost(None, None, f"no price for model {name or '(unnamed)'}")
    return AttemptCost(price.cost(usage), "prices")
