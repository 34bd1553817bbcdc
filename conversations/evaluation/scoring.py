"""Scores of one evaluation case and of a run. Pure functions: no database, no pipeline.

Per case (None where the case gives nothing to judge by):
- hit: an expected document is among the first k retrieved passages (k: the bot's retrieval_k);
- reciprocal_rank: 1 / the rank of the first passage from an expected document (0 if none);
- citation_accuracy: the share of the answer's citations that come from an expected document
  (0 when an answerable case's answer cites nothing);
- refusal_correct: the bot refused exactly when the case says it should;
- keyword_coverage: the share of expected keywords the answer contains (case-insensitive);
- score: 0-1, for a "should refuse" case whether it refused; otherwise the mean of the others
  that apply (hit, citation accuracy, keyword coverage, and not refusing).
A refusal is an answer without citations: grounded answers always cite (the offline answerer
and the prompt's rules both make them), and an "I don't know" or a failed turn has none.
The run's score is 100 × the mean of its cases' scores, so it reads as points.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class CaseScore:
    refused: bool
    retrieved_document_ids: list[int]
    cited_document_ids: list[int]
    hit: bool | None
    reciprocal_rank: float | None
    citation_accuracy: float | None
    refusal_correct: bool
    keyword_coverage: float | None
    score: float
    flags: list[str] = field(default_factory=list)


def score_case(
    *,
    expected_document_ids: list[int],
    expected_keywords: list[str],
    should_refuse: bool,
    retrieved_document_ids: list[int],
    cited_document_ids: list[int],
    answer: str,
    k: int,
) -> CaseScore:
    refused = not cited_document_ids
    expected = set(expected_document_ids)
    hit = rr = accuracy = coverage = None
    if expected:
        hit = bool(expected & set(retrieved_document_ids[:k]))
        rank = next((i for i, d in enumerate(retrieved_document_ids, start=1) if d in expected), None)
        rr = 1 / rank if rank else 0.0
        accuracy = (
            sum(d in expected for d in cited_document_ids) / len(cited_document_ids) if cited_document_ids else 0.0
        )
    if expected_keywords:
        lowered = answer.lower()
        coverage = sum(kw.lower() in lowered for kw in expected_keywords) / len(expected_keywords)
    refusal_correct = refused == should_refuse
    if should_refuse:
        score = 1.0 if refused else 0.0
    else:
        parts = [float(x) for x in (hit, accuracy, coverage) if x is not None] + [float(refusal_correct)]
        score = sum(parts) / len(parts)
    return CaseScore(
        refused=refused,
        retrieved_document_ids=retrieved_document_ids,
        cited_document_ids=cited_document_ids,
        hit=hit,
        reciprocal_rank=rr,
        citation_accuracy=accuracy,
        refusal_correct=refusal_correct,
        keyword_coverage=coverage,
        score=score,
    )


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def score_run(cases: list[CaseScore], latencies_ms: list[float], costs: list[Decimal]) -> dict[str, Any]:
    """The run's figures; `score` is 0-100 with one decimal."""
    return {
        "score": round(100 * sum(c.score for c in cases) / len(cases), 1) if cases else None,
        "hit_at_k": _mean([float(c.hit) for c in cases if c.hit is not None]),
        "mrr": _mean([c.reciprocal_rank for c in cases if c.reciprocal_rank is not None]),
        "citation_accuracy": _mean([c.citation_accuracy for c in cases if c.citation_accuracy is not None]),
        "refusal_correctness": _mean([float(c.refusal_correct) for c in cases]),
        "keyword_coverage": _mean([c.keyword_coverage for c in cases if c.keyword_coverage is not None]),
        "latency_ms_p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
        "latency_ms_max": round(max(latencies_ms), 1) if latencies_ms else None,
        "cost": str(sum(costs, Decimal("0"))),
        "cases": len(cases),
        "flagged": sum(1 for c in cases if c.flags),
    }
