"""Delete a whole workspace: every row, vector, Redis key and stored file.

Here, above every app, because it calls each app's own deletion service (the ones that know
what lives outside Postgres) before the tenant row takes the rest with it:
- conversations: conversations.privacy_services.conversations_purge (resume streams, stop flags,
  handoff channel groups, gap vectors);
- knowledge: knowledge.services.knowledge_base_delete (stored files, partial HNSW indexes);
- Redis keys named after the workspace, its bots, API keys and visitors (rate-limit buckets,
  the install check's guard, the inbox channel group), found by pattern;
- then `Tenant.delete()`: every tenant-owned table has ON DELETE CASCADE to it.
Members' user accounts stay (they are people, and may belong to other workspaces). Stripe event
records keep their payload with the tenant cleared, for the accounts.
"""

from __future__ import annotations

import logging
from typing import Any

from billing.models import Subscription
from bots.models import Bot
from chatbot_saas.errors import AppError
from conversations.handoff_bus import inbox_group
from conversations.models import Conversation, Lead
from conversations.privacy_services import PURGE_BATCH, channel_group_key, conversations_purge, redis_keys_delete
from conversations.ratelimit import bucket_key
from conversations.redisconn import key, sync_redis
from knowledge.models import KnowledgeBase
from knowledge.services import knowledge_base_delete
from tenants.context import tenant_context
from tenants.models import ApiKey, Tenant

audit = logging.getLogger("chatbot_saas.audit")


def _redis_patterns(tenant: Tenant) -> tuple[list[str], list[str]]:
    """(exact keys, glob patterns) of the workspace's own Redis keys. Tenant scope required."""
    bots = list(Bot.objects.values_list("pk", flat=True))
    api_keys = list(ApiKey.objects.values_list("pk", flat=True))
    exact = [bucket_key("tenant", tenant.pk), channel_group_key(inbox_group(tenant.pk))]
    exact += [bucket_key("bot", pk) for pk in bots] + [bucket_key("api_key", pk) for pk in api_keys]
    patterns = [bucket_key("connection_test", f"{tenant.pk}:*")]
    for pk in bots:
        patterns += [
            bucket_key("visitor", f"{pk}:*"),
            bucket_key("lead_visitor", f"{pk}:*"),
            key("widget-seen", pk, "*"),
        ]
    return exact, patterns


def _redis_clear(exact: list[str], patterns: list[str]) -> int:
    client = sync_redis()
    found = list(exact)
    for pattern in patterns:
        found += [k.decode() for k in client.scan_iter(pattern, count=1000)]
    return redis_keys_delete(found)


def tenant_delete(*, tenant: Tenant, confirm_name: str, by: Any = None) -> dict[str, int]:
    """Delete the workspace and everything it owns; returns what went, for the audit log.

    The caller checks that `by` is an owner. Refuses (AppError) when `confirm_name` is not the
    workspace's name, or while a paid subscription is live (cancel it on the Billing page first:
    deleting would not stop Stripe from charging). Idempotent per part: a failure half-way leaves
    a workspace that can be deleted again."""
    if (confirm_name or "").strip() != tenant.name:
        raise AppError(
            "Type the workspace's name exactly as shown to confirm the deletion.", code="confirmation_mismatch"
        )
    with tenant_context(tenant):
        subscription = Subscription.objects.first()
        if subscription is not None and subscription.is_live:
            raise AppError(
                "Cancel the paid plan on the Billing page first, then delete the workspace.",
                code="subscription_active",
            )
        exact, patterns = _redis_patterns(tenant)
        done = {"conversations": 0, "messages": 0, "knowledge_bases": 0, "leads": 0}
        while batch := list(Conversation.objects.order_by("pk").values_list("pk", flat=True)[:PURGE_BATCH]):
            purged = conversations_purge(conversation_ids=batch)
            done["conversations"] += purged.conversations
            done["messages"] += purged.messages
        done["leads"], _ = Lead.objects.all().delete()
        for knowledge_base in KnowledgeBase.objects.all():
            knowledge_base_delete(knowledge_base=knowledge_base, deleted_by=by)
            done["knowledge_bases"] += 1
    done["redis_keys"] = _redis_clear(exact, patterns)
    tenant_id, slug = tenant.pk, tenant.slug
    Tenant.objects.filter(pk=tenant_id).delete()
    audit.info(
        "tenant deleted tenant=%s slug=%s by=%s %s",
        tenant_id,
        slug,
        getattr(by, "pk", None),
        " ".join(f"{k}={v}" for k, v in done.items()),
    )
    return done
