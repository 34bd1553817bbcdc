"""Reads for the inbox and the leads pages (human handoff). Require the tenant in context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Prefetch, Q, QuerySet
from django.utils import timezone

from tenants.models import Membership

from .models import Conversation, HandoffStatus, Lead, Message

RECENTLY_CLOSED_DAYS = 2
LIST_LIMIT = 50


@dataclass
class InboxLists:
    waiting: list[Conversation]
    assigned: list[Conversation]
    closed: list[Conversation]

    @property
    def waiting_count(self) -> int:
        return len(self.waiting)


def _with_leads(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return qs.select_related("bot", "assigned_to").prefetch_related(
        Prefetch("leads", queryset=Lead.objects.order_by("-created"))
    )


def inbox_lists() -> InboxLists:
    """Waiting (oldest first), assigned, and recently closed conversations, with bot, agent and
    leads: three queries plus one for the leads."""
    since = timezone.now() - timedelta(days=RECENTLY_CLOSED_DAYS)
    handed = _with_leads(Conversation.objects.exclude(handoff_status=""))
    rows = list(
        handed.filter(handoff_status__in=[HandoffStatus.WAITING, HandoffStatus.ASSIGNED]).order_by("handoff_requested")[
            :LIST_LIMIT
        ]
    )
    closed = list(
        handed.filter(
            handoff_status__in=[HandoffStatus.CLOSED, HandoffStatus.RETURNED], handoff_requested__gte=since
        ).order_by("-handoff_requested")[:LIST_LIMIT]
    )
    return InboxLists(
        waiting=[c for c in rows if c.handoff_status == HandoffStatus.WAITING],
        assigned=[c for c in rows if c.handoff_status == HandoffStatus.ASSIGNED],
        closed=closed,
    )


@dataclass
class HandoffStats:
    requested: int
    answered: int
    avg_first_reply: timedelta | None

    @property
    def avg_first_reply_words(self) -> str:
        """ "40 s", "3 min", "1 h 5 min"; empty when nobody was answered."""
        if self.avg_first_reply is None:
            return ""
        return duration_words(self.avg_first_reply.total_seconds())


def duration_words(seconds: float) -> str:
    """ "40 s", "3 min", "1 h 5 min": a wait as the dashboard shows it."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def handoff_stats(*, days: int = 30) -> HandoffStats:
    """Handoffs asked for in the last `days`, how many a person answered, and the average time from
    the request to the first human reply. One query."""
    since = timezone.now() - timedelta(days=days)
    row = Conversation.objects.filter(handoff_requested__gte=since).aggregate(
        requested=Count("pk"),
        answered=Count("pk", filter=Q(first_agent_reply__isnull=False)),
        avg_first_reply=Avg(
            ExpressionWrapper(F("first_agent_reply") - F("handoff_requested"), output_field=DurationField())
        ),
    )
    return HandoffStats(row["requested"], row["answered"], row["avg_first_reply"])


def inbox_conversation(*, conversation_id: int) -> tuple[Conversation, list[Message]] | None:
    """One handed-off conversation with its whole transcript (bot, visitor and agents)."""
    conversation = _with_leads(Conversation.objects.exclude(handoff_status="")).filter(pk=conversation_id).first()
    if conversation is None:
        return None
    messages = list(
        Message.objects.select_related("author").filter(conversation=conversation).order_by("created", "id")
    )
    return conversation, messages


@dataclass
class DutyRoster:
    on_duty: list[Membership]
    agents: list[Membership]

    @property
    def alerted(self) -> list[Membership]:
        """Who gets the "a visitor is waiting" email (handoff.agents_to_alert)."""
        return self.on_duty or self.agents


def duty_roster() -> DutyRoster:
    """The workspace's agents and which of them are on duty: one query."""
    agents = [m for m in Membership.objects.select_related("user").order_by("pk") if m.is_agent_capable]
    return DutyRoster(on_duty=[m for m in agents if m.on_duty], agents=agents)


def transfer_targets(*, exclude_user_id: int) -> list[Membership]:
    return [m for m in Membership.objects.select_related("user").exclude(user_id=exclude_user_id) if m.is_agent_capable]


def lead_list(*, limit: int | None = 200) -> list[Lead]:
    qs = Lead.objects.select_related("bot").order_by("-created", "-id")
    return list(qs[:limit] if limit else qs)


LEAD_CSV_HEADER = ["created", "bot", "name", "email", "phone", "question", "consent", "reason", "page_url", "fields"]


def lead_csv_rows() -> Iterator[list[str]]:
    """Every lead as CSV rows, newest first, read in chunks (an export can be large). The query is
    scoped here, while the tenant is in context: a streamed response is read after the view returns."""
    leads = Lead.objects.select_related("bot").order_by("-created", "-id")
    return (_csv_row(lead) for lead in leads.iterator(chunk_size=500))


def _csv_row(lead: Lead) -> list[str]:
    return [
        lead.created.isoformat(),
        lead.bot.name,
        lead.name,
        lead.email,
        lead.phone,
        lead.question,
        "yes" if lead.consent else "no",
        lead.reason,
        lead.page_url,
        "; ".join(f"{k}: {v}" for k, v in (lead.fields or {}).items()),
    ]
