"""The retrieve stage of a turn, behind the knowledge app's one call: knowledge.selectors.chunk_search."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bots.models import Bot
from knowledge.types import RetrievedPassage
from tenants.models import Tenant


@dataclass(frozen=True)
class RetrievalRequest:
    tenant: Tenant
    bot: Bot
    query: str
    knowledge_base_ids: list[int]  # the bot's, as the begin stage read them
    query_vectors: Mapping[str, Sequence[float]] | None = None  # {embedding model: the query's vector}


@dataclass(frozen=True)
class Retrieval:
    passages: list[RetrievedPassage]  # best first
    retrieval_ms: float


def retrieve(request: RetrievalRequest) -> Retrieval:
    """The retrieve stage: the best passages of the request's knowledge bases for the query, best
    first, only ever of the request's tenant (chunk_search filters every row by it, and finds
    nothing when another tenant is in context). Tenant scope required."""
    started = time.perf_counter()
    passages = passages_for(
        tenant=request.tenant,
        bot=request.bot,
        query=request.query,
        knowledge_base_ids=request.knowledge_base_ids,
        query_vectors=request.query_vectors,
    )
    return Retrieval(passages, round((time.perf_counter() - started) * 1000, 2))


def passages_for(
    *,
    tenant: Tenant,
    bot: Bot,
    query: str,
    knowledge_base_ids: list[int] | None = None,
    query_vectors: Mapping[str, Sequence[float]] | None = None,
) -> list[RetrievedPassage]:
    """The best passages of the bot's knowledge bases, best first. Tenant scope required.

    `knowledge_base_ids` (read by turn_begin) and `query_vectors` (the query embedded while the
    turn was opened) save their look-up and the embedding; either is computed here when missing.
    """
    kb_ids = (
        knowledge_base_ids if knowledge_base_ids is not None else list(bot.knowledge_bases.values_list("id", flat=True))
    )
    if not kb_ids:
        return []
    from knowledge.selectors import chunk_search

    return chunk_search(
        tenant=tenant,
        knowledge_base_ids=kb_ids,
        query=query,
        k=bot.retrieval_k,
        min_score=bot.min_passage_score,
        query_vectors=query_vectors,
    )
