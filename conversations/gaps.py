"""Knowledge gaps: the visitor questions the bot failed, grouped into topics as they arrive.

A gap item is a visitor's question whose answer was "I don't know" (the relevance gate kept no
passage, so a knowledge-only bot gave its no-answer text: model `policy:no_passages`) or was
thumbed down. Playground and evaluation turns (TEST_CHANNELS) are the tenant's own tests and
never count.

Grouping is incremental: `gaps_scan` (Celery beat, every minute) picks up the answers settled or
rated since its watermark, and `gap_item_add` puts each question in the nearest group of its bot
when the cosine similarity to that group's centroid reaches GAP_JOIN_SIMILARITY (one pgvector
query on the centroids' HNSW index), or starts a group. The centroid is the running mean of its
items' vectors, and the representative question the item nearest to it. Nothing is re-clustered
when a page is read.

Questions are embedded with the local model (GAP_EMBEDDING_MODEL), the one most bots' queries are
already embedded with; the vector is kept on the item, so nothing is embedded twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from pgvector.django import CosineDistance

from knowledge.embeddings import get_embedder
from tenants.context import tenant_context

from .models import GAP_EMBEDDING_MODEL, GapGroup, GapItem, GapScan, Message
from .selectors import TEST_CHANNELS

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 cosine similarity from which a question joins a group. Wider than a
# correction's match (bots.correction_selectors, 0.65): a group is a topic to read, not an answer
# given to a visitor. On the correction calibration set (tests/bots/correction_paraphrases.py),
# 0.55 put 94% of paraphrases with their question and joined 2 of 36 near misses.
GAP_JOIN_SIMILARITY = 0.55
NO_ANSWER_MODEL = "policy:no_passages"
# How far back each scan looks again: an answer settled while the previous scan ran (its
# `updated` older than the watermark, its commit later) is still found; items are unique per
# answer, so seeing one twice adds nothing.
SCAN_OVERLAP = timedelta(minutes=5)
SCAN_BATCH = 500


def failed_answers() -> Q:
    """The assistant messages that are gap items: unanswered or thumbed down, visitors' only."""
    return (
        Q(role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE)
        & (Q(model=NO_ANSWER_MODEL) | Q(feedback=Message.Feedback.DOWN))
        & ~Q(conversation__channel__in=TEST_CHANNELS)
    )


def _question_for(answer: Message) -> Message | None:
    """The visitor message the answer replied to: the latest one before it."""
    return (
        Message.objects.filter(conversation_id=answer.conversation_id, role=Message.Role.USER, id__lt=answer.pk)
        .order_by("-id")
        .first()
    )


def gap_item_add(*, answer: Message, vector: list[float] | None = None) -> GapItem | None:
    """File the question behind `answer` (a failed answer, see failed_answers) under its bot's
    nearest gap group, or a new group. Idempotent: an answer already filed returns its item.
    The group's row is locked while its centroid moves. Tenant scope required."""
    existing = GapItem.objects.filter(message_id=answer.pk).first()
    if existing is not None:
        return existing
    question = _question_for(answer)
    if question is None or not question.content.strip():
        return None
    kind = GapItem.Kind.THUMBS_DOWN if answer.feedback == Message.Feedback.DOWN else GapItem.Kind.UNANSWERED
    if vector is None:
        vector = get_embedder(GAP_EMBEDDING_MODEL).embed_query(question.content)
    bot_id = answer.conversation.bot_id
    try:
        with transaction.atomic():
            group = _nearest_group(bot_id=bot_id, vector=vector)
            if group is None:
                group = GapGroup.objects.create(bot_id=bot_id, centroid=vector, created=question.created)
            item = GapItem.objects.create(
                group=group,
                message=answer,
                conversation_id=answer.conversation_id,
                question=question.content[:2000],
                kind=kind,
                embedding=vector,
                created=question.created,
            )
            _absorb(group, item, vector)
    except IntegrityError:  # filed meanwhile by another scan
        return GapItem.objects.filter(message_id=answer.pk).first()
    return item


def _nearest_group(*, bot_id: int, vector: list[float]) -> GapGroup | None:
    """The bot's group nearest to `vector` when similar enough, locked. Dismissed groups count:
    a dismissed topic stays dismissed as its questions keep coming."""
    nearest = (
        GapGroup.objects.filter(bot_id=bot_id)
        .annotate(distance=CosineDistance("centroid", vector))
        .order_by("distance")
        .values_list("pk", "distance")
        .first()
    )
    if nearest is None or 1.0 - float(nearest[1]) < GAP_JOIN_SIMILARITY:
        return None
    return GapGroup.objects.select_for_update().get(pk=nearest[0])


def _absorb(group: GapGroup, item: GapItem, vector: list[float]) -> None:
    """Move the group's centroid to the running mean with `item`, and pick its representative."""
    size = group.size
    old = [float(x) for x in group.centroid] if size else [0.0] * len(vector)
    group.centroid = [(o * size + v) / (size + 1) for o, v in zip(old, vector, strict=True)]
    group.size = size + 1
    group.last_seen = max(group.last_seen, item.created) if size else item.created
    group.save(update_fields=["centroid", "size", "last_seen"])
    group.representative_id = (
        GapItem.objects.filter(group=group)
        .annotate(distance=CosineDistance("embedding", group.centroid))
        .order_by("distance", "id")
        .values_list("pk", flat=True)
        .first()
    )
    group.save(update_fields=["representative"])


@dataclass(frozen=True)
class ScanResult:
    seen: int
    filed: int
    upto: datetime


def gaps_scan(*, now: datetime | None = None) -> ScanResult:
    """File every failed answer settled or rated since the last scan, each under its own tenant.
    Safe to run concurrently and again (items are unique per answer). Needs no tenant context:
    it reads across tenants deliberately (`.unscoped()`), then works inside each answer's."""
    now = now or timezone.now()
    scan, _ = GapScan.objects.get_or_create(pk=1, defaults={"upto": now - SCAN_OVERLAP})
    since = scan.upto - SCAN_OVERLAP
    answers = list(
        Message.objects.unscoped()
        .filter(failed_answers(), updated__gt=since, updated__lte=now, gap_item__isnull=True)
        .select_related("conversation", "tenant")
        .order_by("updated", "id")[:SCAN_BATCH]
    )
    filed = 0
    for answer in answers:
        with tenant_context(answer.tenant):
            try:
                filed += gap_item_add(answer=answer) is not None
            except Exception:
                # One question that cannot be embedded must not hold up the others; it is retried
                # by the scans that still overlap its time.
                log.exception("could not file the knowledge gap of message %s", answer.pk)
    upto = answers[-1].updated if len(answers) == SCAN_BATCH else now
    GapScan.objects.filter(pk=1, upto__lt=upto).update(upto=upto)
    return ScanResult(seen=len(answers), filed=filed, upto=upto)


def gap_group_dismiss(*, group: GapGroup, dismissed: bool = True) -> GapGroup:
    """Hide (or show again) a gap group from the list. Tenant scope required."""
    group.dismissed = dismissed
    group.save(update_fields=["dismissed"])
    return group


def gap_group_answered(*, group: GapGroup, correction_id: int) -> None:
    """Mark the group answered by the correction written from it. Tenant scope required."""
    GapGroup.objects.filter(pk=group.pk).update(correction_id=correction_id)
