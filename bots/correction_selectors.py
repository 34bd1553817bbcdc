"""Reads of corrections: the answer pipeline's match, and the dashboard's lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import QuerySet
from pgvector.django import CosineDistance

from .models import Bot, Correction

# The cosine similarity from which a visitor's question is taken to ask a correction's question
# (all-MiniLM-L6-v2). Calibrated on tests/bots/correction_paraphrases.py: 36 paraphrases of 12
# corrections and 36 near misses (same product, another question), counting a paraphrase found
# only when its own correction is the nearest:
#   0.55: recall 0.94, precision 0.94   0.60: 0.89 / 0.97   0.65: 0.78 / 1.00   0.70: 0.72 / 1.00
# A wrong curated answer given with the support team's name costs more than a miss (the visitor
# then gets the normal answer), so the lowest threshold with no false match: 0.65 (the nearest
# near miss scores 0.626). Other models (OpenAI's) are not calibrated yet and use the same value.
MATCH_SIMILARITY = {"all-MiniLM-L6-v2": 0.65}
DEFAULT_MATCH_SIMILARITY = 0.65


@dataclass(frozen=True)
class CorrectionMatch:
    correction_id: int
    question: str
    answer: str
    source_url: str
    similarity: float


def match_threshold(embedding_model: str) -> float:
    return MATCH_SIMILARITY.get(embedding_model, DEFAULT_MATCH_SIMILARITY)


def correction_match(*, bot: Bot, embedding_model: str, vector: Sequence[float]) -> CorrectionMatch | None:
    """The bot's enabled correction nearest to the question's `vector`, when it is similar enough.

    One query on the (bot, enabled, embedding_model) index; a bot has tens to a few hundred
    corrections, so the exact distance over them is cheaper than an approximate index would be.
    Only corrections embedded with `embedding_model` compare (vectors of another model mean
    nothing against it). Tenant scope required."""
    row = (
        Correction.objects.filter(bot_id=bot.pk, enabled=True, embedding_model=embedding_model)
        .annotate(distance=CosineDistance("embedding", list(vector)))
        .order_by("distance")
        .values("pk", "question", "answer", "source_url", "distance")
        .first()
    )
    if row is None:
        return None
    similarity = round(1.0 - float(row["distance"]), 4)
    if similarity < match_threshold(embedding_model):
        return None
    return CorrectionMatch(row["pk"], row["question"], row["answer"], row["source_url"], similarity)


def correction_list_for_bot(*, bot: Bot) -> QuerySet[Correction]:
    """The bot's corrections, newest edit first, without their vectors (not shown). Tenant scope required."""
    return Correction.objects.filter(bot_id=bot.pk).defer("embedding").select_related("author")
