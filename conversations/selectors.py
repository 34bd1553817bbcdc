"""Reads for conversations. Every query goes through the tenant scope (a tenant must be in context)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bots.models import Bot, PromptVersion

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
    newest = list(
        Message.objects.select_related("author").filter(conversation=conversation).order_by("-created", "-id")[:limit]
    )
    return newest[::-1]


def agent_name(user: Any) -> str:
    """What a visitor sees of a team member: their first name, else their email's local part."""
    if user is None:
        return "An agent"
    first = (getattr(user, "first_name", "") or "").strip()
    return first or (getattr(user, "email", "") or "Agent").split("@")[0]


def message_public(message: Message) -> dict[str, Any]:
    """The fields of a message a visitor or API client may see (no trace, no cost)."""
    public = {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "citations": [citation_public(c) for c in message.citations or []],
        "feedback": message.feedback or None,
        "created": message.created.isoformat(),
    }
    if message.role == Message.Role.AGENT:
        public["agent"] = agent_name(message.author)
    return public


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


# The tenant's own tests of its bots: real turns (they cost tokens and count against quotas), but
# not visitors, so visitor-facing lists and analytics leave them out unless asked.
TEST_CHANNELS = (Conversation.Channel.PLAYGROUND, Conversation.Channel.EVAL)


def conversation_list_for_dashboard(*, limit: int = 100, include_tests: bool = False) -> list[Conversation]:
    """The tenant's latest conversations with their bot and message count, in one query.

    Playground and evaluation conversations (TEST_CHANNELS) are left out unless `include_tests`."""
    from django.db.models import Count

    conversations = Conversation.objects.all()
    if not include_tests:
        conversations = conversations.exclude(channel__in=TEST_CHANNELS)
    return list(
        conversations.select_related("bot").annotate(message_count=Count("messages")).order_by("-last_active")[:limit]
    )


def conversation_detail_for_dashboard(*, conversation_id: int) -> tuple[Conversation, list[Message]] | None:
    """A conversation and all its messages with their traces (for the dashboard), or None."""
    conversation = Conversation.objects.select_related("bot").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    messages = list(Message.objects.filter(conversation=conversation).select_related("trace").order_by("created", "id"))
    return conversation, messages


def message_with_trace(*, conversation_id: int, message_id: int) -> Message | None:
    """An assistant message of the tenant in context, with its conversation, bot and trace, or
    None (another tenant's id, another conversation's, or no trace yet: callers answer 404)."""
    return (
        Message.objects.select_related("conversation__bot", "trace")
        .filter(pk=message_id, conversation_id=conversation_id, role=Message.Role.ASSISTANT, trace__isnull=False)
        .first()
    )


def playground_message_of(*, user_id: int, message_id: Any) -> Message | None:
    """An answer in one of this member's playground conversations, or None (ids cannot be probed)."""
    if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id <= 0:
        return None
    return (
        Message.objects.filter(
            pk=message_id,
            role=Message.Role.ASSISTANT,
            conversation__channel=Conversation.Channel.PLAYGROUND,
            conversation__visitor_id=playground_visitor_id(user_id=user_id),
        )
        .only("pk", "status")
        .first()
    )


def playground_visitor_id(*, user_id: int) -> str:
    """The visitor id of a member's playground conversations: 'member:<user id>' (the widget's
    visitor ids are UUIDs, so the two never meet)."""
    return f"member:{user_id}"


def playground_target(*, bot_id: Any, prompt_version: Any) -> tuple[Bot, PromptVersion | None] | None:
    """The bot of the tenant in context and the prompt version (by number) to try it with: None
    for the published one. None when either is not the tenant's (callers answer not found)."""
    if not isinstance(bot_id, int) or isinstance(bot_id, bool):
        return None
    bot = Bot.objects.select_related("tenant").filter(pk=bot_id).first()
    if bot is None:
        return None
    if prompt_version is None:
        return bot, None
    if not isinstance(prompt_version, int) or isinstance(prompt_version, bool):
        return None
    version = PromptVersion.objects.filter(bot=bot, number=prompt_version).first()
    return (bot, version) if version is not None else None


@dataclass
class PlaygroundChoice:
    bots: list[Bot]
    bot: Bot | None
    versions: list[PromptVersion]
    version: PromptVersion | None  # None: the bot has no prompt version (it answers with the default)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def playground_choices(*, bot_id: Any, version: Any) -> PlaygroundChoice:
    """The workspace's bots, the chosen one (else the first by name), its prompt versions and the
    chosen version (else the published one). An id or number that is not the tenant's falls back
    to the default rather than failing: the page is a picker. Three queries."""
    bots = list(Bot.objects.order_by("name"))
    wanted = _int_or_none(bot_id)
    bot = next((b for b in bots if b.pk == wanted), bots[0] if bots else None)
    if bot is None:
        return PlaygroundChoice(bots=[], bot=None, versions=[], version=None)
    versions = list(PromptVersion.objects.filter(bot=bot).order_by("-number"))
    number = _int_or_none(version)
    chosen = next((v for v in versions if v.number == number), None) or next(
        (v for v in versions if v.is_published), versions[0] if versions else None
    )
    return PlaygroundChoice(bots=bots, bot=bot, versions=versions, version=chosen)
