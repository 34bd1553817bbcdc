"""Insights in a real browser: the overview shows the day's counts after real turns, and a
filtered export downloads with only the rows the filters select."""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.insights.rollups import rollup_day
from conversations.models import NO_ANSWER_MODEL, Conversation, Message
from tenants.models import Role
from tests.conversations.factories import ConversationFactory, conversation_with_document
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.fakes.fixtures import ask

HANDBOOK = """# Handbook

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""

pytestmark = pytest.mark.browser


@pytest.fixture
def acme_with_turns(transactional_db):
    """Acme's owner, and three real turns of the offline bot today: two answered in the widget and
    one "I don't know"; then a playground turn, which the overview leaves out. Rolled up."""
    tenant = TenantFactory(name="Acme", slug="acme")
    owner = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    conversation, _kb = conversation_with_document(tenant, text=HANDBOOK, name="Support")
    bot = conversation.bot
    playground = ConversationFactory(tenant=tenant, bot=bot, channel=Conversation.Channel.PLAYGROUND)
    turns = [
        (conversation, "How do I reset my password?"),
        (conversation, "Where is the office?"),
        (conversation, "Can I pay with bitcoin?"),
        (playground, "How do I reset my password?"),
    ]
    # Playwright's event loop owns this thread: the turns run in another one, one after the other.
    with ThreadPoolExecutor(max_workers=1) as pool:
        for where, question in turns:
            pool.submit(ask, bot, where, question).result()
    rollup_day(day=timezone.now().astimezone(UTC).date())
    return owner, tenant


def test_the_overview_shows_the_days_counts_after_real_turns(acme_with_turns, signed_in, live_daphne):
    owner, tenant = acme_with_turns
    # The offline bot knows passwords and the office, not payments.
    assert list(
        Message.objects.unscoped()
        .filter(tenant=tenant, model=NO_ANSWER_MODEL)
        .values_list("conversation__channel", flat=True)
    ) == ["widget"]
    page = signed_in(owner)
    page.goto(f"{live_daphne}/t/acme/")

    totals = page.get_by_test_id("insights-totals")
    expect(totals.locator("[data-total=conversations]")).to_have_text("1")
    expect(totals.locator("[data-total=messages]")).to_have_text("6")
    expect(totals.locator("[data-total=answered]")).to_have_text("2")
    expect(totals.locator("[data-total=unanswered]")).to_have_text("1")
    expect(page.get_by_role("img", name="Messages per day")).to_be_visible()
    expect(page.get_by_test_id("top-questions")).to_contain_text("can i pay with bitcoin")
    shots(page, "insights-overview")

    page.get_by_test_id("latest-unanswered").get_by_role("link", name="Can I pay with bitcoin?").click()
    page.wait_for_url(f"{live_daphne}/t/acme/conversations/*/")
    expect(page.get_by_text("Can I pay with bitcoin?")).to_be_visible()
    expect(page.get_by_text("I don't know", exact=True)).to_be_visible()  # the badge on the refusal
    # The transcript's messages are not shown again as flash messages above it.
    assert "(complete)" not in page.locator(".flash").inner_text()
    shots(page, "insights-transcript")

    page.goto(f"{live_daphne}/t/acme/?range=5")
    expect(page.get_by_text("Pick a period of 7, 30 or 90 days.")).to_be_visible()
    assert page.errors == []


def test_a_filtered_export_downloads_the_rows_the_filters_select(acme_with_turns, signed_in, live_daphne, tmp_path):
    owner, _tenant = acme_with_turns
    page = signed_in(owner)
    page.goto(f"{live_daphne}/t/acme/conversations/")
    page.get_by_label("Search messages").fill("password")
    page.get_by_label("Channel").select_option("widget")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**q=password**")
    assert page.get_by_role("table").get_by_role("row").count() == 2  # the header and one conversation
    shots(page, "insights-explorer")

    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    download = download_info.value
    assert download.suggested_filename.startswith("acme-messages-") and download.suggested_filename.endswith(".csv")
    path = tmp_path / "export.csv"
    download.save_as(path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))

    assert rows, "the export has the matching messages"
    assert all("password" in row["content"].lower() for row in rows)
    assert {row["channel"] for row in rows} == {"widget"}
    assert "How do I reset my password?" in [row["content"] for row in rows]
    assert page.errors == []
