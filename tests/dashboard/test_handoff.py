"""Human handoff in the browser, with two browser contexts: a visitor on a customer's site with
the widget, and an agent (alice) in the dashboard's inbox, both against the live daphne."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from chatbot_saas.demo_host import make_server
from conversations.models import Lead, Message
from tests.bots.factories import BotFactory, HandoffSettingsFactory
from tests.dashboard.conftest import shots

pytestmark = [pytest.mark.browser, pytest.mark.integration]


class Site:
    html = ""


@pytest.fixture(scope="module")
def shop_site() -> Iterator[tuple[str, Site]]:
    """A customer's website on another origin, serving the page a test sets."""
    site = Site()
    server = make_server(lambda: site.html, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def _shop(shop_site, live_daphne: str, bot) -> str:
    origin, site = shop_site
    site.html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head><body><h1>Acme shop</h1>'
        f'<script src="{live_daphne}/static/widget/embed.js" data-bot="{bot.public_id}" async></script></body></html>'
    )
    return origin + "/"


@pytest.fixture
def handoff_bot(transactional_db, world, shop_site):
    bot = BotFactory(tenant=world.tenant_a, name="Help", allowed_origins=[shop_site[0]])
    HandoffSettingsFactory(tenant=world.tenant_a, bot=bot, lead_when="handoff")
    return bot


def _visitor(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    page.locator("chat-widget .cw-launch").click()
    return context, page


def test_a_visitor_reaches_a_person_who_answers_live_and_hands_back_to_the_bot(
    browser, signed_in, live_daphne, shop_site, handoff_bot, world
):
    agent = signed_in(world.alice)
    agent.goto(f"{live_daphne}/t/acme/inbox/")
    expect(agent.locator("#inbox-live")).to_be_visible()  # the inbox socket is open
    shots(agent, "handoff-inbox-empty")

    context, visitor = _visitor(browser, _shop(shop_site, live_daphne, handoff_bot))
    try:
        visitor.locator("chat-widget .cw-handoff-ask").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("Waiting for an agent…")
        form = visitor.locator("chat-widget .cw-lead")
        form.get_by_label("Email *").fill("not an email")
        form.get_by_role("button", name="Send").click()
        expect(form.locator(".cw-lead-err").filter(has_text="Enter a valid email address.")).to_be_visible()
        form.get_by_label("Name").fill("Vera")
        form.get_by_label("Email *").fill("vera@example.com")
        form.get_by_role("button", name="Send").click()
        expect(form).to_have_count(0)
        shots(visitor, "handoff-visitor-waiting")

        # The agent's list fills in by itself, with a count in the title.
        expect(agent.get_by_role("heading", name="Waiting (1)")).to_be_visible()
        expect(agent).to_have_title(re.compile(r"^\(1\) Inbox"))
        expect(agent.get_by_role("link", name="Vera")).to_be_visible()  # the lead's name, also live
        shots(agent, "handoff-inbox-waiting")
        agent.get_by_role("link", name="Vera").click()
        agent.get_by_role("button", name="Take this conversation").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text(re.compile(r" joined$"))

        agent.get_by_label("Your reply").fill("Hi Vera, I'm Alice from support.")
        agent.get_by_role("button", name="Send").click()
        reply = visitor.locator("chat-widget .cw-agent").last
        expect(reply).to_contain_text("Hi Vera, I'm Alice from support.")
        shots(agent, "handoff-agent-conversation")
        shots(visitor, "handoff-visitor-agent-reply")

        visitor.reload()
        visitor.locator("chat-widget .cw-launch").click()
        expect(visitor.locator("chat-widget .cw-agent").last).to_contain_text("Hi Vera, I'm Alice from support.")
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text(re.compile(r" joined$"))

        agent.get_by_role("button", name="Hand back to the assistant").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text(
            "The conversation is back with the assistant."
        )
        visitor.locator("chat-widget .cw-input").fill("What is the warranty?")
        visitor.keyboard.press("Enter")
        expect(visitor.locator("chat-widget .cw-assistant").last.locator(".cw-fb")).to_be_visible(timeout=60_000)
        shots(visitor, "handoff-visitor-back-with-bot")
    finally:
        context.close()
    roles = list(Message.objects.unscoped().filter(conversation__bot=handoff_bot).values_list("role", flat=True))
    assert roles[-3:] == ["agent", "user", "assistant"]
    assert Lead.objects.unscoped().get(bot=handoff_bot).email == "vera@example.com"
    assert agent.errors == []


def test_outside_business_hours_the_visitor_leaves_a_lead(browser, live_daphne, shop_site, handoff_bot):
    settings = handoff_bot.handoff
    settings.hours_enabled = True
    settings.hours_days = []  # closed every day
    settings.save()
    context, visitor = _visitor(browser, _shop(shop_site, live_daphne, handoff_bot))
    try:
        visitor.locator("chat-widget .cw-handoff-ask").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text(settings.outside_hours_message)
        form = visitor.locator("chat-widget .cw-lead")
        form.get_by_label("Email *").fill("late@example.com")
        form.get_by_label("Your question *").fill("Can I return a gift?")
        shots(visitor, "handoff-visitor-outside-hours")
        form.get_by_role("button", name="Send").click()
        expect(visitor.locator("chat-widget .cw-handoff-line")).to_have_text("Thanks! Our team will get back to you.")
    finally:
        context.close()
    lead = Lead.objects.unscoped().get(bot=handoff_bot)
    assert (lead.email, lead.question, lead.reason) == ("late@example.com", "Can I return a gift?", "outside_hours")
