"""Handoff triggers (conversations/handoff_triggers.py): the bot could not answer N times in a row,
or the visitor rated an answer thumbs-down. The widget's socket runs them live in
test_handoff_triggers_live.py; on-duty agents are in test_handoff_duty.py."""

from __future__ import annotations

import pytest
from django.core import mail

from conversations.handoff_triggers import handoff_after_answer, handoff_after_feedback
from conversations.models import NO_ANSWER_MODEL, Conversation, HandoffStatus, Message
from conversations.services import message_feedback_set
from tenants.context import tenant_context
from tenants.events import event_emitted
from tests.bots.factories import HandoffSettingsFactory
from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    seen: list[tuple[str, dict]] = []

    def receiver(sender: str, tenant_id: int, payload: dict, **kwargs: object) -> None:
        seen.append((sender, payload))

    event_emitted.connect(receiver)
    yield seen
    event_emitted.disconnect(receiver)


@pytest.fixture
def settings_(world):
    world.alice.email = "alice@acme.test"
    world.alice.save()
    return HandoffSettingsFactory(
        tenant=world.tenant_a, bot__tenant=world.tenant_a, on_unanswered=True, unanswered_count=2, on_thumbs_down=True
    )


def _answer(conversation: Conversation, *, unanswered: bool) -> Message:
    model = NO_ANSWER_MODEL if unanswered else "openai:gpt-4o-mini"
    MessageFactory(tenant=conversation.tenant, conversation=conversation, role=Message.Role.USER, content="Q?")
    return MessageFactory(tenant=conversation.tenant, conversation=conversation, model=model)


def test_the_second_unanswered_question_in_a_row_puts_the_conversation_in_the_inbox(
    world, settings_, events, django_capture_on_commit_callbacks
):
    bot = settings_.bot
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        _answer(conversation, unanswered=True)
        first = handoff_after_answer(bot=bot, conversation_id=conversation.pk)
        _answer(conversation, unanswered=True)
        second = handoff_after_answer(bot=bot, conversation_id=conversation.pk)
    assert first is None
    assert (second["status"], second["trigger"]) == ("waiting", "unanswered")
    assert second["text"].endswith("waiting for an agent…")
    conversation.refresh_from_db()
    assert conversation.handoff_status == HandoffStatus.WAITING
    assert events == [
        (
            "handoff.requested",
            {"conversation_id": conversation.pk, "bot_id": bot.pk, "page_url": "", "trigger": "unanswered"},
        )
    ]
    assert [m.to for m in mail.outbox] == [["alice@acme.test"]]
    assert "got no answer from the assistant" in mail.outbox[0].body


def test_an_answered_question_breaks_the_streak_and_one_streak_fires_once(world, settings_):
    bot = settings_.bot
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    with tenant_context(world.tenant_a):
        _answer(conversation, unanswered=True)
        _answer(conversation, unanswered=False)
        _answer(conversation, unanswered=True)
        assert handoff_after_answer(bot=bot, conversation_id=conversation.pk) is None
        _answer(conversation, unanswered=True)
        assert handoff_after_answer(bot=bot, conversation_id=conversation.pk)["status"] == "waiting"
        # Handed back to the bot, a third "I don't know" in the same streak does not call a person again.
        Conversation.objects.filter(pk=conversation.pk).update(handoff_status=HandoffStatus.RETURNED)
        _answer(conversation, unanswered=True)
        assert handoff_after_answer(bot=bot, conversation_id=conversation.pk) is None


def test_switched_off_triggers_do_nothing(world, settings_):
    settings_.on_unanswered = False
    settings_.on_thumbs_down = False
    settings_.save()
    bot = settings_.bot
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    with tenant_context(world.tenant_a):
        _answer(conversation, unanswered=True)
        answer = _answer(conversation, unanswered=True)
        assert handoff_after_answer(bot=bot, conversation_id=conversation.pk) is None
        message_feedback_set(message=answer, value="down")
        assert handoff_after_feedback(bot=bot, message=answer, previous="") is None
    conversation.refresh_from_db()
    assert conversation.handoff_status == ""


def test_a_thumbs_down_calls_a_person_once(world, settings_, events, django_capture_on_commit_callbacks):
    bot = settings_.bot
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        answer = _answer(conversation, unanswered=False)
        message_feedback_set(message=answer, value="up")
        assert handoff_after_feedback(bot=bot, message=answer, previous="") is None
        message_feedback_set(message=answer, value="down")
        frame = handoff_after_feedback(bot=bot, message=answer, previous="up")
        message_feedback_set(message=answer, value="down", comment="Wrong size chart")
        again = handoff_after_feedback(bot=bot, message=answer, previous="down")
    assert (frame["status"], frame["trigger"]) == ("waiting", "thumbs_down")
    assert again is None
    handoffs = [(name, payload["trigger"]) for name, payload in events if name.startswith("handoff.")]
    assert handoffs == [("handoff.requested", "thumbs_down")]


def test_outside_business_hours_a_trigger_asks_for_a_lead_and_nothing_waits(world, settings_):
    settings_.hours_enabled = True
    settings_.hours_days = []  # never at work
    settings_.save()
    bot = settings_.bot
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    with tenant_context(world.tenant_a):
        _answer(conversation, unanswered=True)
        _answer(conversation, unanswered=True)
        frame = handoff_after_answer(bot=bot, conversation_id=conversation.pk)
    assert frame == {
        "type": "handoff",
        "conversation_id": None,
        "status": "away",
        "text": settings_.outside_hours_message,
    }
    conversation.refresh_from_db()
    assert conversation.handoff_status == ""


def test_an_admin_switches_the_triggers_on_in_the_bot_editor_and_a_bad_count_is_shown_in_place(world):
    from bots.models import HandoffSettings
    from tests.bots.factories import BotFactory

    bot = BotFactory(tenant=world.tenant_a)
    client = world.client_for(world.alice)
    form = {
        "enabled": "on",
        "on_request": "on",
        "on_unanswered": "on",
        "unanswered_count": "3",
        "on_thumbs_down": "on",
        "timezone": "UTC",
        "hours_start": "09:00",
        "hours_end": "17:00",
        "outside_hours_message": "We are closed.",
        "pickup_timeout_minutes": "5",
        "lead_when": "handoff",
        "name_field": "optional",
        "email_field": "required",
        "phone_field": "off",
    }
    page = client.get(f"/t/acme/bots/{bot.pk}/handoff/").content.decode()
    assert "Call a person when the visitor rates an answer thumbs-down" in page
    assert client.post(f"/t/acme/bots/{bot.pk}/handoff/", form).status_code == 302
    saved = HandoffSettings.objects.unscoped().get(bot=bot)
    assert (saved.on_unanswered, saved.unanswered_count, saved.on_thumbs_down) == (True, 3, True)
    refused = client.post(f"/t/acme/bots/{bot.pk}/handoff/", {**form, "unanswered_count": "0"})
    assert refused.status_code == 400 and "Between 1 and 10." in refused.content.decode()
