"""Corrections in the retrieve stage: a visitor question that asks what a correction (a curated
question and answer written by the support team, bots.Correction) answers is answered from it.

The matched correction becomes the first passage, titled "From the support team": with a model,
it is the top source of the prompt (numbered [1]); with the offline answerer, its text is the
answer. Either way the turn goes on through the normal stages (guardrails, streaming, the
trace, whose gate verdicts list the correction with its similarity).

Cost: nothing for a bot without an enabled correction (Bot.has_corrections, read with the bot),
otherwise one indexed query (bots.correction_selectors.correction_match) and, on a match, one
UPDATE counting the use. The question's vector is the one the turn embedded for its search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bots.correction_selectors import CorrectionMatch, correction_match
from bots.correction_services import correction_used
from bots.models import Bot
from knowledge.answer_retrieval import RetrievalDecision
from knowledge.embeddings import embed_query_by_model
from knowledge.relevance import PassageVerdict
from knowledge.types import RetrievedPassage

SUPPORT_TEAM_TITLE = "From the support team"


def vectors_for_corrections(
    bot: Bot, query: str, embedding_model: str, query_vectors: Mapping[str, Sequence[float]] | None
) -> Mapping[str, Sequence[float]] | None:
    """The query's vectors with the one a correction match needs, embedded here when missing (the
    search then reuses it rather than embedding the query a second time)."""
    if not bot.has_corrections or (query_vectors is not None and embedding_model in query_vectors):
        return query_vectors
    return {**(query_vectors or {}), **embed_query_by_model(query, [embedding_model])}


def correction_passage(match: CorrectionMatch) -> RetrievedPassage:
    return RetrievedPassage(
        chunk_id=0,
        document_id=0,
        knowledge_base_id=0,
        text=f"Q: {match.question}\nA: {match.answer}",
        score=1.0,
        document_title=SUPPORT_TEAM_TITLE,
        url=match.source_url or None,
        snippet=match.answer,
        similarity=match.similarity,
        correction_id=match.correction_id,
    )


def with_correction(
    decision: RetrievalDecision,
    *,
    bot: Bot,
    embedding_model: str,
    k: int,
    query_vectors: Mapping[str, Sequence[float]] | None,
) -> RetrievalDecision:
    """`decision` with the bot's matching correction first (and its verdict first), keeping at
    most k passages; unchanged when none matches. Tenant scope required."""
    vector = (query_vectors or {}).get(embedding_model)
    if vector is None:
        return decision
    match = correction_match(bot=bot, embedding_model=embedding_model, vector=vector)
    if match is None:
        return decision
    correction_used(correction_id=match.correction_id)
    passage = correction_passage(match)
    verdict = PassageVerdict(
        passage=passage,
        relevant=True,
        reason=f"correction {match.correction_id} from the support team matched (similarity {match.similarity:.2f})",
        signals={"similarity": match.similarity, "correction_id": match.correction_id},
    )
    return RetrievalDecision(kept=[passage, *decision.kept][: max(k, 1)], verdicts=[verdict, *decision.verdicts])
