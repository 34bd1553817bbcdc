"""Journey: a visitor asks the widget something its knowledge cannot answer; the question shows up
in the knowledge gaps; an admin writes the answer from the gap; the same question, reworded, is
then answered from that correction in the widget, cited as from the support team."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from bots.models import Correction
from conversations.gaps import gaps_scan
from conversations.models import GapItem
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
ANSWER = "We deliver on Saturdays between 9:00 and 13:00 for orders placed by Thursday evening."


@pytest.fixture
def shop(transactional_db, host_site, live_worker):
    """Workspace Acme (olga, owner) with a knowledge-only bot that knows the warranty terms and
    nothing about delivery, allowed on the customer's website."""
    owner = UserFactory(username="olga", email="olga@example.com")
    tenant = TenantFactory(name="Acme", slug="acme")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name="Help centre")
        # Ingested by the live worker (an inline run here would race it for the queued task).
        document = document_create_from_text(knowledge_base=kb, title="Warranty terms", text=WARRANTY)
        deadline = time.monotonic() + 180
        document.refresh_from_db()
        while document.status not in Document.FINAL_STATUSES and time.monotonic() < deadline:
            time.sleep(0.2)
            document.refresh_from_db()
    assert document.status == Document.Status.READY, (document.status, document.error_message)
    bot = BotFactory(tenant=tenant, name="Support bot", allowed_origins=[host_site.origin])
    bot.knowledge_bases.add(kb)
    return tenant, owner, bot


def ask_in_widget(page, question: str):
    answers = page.locator("chat-widget .cw-assistant:not(.cw-welcome)")
    before = answers.count()
    page.locator("chat-widget .cw-input").fill(question)
    page.keyboard.press("Enter")
    answer = answers.nth(before)
    answer.locator(".cw-fb").wait_for(timeout=180_000)  # the first question loads the embedder (20-60 s)
    return answer


def test_a_gap_in_the_widget_is_answered_from_the_correction_written_for_it(
    shop,
    signed_in,
    live_daphne,
    host_site,
):
    tenant, owner, bot = shop
    snippet = f'<script src="{live_daphne}/static/widget/embed.js" data-bot="{bot.public_id}" async></script>'
    visitor = signed_in(owner).context.browser.new_context()
    site = visitor.new_page()
    site.set_default_timeout(20_000)

    # A visitor asks something the knowledge does not cover: the bot says it doesn't know.
    site.goto(host_site.serve("<h1>Acme shop</h1>" + snippet))
    site.locator("chat-widget .cw-launch").click()
    refused = ask_in_widget(site, "Do you deliver on weekends?")
    expect(refused.locator(".cw-body")).to_contain_text("don't know")
    shots(site, "corrections-widget-unanswered")

    # The gap scan (Celery beat, every minute) files it; run here rather than waiting for beat.
    gaps_scan()
    with tenant_context(tenant):
        assert list(GapItem.objects.values_list("question", flat=True)) == ["Do you deliver on weekends?"]

    page = signed_in(owner)
    page.goto(f"{live_daphne}/t/acme/")
    page.get_by_role("link", name="Knowledge gaps").click()
    row = page.locator("tr.gap-row", has_text="Do you deliver on weekends?")
    row.get_by_text("1 time").wait_for()
    expect(row.locator(".gap-trend")).to_contain_text("new")
    shots(page, "knowledge-gaps")

    row.get_by_role("link", name="Write the answer").click()
    expect(page.locator("#id_question")).to_have_value("Do you deliver on weekends?")
    shots(page, "knowledge-gap-write-answer")
    page.locator("#id_answer").fill(ANSWER)
    page.get_by_role("button", name="Save correction").click()
    page.get_by_text("Correction saved").wait_for()
    expect(page.locator("#id_answer")).to_have_value(ANSWER)
    shots(page, "correction-edit")

    # The same question, reworded, on a fresh visit: answered from the correction.
    site.goto(host_site.serve("<h1>Acme shop</h1>" + snippet))
    site.locator("chat-widget .cw-launch").click()
    answer = ask_in_widget(site, "Can you deliver my order on a Saturday or Sunday?")
    expect(answer.locator(".cw-body")).to_contain_text(ANSWER)
    assert answer.locator(".cw-cite").first.inner_text().strip().endswith("From the support team")
    shots(site, "corrections-widget-answered")
    visitor.close()

    # The correction counts the question it answered; the gap is marked answered.
    page.goto(f"{live_daphne}/t/acme/bots/{bot.pk}/corrections/")
    page.locator("tr", has_text="Do you deliver on weekends?").get_by_text("1 question").wait_for()
    shots(page, "corrections-list")
    page.goto(f"{live_daphne}/t/acme/knowledge-gaps/")
    page.get_by_text("Answered by a correction").wait_for()
    with tenant_context(tenant):
        assert Correction.objects.get().uses == 1
    assert page.errors == []
