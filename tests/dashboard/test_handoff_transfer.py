"""Human handoff in the browser, part two: two agents of one workspace (alice and bob, each in a
browser context of their own) pass a conversation between them and close it, with the inbox's
sound alert and mute toggle; and the "could not answer twice" trigger from the widget."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, HandoffStatus, Message
from tenants.models import Membership
from tests.bots.factories import BotFactory, HandoffSettingsFactory
from tests.dashboard import test_handoff as first_journeys
from tests.dashboard.conftest import shots
from tests.dashboard.test_handoff import _shop, _visitor

pytestmark = [pytest.mark.browser, pytest.mark.integration]
shop_site = first_journeys.shop_site  # the customer's site fixture, shared with the first journeys


@pytest.fixture
def two_agents(transactional_db, world):
    world.alice.first_name, world.alice.last_name = "Alice", "Owner"
    world.alice.save()
    world.bob.first_name, world.bob.last_name = "Bob", "Builder"
    world.bob.save()
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).update(is_agent=True)
    return world


def test_an_agent_transfers_a_conversation_to_a_colleague_who_answers_and_closes_it(
    browser,
    signed_in,
    live_daphne,
    shop_site,
    two_agents,
):
    world = two_agents
    bot = BotFactory(tenant=world.tenant_a, name="Help", allowed_origins=[shop_site[0]])
    HandoffSettingsFactory(tenant=world.tenant_a, bot=bot, lead_when="never")

    alice = signed_in(world.alice)
    alice.goto(f"{live_daphne}/t/acme/inbox/")
    expect(alice.locator("#inbox-live")).to_be_visible()
    # The mute toggle is remembered in this browser.
    mute = alice.get_by_role("button", name="Mute sound alerts")
    expect(mute).to_have_attribute("aria-pressed", "false")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    alice.reload()
    expect(alice.get_by_role("button", name="Mute sound alerts")).to_have_attribute("aria-pressed", "true")
    expect(alice.locator("#inbox-live")).to_be_visible()

    bob = signed_in(world.bob)
    bob.goto(f"{live_daphne}/t/acme/inbox/")
    expect(bob.locator("#inbox-live")).to_be_visible()
    bob.locator("h1").click()  # a first gesture: the page may now make sound
    expect(bob.locator("#inbox")).not_to_have_attribute("data-alerts", re.compile(r"."))

    context, visitor = _visitor(browser, _shop(shop_site, live_daphne, bot))
    try:
        visitor.locator("chat-widget .cw-handoff-ask").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("Waiting for an agent…")

        # Both inboxes hear of it without a reload: title badge, alert counter and announcement.
        for page in (alice, bob):
            expect(page.get_by_role("heading", name="Waiting (1)")).to_be_visible()
            expect(page.locator("#inbox")).to_have_attribute("data-alerts", "1")
            expect(page.locator("#inbox-alert")).to_have_text("A new visitor is waiting.")
        expect(bob).to_have_title(re.compile(r"^\(1\) Inbox"))
        expect(alice.locator("#inbox")).not_to_have_attribute("data-tones", re.compile(r"."))  # muted
        shots(bob, "handoff-inbox-alert")

        alice.locator("#inbox-lists a").first.click()
        alice.get_by_role("button", name="Take this conversation").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("Alice joined")
        alice.get_by_label("Transfer to").select_option(label="Bob Builder")
        alice.get_by_role("button", name="Transfer").click()
        expect(alice.get_by_text("Bob Builder is answering this visitor.")).to_be_visible()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("Bob joined")

        # Bob's list shows it assigned to him, live.
        expect(bob.get_by_role("heading", name="Assigned (1)")).to_be_visible()
        row = bob.get_by_role("table", name="Being answered").get_by_role("row").nth(1)
        expect(row).to_contain_text("Bob Builder")
        shots(bob, "handoff-inbox-transferred")
        row.get_by_role("link").click()
        bob.get_by_label("Your reply").fill("Hello, Bob here. How can I help?")
        bob.get_by_role("button", name="Send").click()
        reply = visitor.locator("chat-widget .cw-agent").last
        expect(reply).to_contain_text("Hello, Bob here. How can I help?")
        expect(reply.locator(".cw-agent-name")).to_have_text("Bob")

        bob.get_by_role("button", name="Close", exact=True).click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("The conversation was closed. Thank you!")
        shots(visitor, "handoff-visitor-closed")
        bob.goto(f"{live_daphne}/t/acme/inbox/")
        closed = bob.get_by_role("table", name="Closed or handed back in the last two days")
        expect(closed.get_by_role("row").nth(1)).to_contain_text("Bob Builder")
        expect(closed.get_by_role("row").nth(1)).to_contain_text("closed")
    finally:
        context.close()
    conversation = Conversation.objects.unscoped().get(bot=bot)
    assert conversation.handoff_status == HandoffStatus.CLOSED and conversation.assigned_to_id == world.bob.pk
    agent_messages = Message.objects.unscoped().filter(conversation=conversation, role=Message.Role.AGENT)
    assert [(m.content, m.author_id) for m in agent_messages] == [("Hello, Bob here. How can I help?", world.bob.pk)]
    assert alice.errors == [] and bob.errors == []


def test_after_two_unanswered_questions_the_visitor_waits_for_a_person_and_leaves_their_contact(
    browser,
    signed_in,
    live_daphne,
    shop_site,
    two_agents,
):
    world = two_agents
    # Knowledge-only with no documents: the bot says it does not know, every time.
    bot = BotFactory(tenant=world.tenant_a, name="Help", allowed_origins=[shop_site[0]])
    HandoffSettingsFactory(
        tenant=world.tenant_a, bot=bot, lead_when="handoff", on_request=False, on_unanswered=True, unanswered_count=2
    )
    alice = signed_in(world.alice)
    alice.goto(f"{live_daphne}/t/acme/inbox/")
    expect(alice.locator("#inbox-live")).to_be_visible()

    context, visitor = _visitor(browser, _shop(shop_site, live_daphne, bot))
    try:
        expect(visitor.locator("chat-widget .cw-handoff-ask")).to_be_hidden()  # the button is switched off
        for n, question in enumerate(("Do you ship to Mars?", "Do you ship to the Moon?"), start=1):
            visitor.locator("chat-widget .cw-input").fill(question)
            visitor.keyboard.press("Enter")
            expect(visitor.locator("chat-widget .cw-assistant .cw-fb")).to_have_count(n, timeout=60_000)
        line = visitor.locator("chat-widget .cw-handoff-line")
        expect(line).to_have_text(
            "Sorry, I could not find an answer. A person from our team will take over: waiting for an agent…"
        )
        form = visitor.locator("chat-widget .cw-lead")
        form.get_by_label("Email *").fill("moon@example.com")
        form.get_by_role("button", name="Send").click()
        expect(form).to_have_count(0)
        shots(visitor, "handoff-visitor-unanswered-trigger")

        expect(alice.get_by_role("heading", name="Waiting (1)")).to_be_visible()
        expect(alice.get_by_role("link", name="moon@example.com")).to_be_visible()
        expect(alice.locator("#inbox")).to_have_attribute("data-alerts", "1")
    finally:
        context.close()
    assert alice.errors == []
