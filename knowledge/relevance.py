"""Relevance gating: is a retrieved passage relevant enough to answer from?

Hybrid search always returns k passages, relevant or not. `gate_passages` decides per passage,
from evidence retrieval already has (no DB, no model call):

- `similarity`, the cosine similarity of the chunk to the query: the only absolute signal;
- whether the full-text half matched (`text_rank` is not None), and how high it ranked it;
- `fused_rank`, the passage's position in the list it came in (best first), and how far its
  similarity falls behind the best passage's (`gap`).

A passage is relevant when its similarity is at least `strong`, or at least `weak` with a keyword
match ranked within `text_rank_max`; and, either way, when it is within `max_gap` of the best
passage and among the first `max_fused_rank`. Nothing relevant means: say "I don't know".

Calibration (benchmarks/quality.py, labelled set benchmarks/data/quality.json: the Acme help
centre and 42 pages of SQLite's documentation). The thresholds were chosen on the calibration
half of the questions only (even positions per corpus: 38 answerable, 10 unanswerable) and then
checked on the held-out half (odd positions: 38 answerable, 10 unanswerable), which played no part
in choosing them. Figures for all-MiniLM-L6-v2 are in the comment on its row below.
Models without a row (text-embedding-3-small has none yet: the benchmark needs an API key to
embed its corpora) get DEFAULT_THRESHOLDS: cosine scales differ per model (text-embedding-3
models give unrelated text ~0.1-0.2 and related text ~0.3-0.6), so the default is deliberately
lenient, refusing only clearly unrelated passages, until someone calibrates that model with
`make bench BENCH_ARGS="--only quality --calibrate"` and adds its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .types import RetrievedPassage


@dataclass(frozen=True)
class GateThresholds:
    strong: float  # similarity that is enough on its own
    weak: float  # similarity that is enough together with a keyword match
    text_rank_max: int  # the keyword match must rank at least this high in the full-text half
    max_gap: float  # a passage this far below the best passage's similarity is dropped
    max_fused_rank: int  # positions after this one are dropped (the prompt's budget)


# Per embedding model. Figures: see _CALIBRATION_NOTES and the module docstring.
THRESHOLDS: dict[str, GateThresholds] = {
    # all-MiniLM-L6-v2, calibration half / held-out half:
    #   strong 0.34 sits in the middle of the calibration half's plateau: any value from 0.33 to
    #   0.35 refuses 9 of 10 unanswerable questions (the near miss "What is the pin code to unlock
    #   the Acme smart door lock?" reaches 0.375) and no answerable one; 0.32 lets a second
    #   unanswerable one through, 0.36 starts refusing answerable ones. The keyword rule (weak
    #   0.30 with a top-3 full-text match) and max_gap 0.15 were the grid's best for citation
    #   accuracy at no cost in refusals.
    #   Full pipeline, calibration / held-out half (both corpora):
    #     hit@5 1.00 / 0.95, MRR 0.89 / 0.88, unanswerable refused 0.90 / 1.00,
    #     answerable refused 0.00 / 0.026 (1 of 38), citation accuracy 0.63 / 0.68.
    #   Precision of "refuse" 1.0 / 0.91 and recall 0.90 / 1.0 on the unanswerable questions.
    "all-MiniLM-L6-v2": GateThresholds(strong=0.34, weak=0.30, text_rank_max=3, max_gap=0.15, max_fused_rank=60),
}
DEFAULT_THRESHOLDS = GateThresholds(strong=0.30, weak=0.20, text_rank_max=10, max_gap=0.25, max_fused_rank=60)


@dataclass(frozen=True)
class PassageVerdict:
    passage: RetrievedPassage
    relevant: bool
    reason: str  # a short human sentence for the trace
    signals: dict[str, float | int | None]

    def as_trace(self) -> dict[str, object]:
        """JSON-ready, for the answer's trace: which passage, kept or not, why, and its scores."""
        return {
            "chunk_id": self.passage.chunk_id,
            "document_id": self.passage.document_id,
            "document_title": self.passage.document_title,
            "relevant": self.relevant,
            "reason": self.reason,
            "signals": dict(self.signals),
        }


def thresholds_for(embedding_model: str) -> GateThresholds:
    return THRESHOLDS.get(embedding_model, DEFAULT_THRESHOLDS)


def gate_passages(
    passages: Sequence[RetrievedPassage], *, embedding_model: str, thresholds: GateThresholds | None = None
) -> list[PassageVerdict]:
    """One verdict per passage, in the given order (best first). Pure: no DB, no model.

    `thresholds` overrides the model's row (the benchmark's calibration uses it).
    """
    limits = thresholds or thresholds_for(embedding_model)
    best = max((p.similarity for p in passages if p.similarity is not None), default=None)
    return [_verdict(passage, position, best, limits) for position, passage in enumerate(passages, start=1)]


def _verdict(passage: RetrievedPassage, position: int, best: float | None, limits: GateThresholds) -> PassageVerdict:
    similarity = passage.similarity
    gap = (best - similarity) if best is not None and similarity is not None else None
    signals: dict[str, float | int | None] = {
        "similarity": round(similarity, 4) if similarity is not None else None,
        "text_rank": passage.text_rank,
        "vector_rank": passage.vector_rank,
        "fused_rank": position,
        "fused_score": round(passage.score, 6),
        "gap": round(gap, 4) if gap is not None else None,
    }
    relevant, reason = _decide(similarity, passage.text_rank, position, gap, limits)
    return PassageVerdict(passage=passage, relevant=relevant, reason=reason, signals=signals)


def _decide(
    similarity: float | None, text_rank: int | None, position: int, gap: float | None, limits: GateThresholds
) -> tuple[bool, str]:
    if similarity is None:
        # Without a similarity there is no absolute evidence: a fused rank is only relative.
        return False, "no similarity score"
    keyword = text_rank is not None and text_rank <= limits.text_rank_max
    if position > limits.max_fused_rank:
        return False, f"fused rank {position} > {limits.max_fused_rank}"
    if gap is not None and gap > limits.max_gap:
        return False, f"similarity {similarity:.2f} is {gap:.2f} below the best passage (> {limits.max_gap:.2f})"
    if similarity >= limits.strong:
        return True, f"similarity {similarity:.2f} >= {limits.strong:.2f}"
    if keyword and similarity >= limits.weak:
        return True, f"similarity {similarity:.2f} >= {limits.weak:.2f} with keyword match (rank {text_rank})"
    if keyword:
        return False, f"similarity {similarity:.2f} < {limits.weak:.2f} despite keyword match (rank {text_rank})"
    if text_rank is not None:
        return False, (
            f"similarity {similarity:.2f} < {limits.strong:.2f} and keyword match too weak "
            f"(rank {text_rank} > {limits.text_rank_max})"
        )
    return False, f"similarity {similarity:.2f} < {limits.strong:.2f} and no keyword match"
