"""Journey 3: an admin designs the widget while watching the real one change, tries it in the
preview, copies the snippet, and a visitor chats on the customer's website; the install check
and the onboarding checklist then say the snippet is installed."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from bots.models import Bot
from conversations.models import Conversation
from knowledge.ingestion import document_ingest
from knowledge.models import Document
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tenants.models import Role
from tests.bots.factories import BotFactory
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WARRANTY = (
    "Every Acme gadget carries a two-year warranty from the date of purchase. "
    "The warranty covers parts and labour but not accidental damage."
)
QUESTION = "How long is the warranty?"


@pytest.fixture
def shop(transactional_db, host_site):
    """Workspace Acme (olga, owner) with a bot whose knowledge holds the warranty terms, allowed on the host site."""
    owner = UserFactory(username="olga", email="olga@example.com")
    tenant = TenantFactory(name="Acme", slug="acme")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name="Help centre")
        document = document_create_from_text(knowledge_base=kb, title="Warranty terms", text=WARRANTY)
        document_ingest(document_id=document.pk)
        # When the session's worker claimed the document first, document_ingest leaves it to it.
        deadline = time.monotonic() + 180
        document.refresh_from_db()
        while document.status not in Document.FINAL_STATUSES and time.monotonic() < deadline:
            time.sleep(0.2)
            document.refresh_from_db()
    assert document.status == Document.Status.READY, (document.status, document.error_message)
    bot = BotFactory(
        tenant=tenant, name="Support bot", allowed_origins=[host_site.origin], widget={"primary_color": "#0f766e"}
    )
    bot.knowledge_bases.add(kb)
    return owner, bot


LAUNCHER_COLOUR = (
    "getComputedStyle(document.querySelector('chat-widget').shadowRoot.querySelector('.cw-launch')).backgroundColor"
)


def wait_for_launcher_colour(page, colour: str) -> None:
    """The preview re-renders after the input event; wait for it rather than read it at once."""
    page.wait_for_function(f"colour => {LAUNCHER_COLOUR} === colour", arg=colour)


def wait_for_answer(page) -> str:
    answer = page.locator("chat-widget .cw-assistant:not(.cw-welcome)").last
    answer.locator(".cw-fb").wait_for(timeout=180_000)  # the first question loads the embedder (20-60 s)
    return answer.locator(".cw-body").inner_text()


def test_an_admin_designs_the_widget_live_and_a_visitor_chats_on_the_allowed_site(
    shop, signed_in, live_daphne, host_site
):
    owner, bot = shop
    page = signed_in(owner, permissions=["clipboard-read", "clipboard-write"])
    page.goto(f"{live_daphne}/t/acme/bots/{bot.pk}/widget/")
    page.locator("chat-widget .cw-launch").wait_for()
    wait_for_launcher_colour(page, "rgb(15, 118, 110)")

    # The look changes as the settings change, before saving.
    page.locator("#id_widget_primary_color").fill("#b91c1c")
    page.locator("#id_widget_suggested_questions").fill(QUESTION)
    page.locator("#id_widget_launcher_label").fill("Ask us")
    wait_for_launcher_colour(page, "rgb(185, 28, 28)")
    expect(page.locator("chat-widget .cw-chip")).to_have_text([QUESTION])
    bot.refresh_from_db()
    assert bot.widget == {"primary_color": "#0f766e"}  # nothing saved yet

    # The preview answers from the bot, as playground traffic.
    page.locator("chat-widget .cw-chip").click()
    assert "two-year warranty" in wait_for_answer(page)
    assert Conversation.objects.unscoped().filter(bot=bot, channel=Conversation.Channel.PLAYGROUND).count() == 1
    assert not Conversation.objects.unscoped().filter(bot=bot, channel=Conversation.Channel.WIDGET).exists()
    shots(page, "widget-designer-preview")

    page.get_by_role("button", name="Save widget").click()
    page.get_by_text("Widget saved.").wait_for()
    bot.refresh_from_db()
    assert bot.widget["primary_color"] == "#b91c1c" and bot.widget["suggested_questions"] == [QUESTION]

    # Copy the snippet, as the admin would, and paste it into the customer's website.
    page.get_by_role("button", name="Copy snippet").click()
    snippet = page.evaluate("() => navigator.clipboard.readText()")
    assert snippet == page.locator("#embed-snippet").inner_text()
    assert snippet == f'<script src="{live_daphne}/static/widget/embed.js" data-bot="{bot.public_id}" async></script>'
    visitor = page.context.browser.new_context()
    site = visitor.new_page()
    site.set_default_timeout(20_000)
    site.goto(host_site.serve("<h1>Acme shop</h1>" + snippet))
    site.locator("chat-widget .cw-launch").click()
    wait_for_launcher_colour(site, "rgb(185, 28, 28)")
    site.locator("chat-widget .cw-chip").click()
    assert "two-year warranty" in wait_for_answer(site)
    assert Conversation.objects.unscoped().filter(bot=Bot.objects.unscoped().get(pk=bot.pk), channel="widget").exists()
    visitor.close()

    # The install check lists the website, and the onboarding step is ticked.
    page.reload()
    page.get_by_text(f"Seen on {host_site.origin}").wait_for()
    expect(page.locator("tr", has_text=host_site.origin).get_by_text("Allowed")).to_be_visible()
    shots(page, "widget-designer")
    page.goto(f"{live_daphne}/t/acme/")
    expect(page.locator('li[data-step="installed"]')).to_have_attribute("class", "done")
    expect(page.locator('li[data-step="playground"]')).to_have_attribute("class", "done")
    shots(page, "home-onboarding")
    assert page.errors == []
