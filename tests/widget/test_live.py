"""The widget against the real server: a live daphne on the test database, the page on another
origin, real session tokens, the real visitor WebSocket and the real answer pipeline."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from conversations.models import Message
from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.bots.factories import BotFactory
from tests.factories import TenantFactory
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.widget.conftest import screenshot
from tests.widget.fake_chat import snippet

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WARRANTY = (
    "Every Acme gadget carries a two-year warranty from the date of purchase. "
    "The warranty covers parts and labour but not accidental damage."
)
SLOW_ANSWER = "The warranty lasts two years from the date of purchase and covers parts and labour [1]."


@pytest.fixture
def shop(transactional_db, host_site):
    """Tenant 'Acme' with a bot whose knowledge holds the warranty terms, allowed on the host site.

    The default MEDIA_ROOT on purpose: when the session's Celery worker is up (other apps' tests
    start it), it picks up the ingestion task too (the transaction commits) and must find the file."""
    tenant = TenantFactory(name="Acme", slug="acme-live")
    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name="Docs")
        document = document_create_from_text(knowledge_base=kb, title="Warranty terms", text=WARRANTY)
        document_ingest(document_id=document.pk)
        # When the session's worker claimed the document first, document_ingest leaves it to it.
        deadline = time.monotonic() + 180
        document.refresh_from_db()
        while document.status not in Document.FINAL_STATUSES and time.monotonic() < deadline:
            time.sleep(0.2)
            document.refresh_from_db()
    # Retrieval only sees documents with an active version (and counts their chunks).
    assert document.status == Document.Status.READY and document.active_version, (
        document.status,
        document.error_code,
        document.error_message,
    )
    bot = BotFactory(
        tenant=tenant,
        name="Help",
        allowed_origins=[host_site.origin],
        widget={"title": "Acme help", "primary_color": "#0f766e"},
    )
    bot.knowledge_bases.add(kb)
    assert Chunk.objects.unscoped().filter(tenant=tenant).exists()
    return bot


def open_and_ask(page, question: str) -> object:
    page.locator("chat-widget .cw-launch").click()
    page.locator("chat-widget .cw-input").fill(question)
    page.keyboard.press("Enter")
    answer = page.locator("chat-widget .cw-assistant").last
    answer.locator(".cw-fb").wait_for(timeout=180_000)  # the first question loads the embedder (20-60 s)
    return answer


def test_a_visitor_on_another_origin_gets_a_streamed_cited_answer_and_finds_it_after_a_reload(
    visit, host_site, live_daphne, shop
):
    seen = visit(host_site.serve("<h1>Acme</h1>" + snippet(live_daphne, shop.public_id)))
    page = seen.page
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    answer = open_and_ask(page, "How long is the warranty?")
    assert "two-year warranty" in answer.locator(".cw-body").text_content()
    assert answer.locator(".cw-cite").first.text_content().startswith("1Warranty terms")
    kinds = [json.loads(f)["type"] for f in frames]
    assert kinds[0] == "start" and "delta" in kinds and "citations" in kinds and kinds[-1] == "end"
    stored = Message.objects.unscoped().get(role="assistant", conversation__bot=shop)
    assert stored.status == Message.Status.COMPLETE
    screenshot(page, "live")

    page.reload()
    page.locator("chat-widget .cw-launch").click()
    history = page.locator("chat-widget .cw-msg:not(.cw-welcome) .cw-body")
    history.nth(1).wait_for()
    texts = history.all_text_contents()
    assert texts[0] == "How long is the warranty?"
    assert "two-year warranty" in texts[1]
    assert page.locator("chat-widget .cw-cite").count() >= 1
    assert seen.errors == []


def test_an_answer_cut_off_by_a_killed_socket_is_completed_after_reconnecting(visit, host_site, live_daphne, shop):
    with FakeOpenAI(api_key="not-needed") as llm:
        llm.default = Behaviour(text=SLOW_ANSWER, tokens_per_second=25)
        shop.model_chain = [{"provider": "openai_compatible", "model": "fake", "params": {"base_url": llm.base_url}}]
        shop.save(update_fields=["model_chain"])
        seen = visit()
        page = seen.page
        state = {"connections": 0, "deltas": 0, "client_frames": []}

        def proxy(ws):
            # Sits between the page and the real server; kills the first socket mid-answer.
            state["connections"] += 1
            first = state["connections"] == 1
            server = ws.connect_to_server()

            def to_page(message):
                frame = json.loads(message)
                ws.send(message)
                if first and frame["type"] == "delta":
                    state["deltas"] += 1
                    if state["deltas"] == 2:
                        ws.close(code=4000, reason="killed by the test")
                        server.close()

            def to_server(message):
                state["client_frames"].append(json.loads(message))
                server.send(message)

            server.on_message(to_page)
            ws.on_message(to_server)

        page.route_web_socket(re.compile(r"/ws/widget/"), proxy)
        page.goto(host_site.serve(snippet(live_daphne, shop.public_id)))
        answer = open_and_ask(page, "How long is the warranty?")
        expect(answer.locator(".cw-body")).to_have_text(re.sub(r"\[1\]", "1", SLOW_ANSWER))
        assert state["connections"] >= 2
        resumes = [f for f in state["client_frames"] if f["type"] == "resume"]
        assert len(resumes) == 1 and resumes[0]["last_seq"] >= 2
        stored = Message.objects.unscoped().get(role="assistant", conversation__bot=shop)
        assert stored.status == Message.Status.COMPLETE and stored.content == SLOW_ANSWER
        assert seen.errors == []


@pytest.mark.parametrize("case", ["disallowed origin", "unknown bot", "suspended tenant"])
def test_a_bot_that_cannot_chat_here_shows_no_launcher_and_one_warning(visit, host_site, live_daphne, shop, case):
    bot_id = shop.public_id
    expected = {
        "disallowed origin": "origin_not_allowed",
        "unknown bot": "bot_not_found",
        "suspended tenant": "tenant_suspended",
    }[case]
    if case == "disallowed origin":
        shop.allowed_origins = ["https://www.acme.example"]
        shop.save(update_fields=["allowed_origins"])
    elif case == "unknown bot":
        bot_id = "bot_doesnotexist"
    else:
        Tenant.objects.filter(pk=shop.tenant_id).update(status=Tenant.Status.SUSPENDED)
    seen = visit(host_site.serve("<p>Shop</p>" + snippet(live_daphne, bot_id)))
    seen.page.wait_for_function("() => window.ChatWidget && ChatWidget._instances[0].state === 'unavailable'")
    assert seen.page.locator("chat-widget .cw-launch").is_hidden()
    widget_lines = [(kind, text) for kind, text in seen.console if "[chat widget]" in text]
    assert len(widget_lines) == 1 and widget_lines[0][0] == "warning"
    assert f"({expected})" in widget_lines[0][1]
    # Beyond that warning, only the browser's own line about the refused request.
    assert all("Failed to load resource" in text for text in seen.warnings() if "[chat widget]" not in text)
    assert seen.errors == []
    assert not [url for url in seen.requests if "/ws/widget/" in url]
