"""Retrieval for a turn, behind the knowledge app's one call: knowledge.selectors.chunk_search."""

from __future__ import annotations

import logging

from bots.models import Bot
from knowledge.types import RetrievedPassage
from tenants.models import Tenant

log = logging.getLogger(__name__)


def passages_for(*, tenant: Tenant, bot: Bot, query: str) -> list[RetrievedPassage]:
    """The best passages of the bot's knowledge bases, best first. Tenant scope required."""
    kb_ids = list(bot.knowledge_bases.values_list("id", flat=True))
    if not kb_ids:
        return []
    from knowledge.selectors import chunk_search

    return chunk_search(
        tenant=tenant, knowledge_base_ids=kb_ids, query=query, k=bot.retrieval_k, min_score=bot.min_passage_score
    )
