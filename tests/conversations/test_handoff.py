"""Human handoff and lead capture, service and page level (conversations/handoff.py, leads.py,
inbox_views.py). The live sockets, on two daphne processes, are in test_handoff_live.py."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, time

import pytest
from django.core import mail
from django.db import connection

from chatbot_saas.errors import AppError
from conversations.business_hours import within_business_hours
from conversations.handoff import handoff_close, handoff_reply, handoff_request, handoff_take
from conversations.leads import lead_submit
from conversations.models import Conversation, HandoffStatus, Lead, Message
from tenants.context import tenant_context
from tenants.events import event_emitted
from tenants.models import Membership
from tests.bots.factories import HandoffSettingsFactory
from tests.conversations.factories import ConversationFactory, LeadFactory


@pytest.fixture
def handoff_bot(world):
    return HandoffSettingsFactory(tenant=world.tenant_a, bot__tenant=world.tenant_a).bot


@pytest.fixture
def events():
    seen: list[tuple[str, dict]] = []

    def receiver(sender: str, tenant_id: int, payload: dict, **kwargs: object) -> None:
        seen.append((sender, payload))

    event_emitted.connect(receiver)
    yield seen
    event_emitted.disconnect(receiver)


def _make_agent(world, user) -> None:
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=user).update(is_agent=True)


@pytest.mark.django_db
def test_asking_for_a_person_puts_the_conversation_in_the_inbox_emails_the_team_and_emits_the_event(
    world, handoff_bot, events, django_capture_on_commit_callbacks
):
    world.alice.email = "alice@acme.test"
    world.alice.save()
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        frame = handoff_request(
            bot=handoff_bot, visitor_id="visitor-1", external_user_id="", conversation_id=None, page_url="https://a/p"
        )
    conversation = Conversation.objects.unscoped().get(pk=frame["conversation_id"])
    assert frame["status"] == "waiting" and frame["text"] == "Waiting for an agent…"
    assert conversation.handoff_status == HandoffStatus.WAITING and conversation.page_url == "https://a/p"
    assert [name for name, _ in events] == ["handoff.requested"]
    assert [m.to for m in mail.outbox] == [["alice@acme.test"]]


@pytest.mark.django_db
def test_outside_business_hours_the_visitor_is_asked_for_a_lead_and_nothing_waits(world, handoff_bot):
    settings = handoff_bot.handoff
    settings.hours_enabled = True
    settings.hours_days = []  # never at work
    settings.save()
    with tenant_context(world.tenant_a):
        frame = handoff_request(bot=handoff_bot, visitor_id="visitor-1", external_user_id="", conversation_id=None)
    assert frame["status"] == "away" and frame["text"] == settings.outside_hours_message
    assert not Conversation.objects.unscoped().exclude(handoff_status="").exists()


def test_business_hours_follow_the_time_zone_and_may_span_midnight():
    from bots.models import HandoffSettings

    office = HandoffSettings(
        hours_enabled=True, timezone="Europe/Paris", hours_days=[0], hours_start=time(9), hours_end=time(17)
    )
    monday_8_utc = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert within_business_hours(settings=office, now=monday_8_utc)
    assert not within_business_hours(settings=office, now=monday_8_utc.replace(hour=7))
    night = HandoffSettings(hours_enabled=True, timezone="UTC", hours_days=[0], hours_start=time(22), hours_end=time(6))
    assert within_business_hours(settings=night, now=datetime(2026, 11, 30, 23, tzinfo=UTC))  # Monday night
    assert within_business_hours(settings=night, now=datetime(2026, 12, 1, 5, tzinfo=UTC))  # Tuesday morning
    assert not within_business_hours(settings=night, now=datetime(2026, 12, 1, 23, tzinfo=UTC))  # Tuesday night


@pytest.mark.django_db(transaction=True)
def test_two_agents_taking_the_same_conversation_at_once_exactly_one_wins(world):
    conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(user) -> None:
        try:
            with tenant_context(world.tenant_a):
                barrier.wait()
                handoff_take(conversation_id=conversation.pk, user=user)
            outcomes.append("won")
        except AppError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(u,)) for u in (world.alice, world.bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_taken", "won"]
    conversation.refresh_from_db()
    assert conversation.handoff_status == HandoffStatus.ASSIGNED
    assert conversation.assigned_to in (world.alice, world.bob)


@pytest.mark.django_db
def test_an_agent_message_is_stored_with_its_author_and_only_the_assigned_agent_may_write(world):
    conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
    with tenant_context(world.tenant_a):
        handoff_take(conversation_id=conversation.pk, user=world.alice)
        message = handoff_reply(conversation_id=conversation.pk, user=world.alice, text="Hi, I'm Alice.")
        with pytest.raises(AppError) as refused:
            handoff_reply(conversation_id=conversation.pk, user=world.bob, text="Me too")
    assert (message.role, message.author, message.content) == (Message.Role.AGENT, world.alice, "Hi, I'm Alice.")
    assert refused.value.code == "not_assigned"
    conversation.refresh_from_db()
    assert conversation.first_agent_reply == message.created


@pytest.mark.django_db
def test_closing_emits_handoff_closed(world, events, django_capture_on_commit_callbacks):
    conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        handoff_close(conversation_id=conversation.pk, user=world.alice)
    conversation.refresh_from_db()
    assert conversation.handoff_status == HandoffStatus.CLOSED
    assert events == [
        (
            "handoff.closed",
            {"conversation_id": conversation.pk, "bot_id": conversation.bot_id, "closed_by": world.alice.pk},
        )
    ]


@pytest.mark.django_db
def test_lead_fields_are_checked_again_on_the_server(world, handoff_bot):
    settings = handoff_bot.handoff
    settings.consent_text = "You may contact me."
    settings.save()
    with tenant_context(world.tenant_a):
        with pytest.raises(AppError) as bad:
            lead_submit(
                bot=handoff_bot,
                visitor_id="v1",
                conversation_id=None,
                data={"email": "not-an-email", "name": "x" * 121},
            )
    assert bad.value.code == "lead_invalid"
    assert set(bad.value.extra["fields"]) == {"email", "name", "consent"}
    assert not Lead.objects.unscoped().exists()


@pytest.mark.django_db
def test_a_valid_lead_is_stored_emailed_and_emitted(world, handoff_bot, events, django_capture_on_commit_callbacks):
    world.alice.email = "alice@acme.test"
    world.alice.save()
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        lead = lead_submit(
            bot=handoff_bot,
            visitor_id="v1",
            conversation_id=None,
            data={"email": "vera@example.com", "name": "Vera", "question": "Do you ship to Mars?"},
            reason="outside_hours",
        )
    assert (lead.email, lead.name, lead.reason) == ("vera@example.com", "Vera", Lead.Reason.OUTSIDE_HOURS)
    assert events == [("lead.created", {"lead_id": lead.pk, "bot_id": handoff_bot.pk, "conversation_id": None})]
    assert len(mail.outbox) == 1 and "Do you ship to Mars?" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_member_without_the_agent_permission_gets_404_on_the_inbox_and_the_leads(world):
    conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
    client = world.client_for(world.bob)
    for url in (
        "/t/acme/inbox/",
        f"/t/acme/inbox/{conversation.pk}/",
        "/t/acme/leads/",
        "/t/acme/leads.csv",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/t/acme/inbox/{conversation.pk}/take/").status_code == 404
    assert "Inbox" not in client.get("/t/acme/").content.decode()
    _make_agent(world, world.bob)
    assert client.get("/t/acme/inbox/").status_code == 200


@pytest.mark.django_db
def test_the_inbox_lists_take_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    for i in range(5):
        conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
        LeadFactory(tenant=world.tenant_a, bot=conversation.bot, conversation=conversation, name=f"Lead {i}")
    ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.ASSIGNED, assigned_to=world.alice)
    client = world.client_for(world.alice)
    client.get("/t/acme/inbox/")  # warm the session and the sidebar's caches
    with django_assert_max_num_queries(12):
        page = client.get("/t/acme/inbox/")
    assert page.status_code == 200 and page.content.decode().count("Lead ") >= 5


@pytest.mark.django_db
def test_the_leads_page_takes_a_fixed_number_of_queries_and_the_csv_defuses_formulas(
    world, django_assert_max_num_queries
):
    for i in range(5):
        LeadFactory(tenant=world.tenant_a, name=f"Lead {i}")
    LeadFactory(tenant=world.tenant_a, name="=HYPERLINK(1)")
    client = world.client_for(world.alice)
    client.get("/t/acme/leads/")
    with django_assert_max_num_queries(10):
        assert client.get("/t/acme/leads/").status_code == 200
    csv_text = b"".join(client.get("/t/acme/leads.csv").streaming_content).decode()
    assert csv_text.splitlines()[0].startswith("created,bot,name,email")
    assert "'=HYPERLINK(1)" in csv_text and len(csv_text.splitlines()) == 7


@pytest.mark.django_db
def test_the_second_agent_to_take_is_told_it_is_taken(world):
    _make_agent(world, world.bob)
    conversation = ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING)
    alice, bob = world.client_for(world.alice), world.client_for(world.bob)
    assert alice.post(f"/t/acme/inbox/{conversation.pk}/take/").status_code == 302
    page = bob.post(f"/t/acme/inbox/{conversation.pk}/take/", follow=True)
    assert "Another agent has already taken this conversation." in page.content.decode()
    conversation.refresh_from_db()
    assert conversation.assigned_to == world.alice


def _handoff_post(**overrides: object) -> dict:
    data = {
        "enabled": "on",
        "on_request": "on",
        "hours_enabled": "on",
        "timezone": "Europe/Paris",
        "hours_days": ["0", "1", "2"],
        "hours_start": "09:00",
        "hours_end": "17:30",
        "outside_hours_message": "We are closed.",
        "pickup_timeout_minutes": "3",
        "lead_when": "handoff",
        "name_field": "optional",
        "email_field": "required",
        "phone_field": "off",
        "custom_fields": "Company\nOrder number",
        "consent_text": "",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_an_admin_turns_handoff_on_in_the_bot_editor_and_the_widget_session_offers_it(world):
    from bots.models import HandoffSettings
    from conversations.services import widget_session_open
    from tests.bots.factories import BotFactory

    bot = BotFactory(tenant=world.tenant_a)
    client = world.client_for(world.alice)
    assert client.get(f"/t/acme/bots/{bot.pk}/handoff/").status_code == 200
    assert client.post(f"/t/acme/bots/{bot.pk}/handoff/", _handoff_post()).status_code == 302
    saved = HandoffSettings.objects.unscoped().get(bot=bot)
    assert (saved.enabled, saved.hours_days, saved.custom_fields) == (True, [0, 1, 2], ["Company", "Order number"])
    session = widget_session_open(
        bot_public_id=bot.public_id, origin="http://127.0.0.1:8001", visitor_id="visitor-12345"
    )
    fields = [f["key"] for f in session["bot"]["handoff"]["lead_form"]["fields"]]
    assert fields == ["name", "email", "custom:Company", "custom:Order number"]


@pytest.mark.django_db
def test_bad_handoff_settings_are_shown_in_place_and_members_cannot_save(world):
    from tests.bots.factories import BotFactory

    bot = BotFactory(tenant=world.tenant_a)
    page = world.client_for(world.alice).post(
        f"/t/acme/bots/{bot.pk}/handoff/", _handoff_post(timezone="Mars/Olympus", hours_days=[])
    )
    assert page.status_code == 400
    assert "Unknown time zone" in page.content.decode() and "Pick at least one business day" in page.content.decode()
    assert world.client_for(world.bob).post(f"/t/acme/bots/{bot.pk}/handoff/", _handoff_post()).status_code == 403


@pytest.mark.django_db
def test_an_admin_makes_a_member_an_agent_on_the_team_page(world):
    bob_membership = Membership.objects.unscoped().get(tenant=world.tenant_a, user=world.bob)
    alice = world.client_for(world.alice)
    assert "Make agent" in alice.get("/t/acme/members/").content.decode()
    alice.post(f"/t/acme/members/{bob_membership.pk}/agent/", {"is_agent": "1"})
    bob_membership.refresh_from_db()
    assert bob_membership.is_agent
    assert world.client_for(world.bob).get("/t/acme/inbox/").status_code == 200
    refused = world.client_for(world.bob).post(f"/t/acme/members/{bob_membership.pk}/agent/", {"is_agent": "0"})
    assert refused.status_code == 403


@pytest.mark.django_db
def test_the_inbox_counts_handoffs_and_the_average_time_to_the_first_human_reply(world):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    for minutes in (2, 4):
        ConversationFactory(
            tenant=world.tenant_a,
            handoff_status=HandoffStatus.CLOSED,
            handoff_requested=now - timedelta(hours=1),
            first_agent_reply=now - timedelta(hours=1) + timedelta(minutes=minutes),
        )
    ConversationFactory(tenant=world.tenant_a, handoff_status=HandoffStatus.WAITING, handoff_requested=now)
    ConversationFactory(tenant=world.tenant_b, handoff_status=HandoffStatus.WAITING, handoff_requested=now)
    page = world.client_for(world.alice).get("/t/acme/inbox/").content.decode()
    assert "Last 30 days: 3 handoffs, 2 answered by a person; first human reply after 3 min on average." in page


@pytest.mark.django_db
def test_when_nobody_picks_up_in_time_the_visitor_is_told_over_the_channel_layer(
    world, handoff_bot, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from conversations.handoff import handoff_pickup_check
    from conversations.handoff_bus import conversation_group

    waiting = ConversationFactory(tenant=world.tenant_a, bot=handoff_bot, handoff_status=HandoffStatus.WAITING)
    taken = ConversationFactory(tenant=world.tenant_a, bot=handoff_bot, handoff_status=HandoffStatus.ASSIGNED)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(conversation_group(waiting.pk), channel)
    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        assert handoff_pickup_check(conversation_id=waiting.pk) is True
        assert handoff_pickup_check(conversation_id=taken.pk) is False
    frame = async_to_sync(asyncio.wait_for)(layer.receive(channel), 10)["frame"]
    assert (frame["type"], frame["status"]) == ("handoff", "no_pickup")
    assert frame["text"] == handoff_bot.handoff.outside_hours_message
