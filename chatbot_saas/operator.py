"""What the operators' tenant page shows: one tenant's plan, usage, bots, knowledge bases and recent
errors, read across apps (which is why it lives here, above them). Reads only; every query runs
inside the tenant's scope, so nothing of another tenant can appear."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from billing.models import Plan, Subscription
from billing.quotas import plan_of
from billing.selectors import UsageRow, subscription_for, usage_for
from bots.models import Bot
from conversations.models import Message, Trace
from knowledge.models import Document, KnowledgeBase
from knowledge.selectors import knowledge_base_list_with_stats
from tenants.context import tenant_context
from tenants.models import Tenant

RECENT_ERRORS = 10


@dataclass(frozen=True)
class RecentError:
    when: datetime
    kind: str  # "document", "message" or "provider"
    where: str
    code: str
    message: str


@dataclass
class TenantOverview:
    plan: Plan
    subscription: Subscription | None
    usage: list[UsageRow]
    bots: list[Bot]
    knowledge_bases: list[KnowledgeBase]
    errors: list[RecentError] = field(default_factory=list)


def tenant_overview(*, tenant: Tenant) -> TenantOverview:
    """The operators' summary of one tenant. Needs no tenant context (it sets the tenant's own)."""
    subscription = subscription_for(tenant=tenant)
    plan = plan_of(subscription)
    with tenant_context(tenant):
        return TenantOverview(
            plan=plan,
            subscription=subscription,
            usage=usage_for(tenant=tenant, plan=plan),
            bots=list(Bot.objects.order_by("name")),
            knowledge_bases=list(knowledge_base_list_with_stats()),
            errors=_recent_errors(),
        )


def _recent_errors() -> list[RecentError]:
    """Failed documents, failed answers and provider attempts that errored, newest first."""
    errors = [
        RecentError(d.status_changed, "document", f"{d.knowledge_base.name} / {d.title}", d.error_code, d.error_message)
        for d in Document.objects.filter(status=Document.Status.FAILED)
        .select_related("knowledge_base")
        .order_by("-status_changed")[:RECENT_ERRORS]
    ]
    errors += [
        RecentError(m.created, "message", f"conversation {m.conversation_id}", m.error_code, m.model)
        for m in Message.objects.exclude(error_code="")
        .filter(role=Message.Role.ASSISTANT)
        .order_by("-created")[:RECENT_ERRORS]
    ]
    # A turn can succeed on a fallback provider after another failed: the trace keeps each attempt.
    for trace in Trace.objects.filter(attempts__contains=[{"outcome": "error"}]).order_by("-created")[:RECENT_ERRORS]:
        for attempt in trace.attempts:
            if attempt.get("outcome") == "error":
                where = f"{attempt.get('provider', '?')}:{attempt.get('model', '?')}"
                code = str(attempt.get("code") or "provider_error")
                errors.append(RecentError(trace.created, "provider", where, code, str(attempt.get("error", ""))))
    errors.sort(key=lambda e: e.when, reverse=True)
    return errors[:RECENT_ERRORS]
