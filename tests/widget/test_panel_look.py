"""The look keys the widget designer sets, in the real widget against the scripted server: the
launcher label, suggested-question chips (one click, or the keyboard, sends the question), and
ChatWidget.preview(look), which restyles the live widget without a new session."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.widget.conftest import screenshot
from tests.widget.fake_chat import FakeChat
from tests.widget.test_panel import embed, open_chat

pytestmark = pytest.mark.browser

QUESTIONS = ["How long is the warranty?", "Where is my order?"]


@pytest.fixture
def widget_origin(live_daphne: str) -> str:
    return live_daphne


def _primary(page) -> str:
    return page.evaluate(
        "() => getComputedStyle(document.querySelector('chat-widget').shadowRoot.querySelector('.cw-launch'))"
        ".backgroundColor"
    )


def test_a_suggested_question_is_sent_from_the_keyboard_and_the_chips_go_away(visit, host_site, widget_origin):
    fake = FakeChat(widget={"title": "Acme help", "launcher_label": "Ask us", "suggested_questions": QUESTIONS})
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    launcher = page.locator("chat-widget .cw-launch")
    launcher.wait_for()
    expect(launcher).to_have_text("Ask us")
    open_chat(page)
    chips = page.get_by_role("group", name="Suggested questions").get_by_role("button")
    assert chips.all_inner_texts() == QUESTIONS
    screenshot(page, "suggested-questions")
    chips.nth(1).focus()
    page.keyboard.press("Enter")
    page.locator("chat-widget .cw-assistant .cw-fb").last.wait_for()
    assert [f["text"] for f in fake.sent("message")] == ["Where is my order?"]
    expect(page.locator("chat-widget .cw-user .cw-body")).to_have_text("Where is my order?")
    expect(page.locator("chat-widget .cw-chips")).to_have_count(0)
    assert seen.errors == []


def test_preview_restyles_the_live_widget_without_a_new_session(visit, host_site, widget_origin):
    fake = FakeChat()
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    assert _primary(page) == "rgb(15, 118, 110)"
    page.evaluate(
        """() => ChatWidget.preview({primary_color: "#b91c1c", title: "Shop help", scheme: "dark",
            position: "left", launcher_label: "Chat", welcome_message: "Welcome back!",
            suggested_questions: ["Can I return it?"]})"""
    )
    assert _primary(page) == "rgb(185, 28, 28)"
    expect(page.locator("chat-widget .cw-title")).to_have_text("Shop help")
    expect(page.locator("chat-widget .cw-panel")).to_have_attribute("data-scheme", "dark")
    assert "cw-left" in page.locator("chat-widget .cw-panel").get_attribute("class")
    expect(page.locator("chat-widget .cw-welcome .cw-body")).to_have_text("Welcome back!")
    assert page.locator("chat-widget .cw-chip").all_inner_texts() == ["Can I return it?"]
    assert len(fake.session_bodies) == 1
    assert seen.errors == []
