"""Writes for conversations: starting conversations, visitor sessions, feedback, the stale-stream watchdog."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from bots.models import Bot
from bots.preview import PreviewTokenInvalid, preview_token_verify
from bots.selectors import bot_widget_look
from bots.services import widget_origin_record
from chatbot_saas.errors import AppError, NotFound
from tenants.context import tenant_context
from tenants.events import event_emit
from tenants.models import ApiKey, Membership

from .access import OriginNotAllowed, identity_verify, origin_allowed, origin_normalize, widget_bot_resolve
from .models import Conversation, Message
from .redisconn import key as redis_key
from .redisconn import sync_redis
from .selectors import conversation_latest_for_visitor, message_list, message_public, playground_visitor_id
from .tokens import SessionClaims, session_token_issue

VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
FEEDBACK_COMMENT_MAX = 2000
# The install check writes a seen origin at most this often (a widget loads on every page view).
WIDGET_ORIGIN_NOTE_SECONDS = 300


class PreviewRefused(AppError):
    code = "preview_invalid"
    status = 403


def visitor_id_check(visitor_id: Any) -> str:
    if not isinstance(visitor_id, str) or not VISITOR_ID_RE.match(visitor_id):
        raise AppError(
            "visitor_id must be 8 to 80 letters, digits or -_.: characters (the widget sends a UUID).",
            code="visitor_id_invalid",
        )
    return visitor_id


def conversation_start(
    *,
    bot: Bot,
    channel: str,
    visitor_id: str = "",
    external_user_id: str = "",
    api_key: ApiKey | None = None,
) -> Conversation:
    """Create a conversation with `bot`. Requires the bot's tenant in context."""
    return Conversation.objects.create(
        tenant=bot.tenant,
        bot=bot,
        channel=channel,
        visitor_id=visitor_id,
        external_user_id=external_user_id,
        api_key=api_key,
    )


def widget_session_open(
    *,
    bot_public_id: str,
    origin: str | None,
    visitor_id: Any,
    identity: Any = None,
    preview: Any = None,
    own_origin: str = "",
) -> dict[str, Any]:
    """Everything the widget needs to start: a session token, the bot's look, the visitor's history.

    Checks, in order: the bot exists and is active (bot_not_found), its tenant is active
    (tenant_suspended), the page origin is allowed (origin_not_allowed) or, for the designer's
    live preview, the preview token is valid and the page is the app's own `own_origin`
    (preview_invalid), the visitor id is well formed, and a signed identity, when given, verifies
    (identity_invalid). Writes nothing but the install check's seen origin (widget_origin_note).
    """
    bot = widget_bot_resolve(bot_public_id=bot_public_id)
    if preview is not None:
        normalized_origin = _preview_check(bot=bot, origin=origin, own_origin=own_origin, token=preview)
        channel = "playground"
    else:
        normalized_origin = origin_normalize(origin)
        allowed = origin_allowed(bot=bot, origin=origin)
        if normalized_origin:
            widget_origin_note(bot=bot, origin=normalized_origin, allowed=allowed)
        if not allowed:
            raise OriginNotAllowed(
                "This website is not allowed to use this chatbot. Add it to the bot's allowed origins."
            )
        channel = "widget"
    visitor_id = visitor_id_check(visitor_id)
    external_user_id = ""
    if identity is not None:
        if not isinstance(identity, dict):
            raise AppError("identity must be an object with id and hmac.", code="identity_invalid", status=403)
        external_user_id = identity_verify(bot=bot, user_id=identity.get("id"), signature=identity.get("hmac"))
    claims = SessionClaims(bot.public_id, visitor_id, normalized_origin, external_user_id, channel)
    with tenant_context(bot.tenant):
        conversation = conversation_latest_for_visitor(bot=bot, visitor_id=visitor_id, channel=channel)
        history = [message_public(m) for m in message_list(conversation=conversation)] if conversation else []
    return {
        "token": session_token_issue(claims=claims),
        "expires_in": settings.WIDGET_SESSION_TTL_SECONDS,
        "bot": {
            "name": bot.name,
            "welcome_message": bot.welcome_message,
            "widget": bot_widget_look(bot=bot),
            "handoff": _handoff_public(bot),
        },
        "conversation_id": conversation.pk if conversation else None,
        "history": history,
    }


def _handoff_public(bot: Bot) -> dict[str, Any] | None:
    """Human handoff as the widget needs it (None: no "Talk to a person" control, no lead form)."""
    from .handoff import handoff_settings_for
    from .leads import lead_form_public

    with tenant_context(bot.tenant):
        handoff = handoff_settings_for(bot=bot)
    if handoff is None:
        return None
    return {"on_request": handoff.on_request, "lead_form": lead_form_public(handoff)}


def _preview_check(*, bot: Bot, origin: str | None, own_origin: str, token: Any) -> str:
    """The designer's preview: a valid token for this bot, from a member still in the workspace,
    on the app's own origin. Returns that origin (the session token is bound to it)."""
    normalized = origin_normalize(origin)
    if not normalized or normalized != origin_normalize(own_origin):
        raise PreviewRefused("A widget preview only works inside the dashboard it was opened from.")
    try:
        claims = preview_token_verify(token=token, bot_public_id=bot.public_id)
    except PreviewTokenInvalid:
        raise PreviewRefused("This preview has expired or belongs to another bot. Reload the designer page.") from None
    if not Membership.objects.unscoped().filter(tenant_id=bot.tenant_id, user_id=claims.user_id).exists():
        raise PreviewRefused("This preview belongs to someone who is no longer in the workspace.")
    return normalized


