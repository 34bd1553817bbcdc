"""The retrieve stage of a turn, behind the knowledge app's one call for answers:
knowledge.answer_retrieval.passages_for_answer (one hybrid search, re-ranked, then gated)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bots.models import Bot
from chatbot_saas.tracing import span
from knowledge.answer_retrieval import CANDIDATES, RetrievalDecision
from knowledge.types import RetrievedPassage
from tenants.models import Tenant

from .corrections import vectors_for_corrections, with_correction

# The pool re-ranked and gated. The gate's benchmark (knowledge/answer_retrieval.py, CANDIDATES)
# gives hit@5 / MRR 0.96 / 0.88 at 40 against 0.97 / 0.88 at 60, while the search's p50 on its
# 42-page corpus grows from ~21 ms (k=5) towards ~34 ms (k=60): 40 keeps nearly all the quality
# for about two thirds of the extra search time.
# Verdicts the trace keeps besides the kept passages: the first few dropped ones say why the
# answer had nothing better, the tail of a 40-candidate pool says nothing more.
TRACED_DROPPED = 8


@dataclass(frozen=True)
class RetrievalRequest:
    tenant: Tenant
    bot: Bot
    query: str
    knowledge_bases: list[tuple[int, str]]  # the bot's (id, embedding model), as the begin stage read them
    query_vectors: Mapping[str, Sequence[float]] | None = None  # {embedding model: the query's vector}


@dataclass(frozen=True)
class Retrieval:
    passages: list[RetrievedPassage]  # the relevant ones, best first; empty: the knowledge has no answer
    retrieval_ms: float
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # the gate's, for the trace


def retrieve(request: RetrievalRequest) -> Retrieval:
    """The retrieve stage: the relevant passages of the request's knowledge bases for the query,
    best first, only ever of the request's tenant (chunk_search filters every row by it, and finds
    nothing when another tenant is in context). Tenant scope required."""
    started = time.perf_counter()
    decision = decision_for(
        tenant=request.tenant,
        bot=request.bot,
        query=request.query,
        knowledge_bases=request.knowledge_bases,
        query_vectors=request.query_vectors,
    )
    return Retrieval(decision.kept, round((time.perf_counter() - started) * 1000, 2), traced_verdicts(decision))


def decision_for(
    *,
    tenant: Tenant,
    bot: Bot,
    query: str,
    knowledge_bases: list[tuple[int, str]] | None = None,
    query_vectors: Mapping[str, Sequence[float]] | None = None,
) -> RetrievalDecision:
    """_decide, in the turn's `retrieval` span (ids and counts only: never the query)."""
    with span("retrieval", tenant_id=tenant.pk, bot_id=bot.public_id) as traced:
        decision = _decide(
            tenant=tenant, bot=bot, query=query, knowledge_bases=knowledge_bases, query_vectors=query_vectors
        )
        traced.set(kept=len(decision.kept), candidates=len(decision.verdicts))
        return decision


def _decide(
    *,
    tenant: Tenant,
    bot: Bot,
    query: str,
    knowledge_bases: list[tuple[int, str]] | None,
    query_vectors: Mapping[str, Sequence[float]] | None,
) -> RetrievalDecision:
    """The gate's decision on the bot's knowledge bases for `query`: at most `bot.retrieval_k`
    relevant passages, and a verdict per candidate. Tenant scope required.

    `knowledge_bases` (read by turn_begin) and `query_vectors` (the query embedded while the turn
    was opened) save their look-up and the embedding; either is computed here when missing. The
    gate uses the thresholds calibrated for the first knowledge base's embedding model.
    """
    from knowledge.answer_retrieval import passages_for_answer

    if knowledge_bases is None:
        knowledge_bases = list(bot.knowledge_bases.order_by("id").values_list("id", "embedding_model"))
    if not knowledge_bases:
        return RetrievalDecision(kept=[])
    query_vectors = vectors_for_corrections(bot, query, knowledge_bases[0][1], query_vectors)
    decision = passages_for_answer(
        tenant=tenant,
        knowledge_base_ids=[kb_id for kb_id, _model in knowledge_bases],
        query=query,
        k=bot.retrieval_k,
        embedding_model=knowledge_bases[0][1],
        query_vectors=query_vectors,
        candidates=CANDIDATES,
    )
    if bot.min_passage_score is not None:
        # The bot's own floor on similarity still applies on top of the gate.
        floor = bot.min_passage_score
        kept = [p for p in decision.kept if p.similarity is None or p.similarity >= floor]
        decision = RetrievalDecision(kept=kept, verdicts=decision.verdicts)
    if bot.has_corrections:  # a correction the support team wrote comes first (pipeline/corrections.py)
        decision = with_correction(
            decision, bot=bot, embedding_model=knowledge_bases[0][1], k=bot.retrieval_k, query_vectors=query_vectors
        )
    return decision


def traced_verdicts(decision: RetrievalDecision) -> list[dict[str, Any]]:
    """The verdicts the trace records: every kept passage's, and the first dropped ones'."""
    kept = {p.chunk_id for p in decision.kept}
    traced, dropped = [], 0
    for verdict in decision.verdicts:
        if verdict.passage.chunk_id in kept:
            traced.append({**verdict.as_trace(), "kept": True})
        elif dropped < TRACED_DROPPED:
            dropped += 1
            traced.append({**verdict.as_trace(), "kept": False})
    return traced
