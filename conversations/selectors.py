"""Reads for conversations. Every query goes through the tenant scope (a tenant must be in context)."""

from __future__ import annotations

from typing import Any

from bots.models import Bot

from .models import Conversation, Message

HISTORY_LIMIT = 50


def conversation_latest_for_visitor(
    *, bot: Bot, visitor_id: str, channel: str = Conversation.Channel.WIDGET
) -> Conversation | None:
    return Conversation.objects.filter(bot=bot, visitor_id=visitor_id, channel=channel).first()


def conversation_for_visitor(*, bot: Bot, visitor_id: str, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(pk=conversation_id, bot=bot, visitor_id=visitor_id).first()


def conversation_get(*, conversation_id: int) -> Conversation | None:
    """A conversation of the tenant in context (None for another tenant's id: callers answer 404)."""
    return Conversation.objects.select_related("bot").filter(pk=conversation_id).first()


def message_for_visitor(*, bot: Bot, visitor_id: str, message_id: Any) -> Message | None:
    """The assistant message `message_id` if this visitor of this bot owns it; None otherwise.

    Another visitor's message, another bot's, another tenant's and a non-integer id all look the
    same: None, so callers answer `not_found` and ids cannot be probed.
    """
    if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id <= 0:
        return None
    return (
        Message.objects.select_related("conversation")
        .filter(
            pk=message_id,
            role=Message.Role.ASSISTANT,
            conversation__bot=bot,
            conversation__visitor_id=visitor_id,
        )
        .first()
    )


def message_get(*, message_id: int) -> Message | None:
    return Message.objects.select_related("conversation").filter(pk=message_id).first()


def message_list(*, conversation: Conversation, limit: int = HISTORY_LIMIT) -> list[Message]:
    """The last `limit` messages of a conversation, oldest first."""
    newest = list(Message.objects.filter(conversation=conversation).order_by("-created", "-id")[:limit])
    return newest[::-1]


def message_public(message: Message) -> dict[str, Any]:
    """The fields of a message a visitor or API client may see (no trace, no cost)."""
    return {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "citations": [citation_public(c) for c in message.citations or []],
        "feedback": message.feedback or None,
        "created": message.created.isoformat(),
    }


def citation_public(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": item.get("n"),
        "title": item.get("title", ""),
        "page": item.get("page"),
        "url": item.get("url"),
        "snippet": item.get("snippet", ""),
        "document_id": item.get("document_id"),
    }


def bot_list() -> list[Bot]:
    return list(Bot.objects.order_by("name"))


def bot_get(*, bot_id: int) -> Bot | None:
    return Bot.objects.filter(pk=bot_id).first()


def bot_by_public_id(*, public_id: str) -> Bot | None:
    """A bot of the tenant in context by its public id (the OpenAI-compatible `model`)."""
    if not isinstance(public_id, str) or len(public_id) > 40:
        return None
    return Bot.objects.filter(public_id=public_id).first()


def conversation_list_for_dashboard(*, limit: int = 100) -> list[Conversation]:
    """The tenant's latest conversations with their bot and message count, in two queries at most.

    Evaluation runs' conversations are left out: they are the bot's tests, not its visitors."""
    from django.db.models import Count

    return list(
        Conversation.objects.exclude(channel=Conversation.Channel.EVAL)
        .select_related("bot")
        .annotate(message_count=Count("messages"))
        .order_by("-last_active")[:limit]
    )


def conversation_detail_for_dashboard(*, conversation_id: int) -> tuple[Conversation, list[Message]] | None:
    """A conversation and all its messages with their traces (for the dashboard), or None."""
    conversation = Conversation.objects.select_related("bot").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    messages = list(Message.objects.filter(conversation=conversation).select_related("trace").order_by("created", "id"))
    return conversation, messages
