"""The knowledge base page's search box: what retrieval returns for a query, with its scores.

It runs the answer pipeline's own retrieval (knowledge.answer_retrieval.passages_for_answer: one
hybrid search, re-ranked, then gated) so the page shows what a bot would get, and lays out per
passage what the trace inspector needs to explain it:

- vector: the cosine similarity of the passage to the query, and its rank in the vector half;
- keyword: its rank in the full-text half (None: no query word matched), and the share of the
  fused score that rank earned, 1 / (60 + rank), as reciprocal-rank fusion counts it;
- fused: the RRF score both halves add up to, which orders the candidates;
- kept: whether the relevance gate (knowledge/relevance.py) would let a bot answer from it, and
  the gate's reason in a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenants.models import Tenant

from .answer_retrieval import passages_for_answer
from .models import KnowledgeBase
from .retrieval.decode import RRF_K


@dataclass(frozen=True)
class ScoredPassage:
    position: int
    document_title: str
    heading_path: list[str]
    page: int | None
    url: str | None
    text: str
    similarity: float | None
    vector_rank: int | None
    keyword_rank: int | None
    keyword_score: float | None
    fused_score: float
    rerank_score: float | None
    kept: bool
    reason: str


@dataclass(frozen=True)
class SearchTrace:
    query: str
    passages: list[ScoredPassage]
    kept_count: int

    @property
    def refused(self) -> bool:
        """True when the gate keeps nothing: a knowledge-only bot would say it does not know."""
        return self.kept_count == 0


def search_trace(*, tenant: Tenant, knowledge_base: KnowledgeBase, query: str, k: int = 5) -> SearchTrace:
    """The first k candidates of `query` in this knowledge base, in the order the pipeline ranks
    them, each with its scores and the gate's verdict. Tenant scope as chunk_search's."""
    decision = passages_for_answer(
        tenant=tenant,
        knowledge_base_ids=[knowledge_base.pk],
        query=query,
        k=k,
        embedding_model=knowledge_base.embedding_model,
    )
    kept_ids = {p.chunk_id for p in decision.kept}
    passages = []
    for position, verdict in enumerate(decision.verdicts[:k], start=1):
        p, signals = verdict.passage, verdict.signals
        rerank = signals.get("rerank_score")
        passages.append(
            ScoredPassage(
                position=position,
                document_title=p.document_title,
                heading_path=list(p.heading_path or []),
                page=p.page,
                url=p.url,
                text=p.text,
                similarity=p.similarity,
                vector_rank=p.vector_rank,
                keyword_rank=p.text_rank,
                keyword_score=1 / (RRF_K + p.text_rank) if p.text_rank is not None else None,
                fused_score=p.score,
                rerank_score=float(rerank) if rerank is not None else None,
                kept=p.chunk_id in kept_ids,
                reason=verdict.reason,
            )
        )
    return SearchTrace(query=query, passages=passages, kept_count=len(decision.kept))
