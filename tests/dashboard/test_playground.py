"""Journey 2's second half in a real browser: ask a bot with a knowledge base and a two-entry
model chain in the playground (its primary fails, its fallback answers), see the streamed answer
with its citation, and open the trace with the passages' scores and both provider attempts."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from bots.services import bot_attach_knowledge_bases
from conversations.models import Conversation
from knowledge.ingestion import document_ingest
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tenants.models import Role
from tests.bots.factories import BotFactory
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.browser

HANDBOOK = """# Handbook

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""
ANSWER = 'Open the login page and click "Forgot password"; the emailed link expires after one hour [1].'


def _support_bot(tenant: object, primary: FakeOpenAI, backup: FakeOpenAI) -> object:
    """A bot answering from a ready handbook, with a chain of two OpenAI-compatible servers."""
    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name="Help centre")
        document = document_create_from_text(knowledge_base=kb, title="Handbook", text=HANDBOOK)
        # Ingest inline; a live worker of another test may have claimed the queued task first, so
        # wait for whichever run publishes the document.
        document_ingest(document_id=document.pk)
        deadline = time.monotonic() + 60
        while document.status not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            document.refresh_from_db()
        assert document.status == "ready"
        bot = BotFactory(
            tenant=tenant,
            name="Support bot",
            model_chain=[
                {"provider": "openai_compatible", "model": "primary-llm", "params": {"base_url": primary.base_url}},
                {"provider": "openai_compatible", "model": "backup-llm", "params": {"base_url": backup.base_url}},
            ],
        )
        bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=[kb.pk])
    return bot


def test_an_admin_asks_in_the_playground_and_reads_the_trace_of_a_failed_over_answer(
    transactional_db, signed_in, live_daphne
):
    owner = UserFactory(username="olga", email="olga@example.com")
    tenant = TenantFactory(name="Acme", slug="acme")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    with FakeOpenAI(api_key="not-needed") as primary, FakeOpenAI(api_key="not-needed") as backup:
        primary.default = Behaviour(fault="500")
        # Slow enough that the answer visibly streams in.
        backup.default = Behaviour(text=ANSWER, tokens_per_second=25)
        bot = _support_bot(tenant, primary, backup)

        page = signed_in(owner)
        page.goto(f"{live_daphne}/t/acme/")
        page.get_by_role("link", name="Playground").click()
        page.wait_for_url(f"{live_daphne}/t/acme/playground/")
        expect(page.get_by_label("Bot")).to_have_value(str(bot.pk))
        expect(page.get_by_label("Prompt version")).to_contain_text("Version 1 (published)")
        send = page.get_by_role("button", name="Send")
        expect(send).to_be_enabled()  # the socket is open
        shots(page, "playground")

        page.get_by_label("Your message").fill("How do I reset my password?")
        send.click()
        answer = page.locator(".turn-bot").last
        # Streamed: the Stop button shows while tokens arrive, in a live region.
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        expect(page.get_by_role("log", name="Conversation")).to_have_attribute("aria-live", "polite")
        # Generous: the server's first question loads its query embedder.
        expect(answer).to_contain_text("Forgot password", timeout=120_000)
        expect(answer.get_by_role("list", name="Sources")).to_contain_text("[1] Handbook", timeout=30_000)
        expect(page.get_by_role("button", name="Stop")).to_be_hidden()
        expect(answer).to_contain_text(ANSWER)
        shots(page, "playground-answer")

        answer.get_by_role("link", name="Show trace").click()
        trace = page.locator("#trace-panel")
        attempts = trace.get_by_role("table", name="Provider attempts")
        expect(attempts).to_be_visible()
        rows = attempts.locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("openai_compatible:primary-llm")
        expect(rows.nth(0)).to_contain_text("Failed")
        expect(rows.nth(0)).to_contain_text("failed (HTTP 500)")
        expect(rows.nth(1)).to_contain_text("openai_compatible:backup-llm")
        expect(rows.nth(1)).to_contain_text("Answered")
        passages = trace.get_by_role("table", name="Retrieved passages")
        expect(passages).to_contain_text("Handbook")
        expect(passages).to_contain_text("Kept")
        expect(passages).to_contain_text("Cited")
        expect(passages.locator("tbody tr").first.locator("td").nth(1)).to_have_text(re.compile(r"^0\.\d+"))
        expect(trace.get_by_role("table", name="Time per stage")).to_contain_text("Generate")
        expect(trace.get_by_text("Question", exact=True)).to_be_visible()
        assert page.url == f"{live_daphne}/t/acme/playground/", "the trace opened in place"
        shots(page, "playground-trace")

        trace.get_by_role("link", name="Open as a page").click()
        expect(page.get_by_role("heading", name="Trace of answer", exact=False)).to_be_visible()
        shots(page, "trace-page")

        # Playground traffic stays out of the visitors' conversations unless asked for.
        page.goto(f"{live_daphne}/t/acme/conversations/")
        expect(page.get_by_text("No conversations match.")).to_be_visible()
        page.get_by_role("link", name="Include playground and evaluation").click()
        expect(page.get_by_role("cell", name="playground")).to_be_visible()
        shots(page, "conversations-with-playground")
        assert page.errors == []
    assert Conversation.objects.unscoped().get().channel == Conversation.Channel.PLAYGROUND
