"""Settings → Privacy in a real browser: an owner looks a visitor up, confirms the erasure in the
dialog, and the visitor is gone; an unknown visitor is "nothing found", not an error page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Message
from tenants.models import Role
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory


@pytest.mark.browser
def test_an_owner_looks_up_and_erases_a_visitor(transactional_db, signed_in, live_daphne):
    acme = TenantFactory(name="Acme", slug="acme")
    olga = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(tenant=acme, user=olga, role=Role.OWNER)
    conversation = ConversationFactory(tenant=acme, visitor_id="visitor-42")
    MessageFactory(tenant=acme, conversation=conversation, role=Message.Role.USER, content="Hello, I am Vera")
    MessageFactory(tenant=acme, conversation=conversation, content="Hello Vera!")

    page = signed_in(olga)
    page.goto(f"{live_daphne}/t/acme/settings/")
    page.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Privacy")).to_be_visible()

    page.get_by_label("Visitor id or signed identity").fill("visitor-nobody")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#visitor-result")).to_have_text("Nothing found for that visitor.")

    page.get_by_label("Visitor id or signed identity").fill("visitor-42")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#visitor-result")).to_contain_text("1 conversation, 2 messages, 0 leads.")
    expect(page.get_by_role("button", name="Download export")).to_be_visible()
    page.locator("summary", has_text="Erase").click()
    shots(page, "privacy-erase-confirm")
    page.get_by_role("button", name="Yes, erase this visitor").click()
    expect(page.get_by_text("Erased the visitor: 1 conversations, 2 messages and 0 leads are gone.")).to_be_visible()
    assert not Conversation.objects.unscoped().filter(pk=conversation.pk).exists()
