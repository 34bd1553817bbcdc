"""Human handoff services (issue 18): a visitor asks for a person, an agent takes the conversation,
answers, hands it back to the bot, closes or transfers it.

Guarantees:
- The bot does not answer a conversation that is `waiting` or `assigned` (`Conversation.with_human`;
  the widget's consumer checks it before every turn).
- Taking is one conditional UPDATE (`handoff_status = waiting`): of two agents taking at once,
  exactly one wins, the other gets `already_taken`.
- Agent messages are `Message` rows (role `agent`, `author`) stored before anything is delivered;
  live frames go out on commit (handoff_bus), and a visitor who missed them gets them with
  `handoff_sync`.
- Every function requires the conversation's tenant in context (scoped managers).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from bots.models import Bot, HandoffSettings
from chatbot_saas.errors import AppError, NotFound
from tenants.events import event_emit
from tenants.models import Membership

from .business_hours import within_business_hours
from .handoff_bus import bus_send_on_commit, conversation_group, inbox_group
from .models import Conversation, HandoffStatus, Message
from .selectors import agent_name, conversation_latest_for_visitor
from .services import chat_text_check, visitor_conversation_for_turn

WAITING_TEXT = "Waiting for an agent…"
RETURNED_TEXT = "The conversation is back with the assistant."
CLOSED_TEXT = "The conversation was closed. Thank you!"
PAGE_URL_MAX = 500


def handoff_settings_for(*, bot: Bot) -> HandoffSettings | None:
    """The bot's handoff settings when handoff is on, else None."""
    found = HandoffSettings.objects.filter(bot=bot, enabled=True).first()
    return found


def agents_of_tenant() -> list[Membership]:
    return [m for m in Membership.objects.select_related("user") if m.is_agent_capable]


def _status_frame(conversation: Conversation, *, status: str, text: str, agent: str = "") -> dict[str, Any]:
    return {"type": "handoff", "conversation_id": conversation.pk, "status": status, "text": text, "agent": agent}


def _announce(conversation: Conversation, frame: dict[str, Any]) -> None:
    bus_send_on_commit(conversation_group(conversation.pk), frame)
    bus_send_on_commit(
        inbox_group(conversation.tenant_id), {"type": "inbox_changed", "conversation_id": conversation.pk}
    )


def agents_to_alert() -> list[Membership]:
    """Who hears that a visitor is waiting: the agents on duty, or every agent when nobody is."""
    agents = agents_of_tenant()
    on_duty = [m for m in agents if m.on_duty]
    return on_duty or agents


