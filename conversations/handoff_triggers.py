"""Handoff triggers (issue 18): the bot could not answer N times in a row, or the visitor rated an
answer thumbs-down. Each is switched in the bot's handoff settings.

A trigger that fires does what the visitor's own request does (handoff.handoff_open): the
conversation waits in the inbox, the lead form shows when it is set to "on handoff", the team is
emailed and `handoff.requested` carries the trigger's name. Outside business hours the visitor gets
the usual `away` frame and leaves a lead.

"Could not answer" is the relevance gate's "I don't know": an assistant message whose model is
`policy:no_passages` (NO_ANSWER_MODEL, what insights count as unanswered). The trigger fires when
the streak of such answers reaches exactly N, so one streak fires once (after the conversation is
handed back, the bot must fail N more times in a row).

Both functions require the conversation's tenant in context and return the frame for the visitor,
or None when nothing fired.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from bots.models import Bot

from .business_hours import within_business_hours
from .handoff import TRIGGER_THUMBS_DOWN, TRIGGER_UNANSWERED, away_frame, handoff_open, handoff_settings_for
from .models import NO_ANSWER_MODEL, Conversation, Message

UNANSWERED_TEXT = "Sorry, I could not find an answer. A person from our team will take over: waiting for an agent…"
THUMBS_DOWN_TEXT = "Sorry that did not help. A person from our team will take over: waiting for an agent…"


def unanswered_streak(*, conversation_id: int, limit: int) -> int:
    """How many of the conversation's latest answers, up to `limit`, were the bot's "I don't know"."""
    models = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT).order_by(
        "-created", "-pk"
    )
    streak = 0
    for model in models.values_list("model", flat=True)[:limit]:
        if model != NO_ANSWER_MODEL:
            break
        streak += 1
    return streak


def _fire(*, bot: Bot, conversation_id: int, trigger: str, text: str) -> dict[str, Any] | None:
    handoff = handoff_settings_for(bot=bot)
    if handoff is None:
        return None
    conversation = Conversation.objects.filter(pk=conversation_id, bot=bot).first()
    if conversation is None or conversation.with_human:
        return None
    if not within_business_hours(settings=handoff, now=timezone.now()):
        return away_frame(handoff)
    with transaction.atomic():
        return handoff_open(bot=bot, handoff=handoff, conversation_id=conversation_id, trigger=trigger, text=text)


def handoff_after_answer(*, bot: Bot, conversation_id: int) -> dict[str, Any] | None:
    """Called once an answer of the conversation is stored: fires the "could not answer" trigger
    when it is on and this answer made the streak of "I don't know" exactly N long."""
    handoff = handoff_settings_for(bot=bot)
    if handoff is None or not handoff.on_unanswered:
        return None
    needed = max(handoff.unanswered_count, 1)
    if unanswered_streak(conversation_id=conversation_id, limit=needed + 1) != needed:
        return None
    return _fire(bot=bot, conversation_id=conversation_id, trigger=TRIGGER_UNANSWERED, text=UNANSWERED_TEXT)


def handoff_after_feedback(*, bot: Bot, message: Message, previous: str) -> dict[str, Any] | None:
    """Called after the visitor rated `message`: fires the thumbs-down trigger when it is on and the
    rating just became thumbs-down (a repeated rating, or a comment added to it, does not fire)."""
    if message.feedback != Message.Feedback.DOWN or previous == Message.Feedback.DOWN:
        return None
    handoff = handoff_settings_for(bot=bot)
    if handoff is None or not handoff.on_thumbs_down:
        return None
    return _fire(bot=bot, conversation_id=message.conversation_id, trigger=TRIGGER_THUMBS_DOWN, text=THUMBS_DOWN_TEXT)
