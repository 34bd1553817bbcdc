"""Writes for the privacy tools: erase one visitor, purge conversations, enforce retention.

What a conversation leaves behind, and where it goes:
- rows: the conversation, its messages, traces and gap items (ON DELETE CASCADE), the insights'
  top questions that point at it (`DailyQuestion.conversation_id`, no foreign key) and, for an
  erased visitor, their leads. Knowledge-gap groups that lose items get their centroid recomputed
  from what is left (or are deleted when empty), so no vector keeps the erased questions.
- Redis: each answer's resume stream and stop flag (`streams.py`: `…:conv:stream:<message id>`,
  `…:conv:stop:<message id>`), the handoff channel group `handoff-conv-<conversation id>`
  (channel layer, `handoff_bus.py`), and the visitor's rate-limit buckets (`ratelimit.py`:
  `…:conv:rl2:visitor:<bot>:<visitor>`, `…:conv:rl2:lead_visitor:<bot>:<visitor>`).
- files: visitors upload none (documents belong to the tenant), so there are none to remove.
Daily rollups hold counts only and are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pgvector.django import CosineDistance

from bots.models import Bot
from tenants.context import tenant_context
from tenants.models import Tenant

from .handoff_bus import conversation_group
from .models import Conversation, DailyQuestion, GapGroup, GapItem, Message
from .privacy_selectors import visitor_conversations, visitor_leads
from .ratelimit import bucket_key
from .redisconn import sync_redis
from .streams import stop_key, stream_key

logger = logging.getLogger(__name__)

PURGE_BATCH = 500


@dataclass
class PurgeResult:
    conversations: int = 0
    messages: int = 0
    leads: int = 0
    redis_keys: int = 0

    @property
    def empty(self) -> bool:
        return not (self.conversations or self.leads)


def channel_group_key(group: str) -> str:
    """The Redis key under which channels_redis keeps a group's members."""
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    config: dict[str, Any] = layer.get("CONFIG", {})
    prefix = config.get("prefix", "asgi")  # channels_redis's default
    return f"{prefix}:group:{group}"


def redis_keys_delete(keys: list[str]) -> int:
    """Delete the keys after the rows are gone: a Redis outage leaves only short-lived buffers
    (every one of them has a TTL), never rows that point at nothing."""
    deleted = 0
    client = sync_redis()
    for start in range(0, len(keys), 1000):
        deleted += int(client.delete(*keys[start : start + 1000]) or 0)
    return deleted


def _gap_groups_refresh(group_ids: set[int]) -> None:
    """Recompute the centroid, size and representative of groups that lost items; delete the empty."""
    for group in GapGroup.objects.filter(pk__in=group_ids):
        vectors = [list(v) for v in GapItem.objects.filter(group=group).values_list("embedding", flat=True)]
        if not vectors:
            group.delete()
            continue
        group.size = len(vectors)
        group.centroid = [sum(column) / len(vectors) for column in zip(*vectors, strict=True)]
        group.representative_id = (
            GapItem.objects.filter(group=group)
            .annotate(distance=CosineDistance("embedding", group.centroid))
            .order_by("distance")
            .values_list("pk", flat=True)
            .first()
        )
        group.save(update_fields=["size", "centroid", "representative"])


def conversations_purge(*, conversation_ids: list[int], extra_keys: list[str] | None = None) -> PurgeResult:
    """Delete these conversations of the current tenant and everything under them (see the module
    docstring), then their Redis keys. Idempotent; tenant scope required (ids of another tenant
    match nothing). Leads of the conversations are kept (their link is cleared): erase a visitor to
    remove those too."""
    result = PurgeResult()
    keys = list(extra_keys or [])
    with transaction.atomic():
        ids = list(Conversation.objects.filter(pk__in=conversation_ids).values_list("pk", flat=True))
        message_ids = list(Message.objects.filter(conversation_id__in=ids).values_list("pk", flat=True))
        groups = set(GapItem.objects.filter(conversation_id__in=ids).values_list("group_id", flat=True))
        DailyQuestion.objects.filter(conversation_id__in=ids).delete()
        GapItem.objects.filter(conversation_id__in=ids).delete()
        Message.objects.filter(conversation_id__in=ids).delete()
        Conversation.objects.filter(pk__in=ids).delete()
        result.conversations = len(ids)
        result.messages = len(message_ids)
        _gap_groups_refresh(groups)
    for message_id in message_ids:
        keys += [stream_key(message_id), stop_key(message_id)]
    keys += [channel_group_key(conversation_group(pk)) for pk in ids]
    if keys:
        try:
            result.redis_keys = redis_keys_delete(keys)
        except Exception:  # the rows are gone; the buffers expire by themselves (STREAM_BUFFER_TTL_SECONDS)
            logger.exception("could not delete %s Redis keys of purged conversations", len(keys))
    return result


def visitor_erase(*, visitor: str) -> PurgeResult:
    """Erase one visitor of the current tenant: their conversations with everything under them,
    their leads, and their rate-limit buckets on every bot of the tenant. Idempotent: a second call
    (or an unknown visitor) returns an empty result. Tenant scope required."""
    visitor = (visitor or "").strip()
    if not visitor:
        return PurgeResult()
    rows = list(visitor_conversations(visitor=visitor).values_list("pk", "visitor_id"))
    ids = [pk for pk, _ in rows]
    # A signed identity names conversations whose widget visitor ids differ: clear each one's buckets.
    visitor_ids = {vid for _, vid in rows if vid} | {visitor}
    # The bucket keys of ratelimit.visitor_buckets and handoff_consumer.lead_buckets, on every bot.
    keys = [
        bucket_key(scope, f"{bot_id}:{vid}")
        for bot_id in Bot.objects.values_list("pk", flat=True)
        for vid in visitor_ids
        for scope in ("visitor", "lead_visitor")
    ]
    with transaction.atomic():
        leads, _ = visitor_leads(visitor=visitor).delete()
        result = conversations_purge(conversation_ids=ids, extra_keys=keys)
    result.leads = leads
    logger.info("erased a visitor: %s conversations, %s leads", result.conversations, result.leads)
    return result


def retention_cutoff(*, tenant: Tenant, now: datetime | None = None) -> datetime | None:
    days = tenant.conversation_retention_days
    if not days:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def retention_enforce_tenant(*, tenant: Tenant, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete (or, dry run, count) the tenant's conversations last active before its retention
    cutoff, in batches of PURGE_BATCH. Returns how many. No retention set: 0. Sets the tenant scope."""
    cutoff = retention_cutoff(tenant=tenant, now=now)
    if cutoff is None:
        return 0
    with tenant_context(tenant):
        expired = Conversation.objects.filter(last_active__lt=cutoff)
        if dry_run:
            return expired.count()
        total = 0
        while batch := list(expired.order_by("pk").values_list("pk", flat=True)[:PURGE_BATCH]):
            total += conversations_purge(conversation_ids=batch).conversations
        return total


def retention_enforce(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Every tenant with a retention period: {slug: conversations deleted (or due, dry run)}.
    Operator path over all tenants; each tenant's rows are deleted under its own scope."""
    done: dict[str, int] = {}
    for tenant in Tenant.objects.filter(conversation_retention_days__isnull=False).order_by("pk"):
        done[tenant.slug] = retention_enforce_tenant(tenant=tenant, now=now, dry_run=dry_run)
    return done
