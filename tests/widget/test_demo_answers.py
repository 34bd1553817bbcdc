"""The demo bot through the real widget: Acme's help centre ingested for real, a live daphne, the
page on another origin. The demo page's suggested questions get answers in cited sentences, and
questions the help centre cannot answer get the bot's honest "I don't know" with its contact."""

from __future__ import annotations

import re
import time

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from bots.models import Bot
from chatbot_saas.demo_host import SUGGESTED_QUESTIONS
from knowledge.ingestion import document_ingest
from knowledge.models import Document
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.widget.conftest import screenshot
from tests.widget.fake_chat import snippet

pytestmark = [pytest.mark.browser, pytest.mark.integration]

EXPECTED_SOURCES = dict(zip(SUGGESTED_QUESTIONS, ["shipping.md", "returns.md", "glow-quick-start.pdf"], strict=True))
OFF_TOPIC = ("What is the capital of Australia?", "Who painted the Mona Lisa?")


@pytest.fixture
def demo_bot(transactional_db, settings, tmp_path, host_site) -> Bot:
    """The demo tenant and bot as `make run` sets them up, its help centre ingested, and the host
    site's origin allowed. The offline answerer answers (no provider key)."""
    settings.VAR_DIR = tmp_path
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    call_command("bootstrap_demo")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        documents = list(Document.objects.all())
        for document in documents:
            document_ingest(document_id=document.pk)
        # When the session's Celery worker claimed a document first, document_ingest leaves it to it.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = set(Document.objects.values_list("status", flat=True))
            if statuses <= set(Document.FINAL_STATUSES):
                break
            time.sleep(0.3)
        assert set(Document.objects.values_list("status", flat=True)) == {Document.Status.READY}
        bot = Bot.objects.get(name="demo")
        bot.allowed_origins = [*bot.allowed_origins, host_site.origin]
        bot.save(update_fields=["allowed_origins"])
    return bot


def ask_in_widget(page, question: str) -> object:
    answers = page.locator("chat-widget .cw-assistant:not(.cw-welcome)")
    before = answers.count()
    page.locator("chat-widget .cw-input").fill(question)
    page.keyboard.press("Enter")
    answer = answers.nth(before)
    answer.locator(".cw-fb").wait_for(timeout=180_000)  # the first question loads the embedder (20-60 s)
    return answer


def test_the_demo_bot_answers_its_suggested_questions_with_cited_sentences_and_refuses_off_topic_ones(
    visit, host_site, live_daphne, demo_bot
):
    seen = visit(host_site.serve("<h1>Acme Gadgets</h1>" + snippet(live_daphne, demo_bot.public_id)))
    page = seen.page
    page.locator("chat-widget .cw-launch").click()

    for question, source in EXPECTED_SOURCES.items():
        answer = ask_in_widget(page, question)
        body = answer.locator(".cw-body").text_content()
        # Whole sentences, each cited ("… days. [1]", the widget shows the [1] as a marker "1"),
        # and no Markdown tables or headings.
        assert re.search(r"[a-z0-9)]\. ?\[?1\]?", body), (question, body)
        assert "|" not in body and "#" not in body and "---" not in body, (question, body)
        assert answer.locator(".cw-cite").count() >= 1, (question, body)
        assert source in answer.locator(".cw-cite").first.text_content(), (question, body)

    for question in OFF_TOPIC:
        answer = ask_in_widget(page, question)
        body = answer.locator(".cw-body").text_content()
        assert body.strip() == demo_bot.no_answer_text(), (question, body)
        assert "support@acme-gadgets.example" in body
        expect(answer.locator(".cw-cite")).to_have_count(0)
    screenshot(page, "demo-answers")
    assert not seen.warnings(), seen.warnings()
