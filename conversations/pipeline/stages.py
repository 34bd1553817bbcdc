"""The state of one turn, and the assemble and generate stages as plain functions of typed inputs.

The stages of a turn (service.answer_stream runs them in this order):
- begin: turn.turn_begin (store the messages, read the turn's inputs), started by service._begin;
- retrieve: retrieval.retrieve (RetrievalRequest -> Retrieval);
- assemble: assemble_prompt (AssemblyRequest -> AssembledContext);
- generate: generation_chain (GenerationRequest -> ChainSetup), streamed by
  failover.stream_with_failover;
- settle: turn.turn_settle (TurnSetup + TurnOutcome -> the rows written).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from bots.catalog import model_info, turn_cost
from bots.models import Bot
from conversations.llm.base import ChatRequest, Timeouts
from conversations.llm.tokens import estimate_tokens
from conversations.models import Message
from knowledge.types import RetrievedPassage
from tenants.models import Tenant

from .breaker import CircuitBreaker, PrefetchedRead, breaker_key
from .context import AssembledContext, assemble
from .failover import ChainSetup
from .rewrite import Rewrite
from .turn import TurnOutcome, TurnSetup


def ms_since(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


@dataclass
class TurnState:
    """One turn as it goes through the stages: what begin found, and what each stage added."""

    bot: Bot
    tenant: Tenant
    setup: TurnSetup
    started: float
    knowledge_bases: list[tuple[int, str]] = field(default_factory=list)  # (id, embedding model)
    query_vectors: Future | None = None  # {model: vector}, being computed since the turn started
    retrieved: bool = False  # passages searched (by turn_begin when the vectors were ready in time)
    blocked_topic: str | None = None  # the bot's blocked topic the message names, if any
    breakers: dict[str, PrefetchedRead] = field(default_factory=dict)  # breaker key -> its state, read early
    shown: str = ""  # what the visitor has been shown since the last reset
    latency: dict[str, float] = field(default_factory=dict)
    passages: list[RetrievedPassage] = field(default_factory=list)  # the relevant ones the gate kept
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # the gate's, for the trace
    rewrite: Rewrite | None = None  # the retrieval query, when the retrieve stage considered a rewrite
    context: AssembledContext | None = None
    chain: ChainSetup | None = None
    hits: list[dict[str, Any]] = field(default_factory=list)
    canary: str = ""
    settled: bool = False
    # Each stage's [start_ms, ms] from the turn's start, for the trace's waterfall (a perf_counter
    # read or two per stage: nothing a turn would notice).
    spans: dict[str, list[float]] = field(default_factory=dict)
    generate_started: float | None = None

    def span(self, stage: str, since: float, *, ms: float | None = None) -> None:
        """Record that `stage` ran from `since` (a perf_counter reading) for `ms` (default: until now)."""
        self.spans[stage] = [round((since - self.started) * 1000, 2), ms if ms is not None else ms_since(since)]

    def timings(self) -> dict[str, Any]:
        """The trace's timings: one `<stage>_ms` per stage that ran, the first token, and the spans."""
        if self.generate_started is not None and "generate" not in self.spans:
            self.span("generate", self.generate_started)  # generation ends where the settle begins
        timings: dict[str, Any] = {f"{stage}_ms": ms for stage, (_start, ms) in self.spans.items()}
        if "first_token_ms" in self.latency:
            timings["first_token_ms"] = self.latency["first_token_ms"]
        timings["spans"] = {stage: list(span) for stage, span in self.spans.items()}
        return timings

    def outcome(self, status: str, content: str, **extra: Any) -> TurnOutcome:
        """What the settle stage writes for this turn, ending it with `status` and `content`."""
        self.latency.setdefault("total_ms", ms_since(self.started))
        return TurnOutcome(
            status=status,
            content=content,
            started=self.started,
            timings=self.timings(),
            latency=self.latency,
            retrieved=[
                {"chunk_id": p.chunk_id, "document_id": p.document_id, "score": round(p.score, 4)}
                for p in self.passages
            ],
            retrieval={
                "query": self.rewrite.rewritten if self.rewrite else self.setup.user_message.content,
                "rewrite": self.rewrite.as_trace() if self.rewrite else None,
                "verdicts": self.verdicts,
            },
            prompt=self.context.as_trace() if self.context else [],
            attempts=self.attempts(),
            guardrail_hits=self.hits,
            **extra,
        )

    def attempts(self) -> list[dict[str, Any]]:
        return list(self.chain.attempts) if self.chain else []

    def stopped(self) -> TurnOutcome:
        """The outcome of a turn the visitor stopped: `partial`, with what they were shown."""
        tokens_out = estimate_tokens(self.shown)
        tokens_in = self.context.tokens if self.context else 0
        model = ""
        if self.chain and self.chain.attempts:
            model = f"{self.chain.attempts[-1]['provider']}:{self.chain.attempts[-1]['model']}"
        elif self.chain and self.chain.entries:
            model = f"{self.chain.entries[0]['provider']}:{self.chain.entries[0]['model']}"
        provider, _, name = model.partition(":")
        cost = turn_cost(provider, name, tokens_in, tokens_out) if model else Decimal("0")
        return self.outcome(
            Message.Status.PARTIAL,
            self.shown,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            error_code="stopped",
        )


