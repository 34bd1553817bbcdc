"""Reads for the trace inspector: one answer's trace, shaped for people (labelled prompt parts,
passages with their scores and text, attempts in plain words, a per-stage waterfall).

The playground opens it under each answer and the conversation page links to it; the insights
pages can reuse `trace_inspect`. Tenant scope required: every query goes through the scoped
managers, so another tenant's message is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowledge.models import Chunk

from .models import Message

OUTCOMES = {
    "ok": "Answered",
    "error": "Failed",
    "stopped": "Stopped by the user",
    "skipped_open_breaker": "Skipped: this provider failed repeatedly, so its circuit breaker is open",
    "skipped_plan": "Skipped: the workspace's plan does not include this model",
}
STAGES = [
    ("begin", "Begin (store the messages, read the bot)"),
    ("retrieve", "Retrieve"),
    ("assemble", "Assemble the prompt"),
    ("generate", "Generate"),
    ("settle", "Settle (store the answer)"),
]
# The system message's sections, as conversations.pipeline.context.assemble writes them.
SECTION_LABELS = {
    "## Rules": "Rules",
    "## Sources": "Sources",
    "## What the visitor told us": "Memory: what the visitor told us",
    "## Summary of the earlier conversation": "Memory: summary of the earlier conversation",
}


@dataclass
class Bar:
    stage: str
    label: str
    start_ms: float
    ms: float
    left_pct: float
    width_pct: float


@dataclass
class TraceView:
    message: Message
    query: str
    rewrite: dict[str, Any] | None
    passages: list[dict[str, Any]]
    prompt_parts: list[tuple[str, str]]
    attempts: list[dict[str, Any]]
    guardrail_hits: list[dict[str, Any]]
    bars: list[Bar] = field(default_factory=list)
    first_token_ms: float | None = None
    total_ms: float | None = None
    prompt_version: int | None = None
    # The correction the turn answered from: {"correction_id", "similarity"}, or None.
    correction: dict[str, Any] | None = None


def trace_inspect(*, message: Message) -> TraceView:
    """The message's trace, ready for the inspector (one query for the passages' text). The
    message must come with its trace (selectors.message_with_trace)."""
    trace = message.trace
    retrieval = trace.retrieval or {}
    timings = trace.timings or {}
    return TraceView(
        message=message,
        query=retrieval.get("query") or _question(trace.prompt),
        rewrite=retrieval.get("rewrite") if (retrieval.get("rewrite") or {}).get("method", "none") != "none" else None,
        passages=_passages(trace, message),
        prompt_parts=prompt_parts(trace.prompt or []),
        attempts=[{**a, "outcome_words": OUTCOMES.get(a.get("outcome"), a.get("outcome"))} for a in trace.attempts],
        guardrail_hits=list(trace.guardrail_hits or []),
        bars=_bars(timings),
        first_token_ms=timings.get("first_token_ms", (message.latency or {}).get("first_token_ms")),
        total_ms=timings.get("total_ms", (message.latency or {}).get("total_ms")),
        prompt_version=trace.prompt_version,
        correction=_correction(retrieval),
    )


def _correction(retrieval: dict[str, Any]) -> dict[str, Any] | None:
    """The matched correction, from its verdict (conversations/pipeline/corrections.py)."""
    for verdict in retrieval.get("verdicts") or []:
        signals = verdict.get("signals") or {}
        if signals.get("correction_id"):
            return {"correction_id": signals["correction_id"], "similarity": signals.get("similarity")}
    return None


def _question(prompt: list[dict[str, str]]) -> str:
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def _passages(trace: Any, message: Message) -> list[dict[str, Any]]:
    """The gate's verdicts (kept ones and the first dropped), else the plain retrieved list, with
    each chunk's text and whether the answer cited it."""
    verdicts = (trace.retrieval or {}).get("verdicts") or [
        {"chunk_id": r["chunk_id"], "document_id": r.get("document_id"), "kept": True, "signals": {}}
        for r in trace.retrieved or []
    ]
    cited = {c.get("chunk_id") for c in message.citations or []}
    ids = [v["chunk_id"] for v in verdicts]
    texts = dict(Chunk.objects.filter(pk__in=ids).values_list("pk", "text")) if ids else {}
    scores = {r["chunk_id"]: r.get("score") for r in trace.retrieved or []}
    passages = []
    for verdict in verdicts:
        signals = verdict.get("signals") or {}
        passages.append(
            {
                **verdict,
                "similarity": signals.get("similarity"),
                "text_rank": signals.get("text_rank"),
                "vector_rank": signals.get("vector_rank"),
                "fused_score": signals.get("fused_score", scores.get(verdict["chunk_id"])),
                "rerank_score": signals.get("rerank_score"),
                "text": texts.get(verdict["chunk_id"], ""),
                "cited": verdict["chunk_id"] in cited,
            }
        )
    return passages


def prompt_parts(prompt: list[dict[str, str]]) -> list[tuple[str, str]]:
    """The prompt as sent, cut into labelled parts: the bot's system prompt, the rules, the
    sources, the memory (facts, summary, recent turns) and the question."""
    if not prompt:
        return []
    parts: list[tuple[str, str]] = []
    system = prompt[0]["content"] if prompt[0].get("role") == "system" else ""
    label = "System prompt"
    lines: list[str] = []
    for line in system.splitlines():
        heading = next((v for k, v in SECTION_LABELS.items() if line.startswith(k)), None)
        if heading is not None:
            parts.append((label, "\n".join(lines).strip()))
            label, lines = heading, []
        lines.append(line)
    parts.append((label, "\n".join(lines).strip()))
    messages = prompt[1:] if system else prompt
    for item in messages[:-1]:
        parts.append((f"Memory: earlier {item['role']} turn", item["content"]))
    if messages:
        parts.append(("Question", messages[-1]["content"]))
    return [(label, text) for label, text in parts if text]


def _bars(timings: dict[str, Any]) -> list[Bar]:
    """One bar per stage that ran, placed on the turn's timeline (percentages of its total)."""
    spans = timings.get("spans") or {}
    ends = [start + ms for start, ms in spans.values()]
    total = max([timings.get("total_ms") or 0.0, *ends]) or 1.0
    bars = []
    for stage, label in STAGES:
        if stage not in spans:
            continue
        start, ms = spans[stage]
        bars.append(
            Bar(
                stage=stage,
                label=label,
                start_ms=start,
                ms=ms,
                left_pct=round(100 * start / total, 2),
                width_pct=max(round(100 * ms / total, 2), 0.5),  # a 0 ms stage still shows
            )
        )
    return bars