def widget_origin_note(*, bot: Bot, origin: str, allowed: bool) -> None:
    """Record a seen origin for the install check, at most once per WIDGET_ORIGIN_NOTE_SECONDS per
    bot, origin and verdict (a Redis key guards the write). Never fails the session: without Redis
    the sighting is simply not recorded."""
    guard = redis_key("widget-seen", bot.pk, int(allowed), origin)
    try:
        first = sync_redis().set(guard, "1", nx=True, ex=WIDGET_ORIGIN_NOTE_SECONDS)
    except RedisError:
        return
    if first:
        widget_origin_record(bot=bot, origin=origin, allowed=allowed)


def message_feedback_set(*, message: Message, value: Any, comment: Any = "") -> Message:
    """Record thumbs up/down (and an optional comment) on an assistant message. Idempotent: the
    last rating wins. Requires the message's tenant in context."""
    if value not in (Message.Feedback.UP, Message.Feedback.DOWN):
        raise AppError("Feedback value must be 'up' or 'down'.", code="feedback_invalid")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > FEEDBACK_COMMENT_MAX:
        raise AppError(
            f"The comment must be text of at most {FEEDBACK_COMMENT_MAX} characters.", code="feedback_invalid"
        )
    if message.role != Message.Role.ASSISTANT:
        raise NotFound("Only answers can be rated.")
    message.feedback = value
    message.feedback_comment = comment
    message.updated = timezone.now()
    message.save(update_fields=["feedback", "feedback_comment", "updated"])
    payload = {
        "conversation_id": message.conversation_id,
        "message_id": message.pk,
        "value": value,
        "comment": comment,
    }
    tenant_id = message.tenant_id
    transaction.on_commit(lambda: event_emit(name="feedback.created", tenant_id=tenant_id, payload=payload))
    return message


def message_settle_partial(*, message_id: int, error_code: str = "interrupted") -> bool:
    """Mark one assistant message `partial` if it is still `streaming`. Idempotent; returns True
    if it changed it. Requires the tenant in context."""
    changed = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        status=Message.Status.PARTIAL, error_code=error_code, updated=timezone.now()
    )
    return changed > 0


def dangerously_settle_stale_streaming(*, older_than: timedelta | None = None) -> int:
    """The watchdog: every tenant's `streaming` message untouched for `older_than` becomes `partial`.

    Crosses tenants on purpose (a beat job, no tenant in context). Safe to run concurrently: one
    conditional UPDATE, so a message that finished meanwhile is left alone.
    """
    age = timedelta(seconds=settings.STREAMING_STALE_SECONDS) if older_than is None else older_than
    cutoff = timezone.now() - age
    return (
        Message.objects.unscoped()
        .filter(status=Message.Status.STREAMING)
        .filter(updated__lt=cutoff)
        .update(status=Message.Status.PARTIAL, error_code="interrupted", updated=timezone.now())
    )


def chat_text_check(text: Any) -> str:
    """The visitor's message, or message_empty / message_too_long (the pipeline checks again)."""
    if not isinstance(text, str) or not text.strip():
        raise AppError("Type a message first.", code="message_empty")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise AppError(
            f"Messages can be at most {settings.CHAT_MAX_MESSAGE_CHARS} characters. Please shorten it.",
            code="message_too_long",
        )
    return text


def visitor_conversation_for_turn(
    *,
    bot: Bot,
    visitor_id: str,
    external_user_id: str,
    conversation_id: int | None,
    channel: str = Conversation.Channel.WIDGET,
) -> Conversation:
    """The conversation a widget message goes to: the socket's current one, else the visitor's
    latest on this channel, else a new one. Marks it active. Requires the bot's tenant in context."""
    conversation = None
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id, bot=bot, visitor_id=visitor_id).first()
    if conversation is None:
        conversation = conversation_latest_for_visitor(bot=bot, visitor_id=visitor_id, channel=channel)
    if conversation is None:
        return conversation_start(bot=bot, channel=channel, visitor_id=visitor_id, external_user_id=external_user_id)
    conversation.last_active = timezone.now()
    conversation.save(update_fields=["last_active"])
    return conversation


def playground_conversation_for_turn(*, bot: Bot, user_id: int, conversation_id: int | None) -> Conversation:
    """The playground conversation a member's message goes to: the socket's current one when it is
    with the same bot, else a new one (so changing bot, or "New conversation", starts with no
    memory). Marks it active. Requires the bot's tenant in context."""
    visitor_id = playground_visitor_id(user_id=user_id)
    if conversation_id is not None:
        conversation = Conversation.objects.filter(
            pk=conversation_id, bot=bot, visitor_id=visitor_id, channel=Conversation.Channel.PLAYGROUND
        ).first()
        if conversation is not None:
            conversation.last_active = timezone.now()
            conversation.save(update_fields=["last_active"])
            return conversation
    return conversation_start(bot=bot, channel=Conversation.Channel.PLAYGROUND, visitor_id=visitor_id)
