"""Retrieval for a turn, behind the knowledge app's one call: knowledge.selectors.chunk_search."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from bots.models import Bot
from knowledge.types import RetrievedPassage
from tenants.models import Tenant

log = logging.getLogger(__name__)


def passages_for(
    *,
    tenant: Tenant,
    bot: Bot,
    query: str,
    knowledge_base_ids: list[int] | None = None,
    query_vectors: Mapping[str, Sequence[float]] | None = None,
    search_scope: Sequence[tuple[int, str, int]] | None = None,
) -> list[RetrievedPassage]:
    """The best passages of the bot's knowledge bases, best first. Tenant scope required.

    `knowledge_base_ids` (read by turn_prelude) and `query_vectors` (the query embedded while the
    turn was opened) save their look-up and the embedding; either is computed here when missing.
    `search_scope` ((id, embedding model, visible chunks) of those knowledge bases, read with the
    turn) saves chunk_search its own read of them.
    """
    kb_ids = (
        knowledge_base_ids if knowledge_base_ids is not None else list(bot.knowledge_bases.values_list("id", flat=True))
    )
    if not kb_ids:
        return []
    from knowledge.selectors import chunk_search

    return chunk_search(
        tenant=tenant, knowledge_base_ids=kb_ids, query=query, k=bot.retrieval_k, min_score=bot.min_passage_score,
        query_vectors=query_vectors, search_scope=search_scope,
    )  # fmt: skip
