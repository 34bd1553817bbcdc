"""What the answer pipeline retrieves: candidates from one hybrid search, re-ranked, then gated.

`passages_for_answer` is the one entry point: it asks `chunk_search` for CANDIDATES
candidates (one search statement, no other round trip), re-orders them (knowledge/rerank.py),
decides per passage whether it is relevant enough to answer from (knowledge/relevance.py), and
keeps at most k relevant ones. An empty `kept` means the knowledge has no answer: a knowledge-only
bot says it doesn't know. `verdicts` has one entry per candidate, kept or not, with its scores and
the reason, for the trace.

`decide` is the same without the search, for a caller that has the candidates already (the
quality benchmark compares variants on one search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from tenants.models import Tenant

from .relevance import GateThresholds, PassageVerdict, gate_passages
from .rerank import DEFAULT_WEIGHTS, RerankWeights, rerank
from .selectors import chunk_search
from .types import RetrievedPassage

# How many candidates to fetch. RRF's top 15 often misses the chunks the vector half ranks first
# (the full-text half matches any query word, and a chunk found by both halves outranks one found
# by one). Quality benchmark, full pipeline, both corpora (hit@5 / MRR) by pool size:
#   20: 0.88 / 0.82   30: 0.92 / 0.85   40: 0.96 / 0.88   60: 0.97 / 0.88
# The price is in the search: p50 on 42 SQLite pages 21 ms at k=5 vs 34 ms at k=60 (a loaded
# 2-core machine; +2 ms on the 12-page help centre). 40 keeps nearly all of the quality for about
# two thirds of that price; `candidates` changes it per call.
CANDIDATES = 40


@dataclass(frozen=True)
class RetrievalDecision:
    kept: list[RetrievedPassage]  # at most k, best first; empty: nothing relevant
    verdicts: list[PassageVerdict] = field(default_factory=list)  # every candidate, in re-ranked order

    @property
    def refused(self) -> bool:
        return not self.kept


def decide(
    candidates: Sequence[RetrievedPassage],
    *,
    query: str,
    k: int,
    embedding_model: str,
    rerank_enabled: bool = True,
    gate: bool = True,
    weights: RerankWeights = DEFAULT_WEIGHTS,
    thresholds: GateThresholds | None = None,
) -> RetrievalDecision:
    """Re-rank and gate `candidates` (best first, as chunk_search returns them). Pure."""
    ordered = list(candidates)
    rerank_scores: dict[int, float] = {}
    if rerank_enabled:
        reranked = rerank(ordered, query=query, weights=weights)
        ordered = [passage for passage, _score in reranked]
        rerank_scores = {passage.chunk_id: score for passage, score in reranked}
    if not gate:
        verdicts = [
            PassageVerdict(passage=p, relevant=True, reason="gating off", signals=_plain_signals(p, i))
            for i, p in enumerate(ordered, start=1)
        ]
    else:
        verdicts = gate_passages(ordered, embedding_model=embedding_model, thresholds=thresholds)
    if rerank_scores:
        verdicts = [
            replace(v, signals={**v.signals, "rerank_score": round(rerank_scores[v.passage.chunk_id], 4)})
            for v in verdicts
        ]
    kept = [v.passage for v in verdicts if v.relevant][:k]
    return RetrievalDecision(kept=kept, verdicts=verdicts)


def passages_for_answer(
    *,
    tenant: Tenant,
    knowledge_base_ids: list[int],
    query: str,
    k: int,
    embedding_model: str,
    rerank: bool = True,
    gate: bool = True,
    query_vectors: Mapping[str, Sequence[float]] | None = None,
    candidates: int = CANDIDATES,
) -> RetrievalDecision:
    """The passages to answer `query` from: at most k, relevant ones only, best first.

    One `chunk_search` call (same tenant guarantees: other tenants' knowledge bases are ignored).
    `embedding_model` picks the gate's calibrated thresholds: pass the knowledge bases' model.
    `query_vectors` is passed through (a caller that embedded the query already). `candidates` is
    the pool size re-ranked and gated (see CANDIDATES).
    """
    pool = chunk_search(
        tenant=tenant,
        knowledge_base_ids=knowledge_base_ids,
        query=query,
        k=max(k, candidates),
        query_vectors=query_vectors,
    )
    return decide(pool, query=query, k=k, embedding_model=embedding_model, rerank_enabled=rerank, gate=gate)


def _plain_signals(passage: RetrievedPassage, position: int) -> dict[str, float | int | None]:
    return {
        "similarity": passage.similarity,
        "text_rank": passage.text_rank,
        "vector_rank": passage.vector_rank,
        "fused_rank": position,
        "fused_score": passage.score,
    }