def _email_team(*, subject: str, body: str) -> None:
    recipients = [m.user.email for m in agents_to_alert() if m.user.email]
    if recipients:
        transaction.on_commit(
            lambda: send_mail(subject, body, django_settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
        )


# Why a conversation went to a person: the visitor asked, or a trigger of the bot's settings fired.
TRIGGER_REQUEST = "request"
TRIGGER_UNANSWERED = "unanswered"
TRIGGER_THUMBS_DOWN = "thumbs_down"
_TRIGGER_EMAIL = {
    TRIGGER_REQUEST: "asked to talk to a person",
    TRIGGER_UNANSWERED: "got no answer from the assistant several times in a row",
    TRIGGER_THUMBS_DOWN: "rated an answer thumbs-down",
}


def away_frame(handoff: HandoffSettings) -> dict[str, Any]:
    return {"type": "handoff", "conversation_id": None, "status": "away", "text": handoff.outside_hours_message}


def handoff_request(
    *, bot: Bot, visitor_id: str, external_user_id: str, conversation_id: int | None, page_url: Any = ""
) -> dict[str, Any]:
    """The visitor asks for a person. Returns the `handoff` frame for the visitor: `away` (outside
    business hours: nothing changes, the widget asks for a lead), or `waiting` (see handoff_open)."""
    handoff = handoff_settings_for(bot=bot)
    if handoff is None or not handoff.on_request:
        raise AppError("This assistant cannot hand you over to a person.", code="handoff_unavailable")
    if not within_business_hours(settings=handoff, now=timezone.now()):
        return away_frame(handoff)
    with transaction.atomic():
        conversation = visitor_conversation_for_turn(
            bot=bot, visitor_id=visitor_id, external_user_id=external_user_id, conversation_id=conversation_id
        )
        return handoff_open(
            bot=bot, handoff=handoff, conversation_id=conversation.pk, trigger=TRIGGER_REQUEST, page_url=page_url
        )


def handoff_open(
    *, bot: Bot, handoff: HandoffSettings, conversation_id: int, trigger: str, page_url: Any = "", text: str = ""
) -> dict[str, Any]:
    """Put the conversation in the inbox's waiting list: the team is emailed (agents on duty, else
    all), `handoff.requested` is emitted with the trigger, and a pickup check is queued. Returns the
    `waiting` frame for the visitor (`text` overrides its status line). Idempotent while the
    conversation already waits or is assigned. Call inside a transaction, within business hours."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.with_human:
        agent = conversation.assigned_to if conversation.handoff_status == HandoffStatus.ASSIGNED else None
        status = "assigned" if agent else "waiting"
        return _status_frame(conversation, status=status, text=WAITING_TEXT, agent=agent_name(agent) if agent else "")
    conversation.handoff_status = HandoffStatus.WAITING
    conversation.handoff_requested = timezone.now()
    conversation.handoff_closed = None
    conversation.assigned_to = None
    fields = ["handoff_status", "handoff_requested", "handoff_closed", "assigned_to"]
    if page_url or not conversation.page_url:
        conversation.page_url = str(page_url or "")[:PAGE_URL_MAX]
        fields.append("page_url")
    conversation.save(update_fields=fields)
    frame = _status_frame(conversation, status="waiting", text=text or WAITING_TEXT)
    frame["trigger"] = trigger
    _announce(conversation, frame)
    payload = {
        "conversation_id": conversation.pk,
        "bot_id": bot.pk,
        "page_url": conversation.page_url,
        "trigger": trigger,
    }
    transaction.on_commit(lambda: event_emit(name="handoff.requested", tenant_id=bot.tenant_id, payload=payload))
    _email_team(
        subject=f"A visitor is waiting for a person ({bot.name})",
        body=f"A visitor of {bot.name} {_TRIGGER_EMAIL.get(trigger, _TRIGGER_EMAIL[TRIGGER_REQUEST])}. "
        "Open the inbox to answer them.",
    )
    _pickup_check_later(conversation=conversation, minutes=handoff.pickup_timeout_minutes)
    return frame


def _pickup_check_later(*, conversation: Conversation, minutes: int) -> None:
    from .tasks import handoff_pickup_check_task

    args = {"tenant_id": conversation.tenant_id, "conversation_id": conversation.pk}
    transaction.on_commit(lambda: handoff_pickup_check_task.apply_async(kwargs=args, countdown=minutes * 60))


def handoff_pickup_check(*, conversation_id: int) -> bool:
    """Nobody took a waiting conversation in time: tell the visitor, who may leave a lead instead.
    The conversation keeps waiting (an agent may still take it). Returns whether it told them."""
    conversation = Conversation.objects.select_related("bot").filter(pk=conversation_id).first()
    if conversation is None or conversation.handoff_status != HandoffStatus.WAITING:
        return False
    handoff = handoff_settings_for(bot=conversation.bot)
    text = handoff.outside_hours_message if handoff else ""
    bus_send_on_commit(conversation_group(conversation.pk), _status_frame(conversation, status="no_pickup", text=text))
    return True


def handoff_conversation_get(*, conversation_id: Any) -> Conversation:
    """A conversation of the workspace that went through handoff, or NotFound."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound("No such conversation in the inbox.")
    conversation = (
        Conversation.objects.select_related("bot", "assigned_to")
        .exclude(handoff_status="")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound("No such conversation in the inbox.")
    return conversation


def handoff_take(*, conversation_id: int, user: User) -> Conversation:
    """Assign a waiting conversation to `user`. One conditional UPDATE: of concurrent takes exactly
    one wins; the others get `already_taken` (409)."""
    won = Conversation.objects.filter(pk=conversation_id, handoff_status=HandoffStatus.WAITING).update(
        handoff_status=HandoffStatus.ASSIGNED, assigned_to=user
    )
    conversation = handoff_conversation_get(conversation_id=conversation_id)
    if not won:
        raise AppError("Another agent has already taken this conversation.", code="already_taken", status=409)
    name = agent_name(user)
    _announce(conversation, _status_frame(conversation, status="assigned", text=f"{name} joined", agent=name))
    return conversation


def _assigned_to(conversation_id: int, user: User) -> Conversation:
    conversation = handoff_conversation_get(conversation_id=conversation_id)
    if conversation.handoff_status != HandoffStatus.ASSIGNED or conversation.assigned_to_id != user.pk:
        raise AppError("Take this conversation before answering or changing it.", code="not_assigned", status=409)
    return conversation


def handoff_reply(*, conversation_id: int, user: User, text: Any) -> Message:
    """Store an agent's message, then deliver it (on commit). The stored row is the delivery
    guarantee: a visitor who was offline gets it from `handoff_sync` or the session's history."""
    with transaction.atomic():
        conversation = _assigned_to(conversation_id, user)  # first: a stranger's id is a 404, whatever the text
        text = chat_text_check(text)
        now = timezone.now()
        message = Message.objects.create(
            conversation=conversation, role=Message.Role.AGENT, content=text, author=user, created=now, updated=now
        )
        fields = ["last_active"]
        conversation.last_active = now
        if conversation.first_agent_reply is None:
            conversation.first_agent_reply = now
            fields.append("first_agent_reply")
        conversation.save(update_fields=fields)
        bus_send_on_commit(conversation_group(conversation.pk), agent_message_frame(message, user))
    return message


def agent_message_frame(message: Message, user: User | None) -> dict[str, Any]:
    return {
        "type": "agent_message",
        "conversation_id": message.conversation_id,
        "id": message.pk,
        "text": message.content,
        "agent": agent_name(user),
        "created": message.created.isoformat(),
    }


def handoff_visitor_message(*, conversation: Conversation, text: str) -> Message:
    """A visitor's message while a person handles the conversation: stored, shown to the agents,
    not answered by the bot."""
    now = timezone.now()
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=text, created=now, updated=now
    )
    conversation.last_active = now
    conversation.save(update_fields=["last_active"])
    frame = {"type": "visitor_message", "conversation_id": conversation.pk, "id": message.pk, "text": text}
    bus_send_on_commit(conversation_group(conversation.pk), frame)
    bus_send_on_commit(
        inbox_group(conversation.tenant_id), {"type": "inbox_changed", "conversation_id": conversation.pk}
    )
    return message


def handoff_release(*, conversation_id: int, user: User) -> Conversation:
    """Hand the conversation back to the bot, which answers the visitor's next message."""
    conversation = _assigned_to(conversation_id, user)
    conversation.handoff_status = HandoffStatus.RETURNED
    conversation.save(update_fields=["handoff_status"])
    _announce(conversation, _status_frame(conversation, status="returned", text=RETURNED_TEXT))
    return conversation


def handoff_close(*, conversation_id: int, user: User) -> Conversation:
    """Close a waiting or assigned conversation (an agent may close one nobody took). The bot
    answers again if the visitor writes later. Emits `handoff.closed`."""
    conversation = handoff_conversation_get(conversation_id=conversation_id)
    if conversation.handoff_status == HandoffStatus.ASSIGNED and conversation.assigned_to_id != user.pk:
        raise AppError("Only the agent handling this conversation can close it.", code="not_assigned", status=409)
    if not conversation.with_human:
        raise AppError("This conversation is not with a person.", code="not_open", status=409)
    conversation.handoff_status = HandoffStatus.CLOSED
    conversation.handoff_closed = timezone.now()
    conversation.save(update_fields=["handoff_status", "handoff_closed"])
    _announce(conversation, _status_frame(conversation, status="closed", text=CLOSED_TEXT))
    payload = {"conversation_id": conversation.pk, "bot_id": conversation.bot_id, "closed_by": user.pk}
    tenant_id = conversation.tenant_id
    transaction.on_commit(lambda: event_emit(name="handoff.closed", tenant_id=tenant_id, payload=payload))
    return conversation


def handoff_transfer(*, conversation_id: int, user: User, to_membership_id: Any) -> Conversation:
    """Give an assigned conversation to another agent of the workspace."""
    conversation = _assigned_to(conversation_id, user)
    target = Membership.objects.select_related("user").filter(pk=to_membership_id).first()
    if target is None or not target.is_agent_capable:
        raise AppError("Choose a team member who can answer visitors.", code="agent_not_found", status=400)
    conversation.assigned_to = target.user
    conversation.save(update_fields=["assigned_to"])
    name = agent_name(target.user)
    _announce(conversation, _status_frame(conversation, status="assigned", text=f"{name} joined", agent=name))
    return conversation


def handoff_sync(
    *, bot: Bot, visitor_id: str, after_id: Any, channel: str = Conversation.Channel.WIDGET
) -> tuple[Conversation | None, list[dict[str, Any]]]:
    """For a (re)connecting visitor: their latest conversation's handoff state and the agent
    messages after `after_id` (every one, when it is not a number)."""
    conversation = conversation_latest_for_visitor(bot=bot, visitor_id=visitor_id, channel=channel)
    if conversation is None or not conversation.handoff_status:
        return conversation, []
    after = after_id if isinstance(after_id, int) and not isinstance(after_id, bool) else 0
    messages = Message.objects.select_related("author").filter(
        conversation=conversation, role=Message.Role.AGENT, pk__gt=after
    )
    frames: list[dict[str, Any]] = []
    if conversation.with_human:
        agent = conversation.assigned_to if conversation.handoff_status == HandoffStatus.ASSIGNED else None
        name = agent_name(agent) if agent else ""
        frames.append(
            _status_frame(
                conversation,
                status="assigned" if agent else "waiting",
                text=f"{name} joined" if agent else WAITING_TEXT,
                agent=name,
            )
        )
    frames += [agent_message_frame(m, m.author) for m in messages]
    return conversation, frames


def handoff_stale_after() -> timedelta:
    """How long closed conversations stay in the inbox's "recently closed" list."""
    return timedelta(days=2)