@dataclass(frozen=True)
class AssemblyRequest:
    bot: Bot
    setup: TurnSetup  # the prompt, the chain, the memory window, summary and facts
    passages: list[RetrievedPassage]
    user_message: str
    canary: str


def assemble_prompt(request: AssemblyRequest) -> AssembledContext:
    """The assemble stage: the prompt of the turn, sized for the smallest context window in the
    chain, so a source numbered [n] means the same whichever model answers. Pure: no I/O."""
    setup = request.setup
    smallest = min(setup.chain, key=lambda e: model_info(e["provider"], e["model"]).context_window)
    return assemble(
        prompt_text=setup.prompt_text,
        policy=request.bot.answer_policy,
        canary=request.canary,
        passages=request.passages,
        summary=setup.summary,
        facts=setup.facts,
        window=setup.window,
        user_message=request.user_message,
        provider=smallest["provider"],
        model=smallest["model"],
        max_answer_tokens=request.bot.max_answer_tokens,
    )


def chain_breaker_key(entry: dict[str, Any]) -> str:
    return breaker_key(entry["provider"], entry["model"], entry.get("params", {}).get("base_url"))


@dataclass(frozen=True)
class GenerationRequest:
    bot: Bot
    setup: TurnSetup  # the chain the plan allows, and its provider keys
    context: AssembledContext
    user_message: str
    breaker_for: Callable[[dict[str, Any]], CircuitBreaker]


def generation_chain(request: GenerationRequest) -> ChainSetup:
    """The generate stage's input to stream_with_failover: one request per chain entry, each
    capped by the bot's own limits, with the timeouts and retry bounds from the settings."""
    bot, context = request.bot, request.context

    def request_for(entry: dict[str, Any]) -> ChatRequest:
        params = entry.get("params", {})
        return ChatRequest(
            model=entry["model"],
            system=context.system,
            messages=context.messages,
            max_tokens=min(int(params.get("max_tokens", bot.max_answer_tokens)), bot.max_answer_tokens),
            temperature=float(params.get("temperature", bot.temperature)),
            top_p=params.get("top_p"),
            passages=context.passages,
            query=request.user_message,
            no_answer=bot.no_answer_text(),
        )

    return ChainSetup(
        entries=request.setup.chain,
        keys=request.setup.keys,
        timeouts=Timeouts(
            connect=settings.LLM_CONNECT_TIMEOUT_MS / 1000,
            first_token=settings.LLM_FIRST_TOKEN_TIMEOUT_MS / 1000,
            idle=settings.LLM_IDLE_TIMEOUT_MS / 1000,
        ),
        max_retry_after=settings.LLM_MAX_RETRY_AFTER_MS / 1000,
        breaker_for=request.breaker_for,
        request_for=request_for,
    )
