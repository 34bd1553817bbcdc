"""Reads for the privacy tools: everything stored about one visitor of the current tenant.

A visitor is named by the widget's visitor id or by the signed identity the tenant passed
(`external_user_id`, HMAC-verified at connect): either finds their conversations. Leads carry the
visitor id of their own, since a lead can be left before any conversation exists.
Tenant scope required (every query goes through the scoped managers).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import Conversation, Lead, Message, Trace


def visitor_conversations(*, visitor: str) -> QuerySet[Conversation]:
    """The current tenant's conversations of this visitor id or signed identity."""
    visitor = (visitor or "").strip()
    if not visitor:
        return Conversation.objects.none()
    return Conversation.objects.filter(Q(visitor_id=visitor) | Q(external_user_id=visitor))


def visitor_leads(*, visitor: str) -> QuerySet[Lead]:
    """The visitor's leads: left under their visitor id, under the widget visitor id of any of their
    conversations (a signed identity spans several), or attached to one of those conversations."""
    visitor = (visitor or "").strip()
    if not visitor:
        return Lead.objects.none()
    conversations = visitor_conversations(visitor=visitor)
    widget_ids = conversations.exclude(visitor_id="").values("visitor_id")
    return Lead.objects.filter(
        Q(visitor_id=visitor) | Q(visitor_id__in=widget_ids) | Q(conversation_id__in=conversations.values("pk"))
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _message(message: Message, trace: Trace | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created": _iso(message.created),
        "citations": message.citations,
        "model": message.model,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "feedback": message.feedback or None,
        "feedback_comment": message.feedback_comment,
        "trace": None,
    }
    if trace is not None:
        data["trace"] = {
            "retrieved": trace.retrieved,
            "retrieval": trace.retrieval,
            "prompt": trace.prompt,
            "attempts": trace.attempts,
            "guardrail_hits": trace.guardrail_hits,
            "timings": trace.timings,
            "prompt_version": trace.prompt_version,
        }
    return data


def visitor_export(*, visitor: str) -> dict[str, Any] | None:
    """Everything about one visitor as a JSON-ready dict, or None when nothing is stored.

    Three queries whatever the number of conversations (conversations, messages with their
    traces, leads with subqueries)."""
    conversations = list(visitor_conversations(visitor=visitor).select_related("bot").order_by("started", "id"))
    ids = [c.pk for c in conversations]
    leads = list(visitor_leads(visitor=visitor).select_related("bot").order_by("created", "id"))
    if not conversations and not leads:
        return None
    by_conversation: dict[int, list[dict[str, Any]]] = {pk: [] for pk in ids}
    messages = Message.objects.filter(conversation_id__in=ids).select_related("trace").order_by("created", "id")
    feedback: list[dict[str, Any]] = []
    for message in messages:
        trace = getattr(message, "trace", None) if hasattr(message, "trace") else None
        by_conversation[message.conversation_id].append(_message(message, trace))
        if message.feedback:
            feedback.append({"message_id": message.pk, "rating": message.feedback, "comment": message.feedback_comment})
    return {
        "visitor": visitor.strip(),
        "exported": timezone.now().isoformat(),
        "conversations": [
            {
                "id": c.pk,
                "bot": c.bot.name,
                "channel": c.channel,
                "visitor_id": c.visitor_id,
                "external_user_id": c.external_user_id,
                "started": _iso(c.started),
                "last_active": _iso(c.last_active),
                "page_url": c.page_url,
                "memory": {"summary": c.summary, "facts": c.visitor_facts},
                "messages": by_conversation[c.pk],
            }
            for c in conversations
        ],
        "feedback": feedback,
        "leads": [
            {
                "id": lead.pk,
                "bot": lead.bot.name,
                "conversation_id": lead.conversation_id,
                "name": lead.name,
                "email": lead.email,
                "phone": lead.phone,
                "fields": lead.fields,
                "question": lead.question,
                "consent": lead.consent,
                "reason": lead.reason,
                "page_url": lead.page_url,
                "created": _iso(lead.created),
            }
            for lead in leads
        ],
    }
