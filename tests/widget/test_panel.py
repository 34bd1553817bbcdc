"""The panel against a scripted server (tests/widget/fake_chat.py): streaming, citations,
resume after a dropped socket, stop, feedback, friendly errors, theming and screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.widget.conftest import screenshot
from tests.widget.fake_chat import FakeChat, snippet

pytestmark = pytest.mark.browser


@pytest.fixture
def widget_origin(live_daphne: str) -> str:
    return live_daphne


def embed(visit, host_site, widget_origin: str, fake: FakeChat, **context: object):
    seen = visit(**context)
    fake.install(seen.page, widget_origin)
    seen.page.goto(
        host_site.serve("<h1>Acme Gadgets</h1><p>Welcome to our shop.</p>" + snippet(widget_origin, fake.bot_id))
    )
    return seen


def ask(page, text: str) -> None:
    page.locator("chat-widget .cw-input").first.fill(text)
    page.keyboard.press("Enter")


def open_chat(page) -> None:
    page.locator("chat-widget .cw-launch").click()
    page.locator("chat-widget .cw-panel").wait_for(state="visible")


def test_an_answer_streams_in_with_numbered_citations_and_snippets(visit, host_site, widget_origin):
    fake = FakeChat()
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    expect(page.locator("chat-widget .cw-title")).to_have_text("Acme help")
    assert "Ask me anything" in page.locator("chat-widget .cw-welcome").text_content()
    ask(page, "How long is the warranty?")
    answer = page.locator("chat-widget .cw-assistant").last
    answer.locator(".cw-fb").wait_for()
    expect(answer.locator(".cw-body")).to_have_text("The warranty lasts two years 1.")
    expect(answer.locator(".cw-body strong")).to_have_text("two years")
    cites = answer.locator(".cw-cite")
    expect(cites).to_have_count(2)
    expect(cites.nth(0).locator(".cw-n")).to_have_text("1")
    expect(cites.nth(0).locator("a")).to_have_text("Warranty terms, p. 3")
    expect(cites.nth(0).locator("a")).to_have_attribute("rel", "noopener noreferrer")
    cites.nth(0).hover()
    expect(cites.nth(0).locator(".cw-snip")).to_be_visible()
    assert "two-year warranty" in cites.nth(0).locator(".cw-snip").text_content()
    assert fake.sent("message")[0]["text"] == "How long is the warranty?"
    assert fake.session_bodies[0]["visitor_id"]
    # Finished sentences reach the screen-reader live region.
    assert "two years" in page.locator("chat-widget .cw-sr").text_content()
    screenshot(page, "light")
    assert seen.errors == []


def test_a_dropped_socket_reconnects_and_resumes_the_answer_without_gaps_or_duplicates(visit, host_site, widget_origin):
    fake = FakeChat(mode="drop", drop_after=2)
    seen = embed(visit, host_site, widget_origin, fake)
    open_chat(seen.page)
    ask(seen.page, "How long is the warranty?")
    answer = seen.page.locator("chat-widget .cw-assistant").last
    answer.locator(".cw-fb").wait_for()
    expect(answer.locator(".cw-body")).to_have_text("The warranty lasts two years 1.")
    assert fake.connections == 2
    assert fake.sent("resume") == [{"type": "resume", "message_id": 100, "last_seq": 2}]
    expect(answer.locator(".cw-cite")).to_have_count(2)


def test_a_question_lost_with_its_socket_before_the_answer_started_can_be_asked_again(visit, host_site, widget_origin):
    fake = FakeChat(mode="lose")
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "Anyone there?")
    status = page.locator("chat-widget .cw-status", has_text="dropped before the answer started")
    status.wait_for()
    expect(page.locator("chat-widget .cw-send")).to_be_visible()
    ask(page, "How long is the warranty?")
    page.locator("chat-widget .cw-fb").wait_for()
    assert fake.connections == 2


def test_a_busy_server_is_shown_and_the_same_question_is_resent_with_its_key(visit, host_site, widget_origin):
    fake = FakeChat(mode="busy")
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "How long is the warranty?")
    page.locator("chat-widget .cw-status", has_text="Busy, retrying in 1 second").wait_for()
    page.locator("chat-widget .cw-fb").wait_for()
    first, retried = fake.sent("message")
    assert retried == first and len(first["idempotency_key"]) >= 8
    assert page.locator("chat-widget .cw-user").count() == 1
    assert page.locator("chat-widget .cw-assistant .cw-body").last.text_content() == "The warranty lasts two years 1."


def test_the_stop_button_ends_the_answer_and_keeps_what_was_written(visit, host_site, widget_origin):
    fake = FakeChat(mode="hold")
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "Tell me everything")
    stop = page.locator("chat-widget .cw-stop")
    page.locator("chat-widget .cw-assistant .cw-body", has_text="The warranty").wait_for()
    stop.click()
    page.locator("chat-widget .cw-partial").wait_for()
    assert fake.sent("stop") == [{"type": "stop", "message_id": 100}]
    assert stop.is_hidden()
    expect(page.locator("chat-widget .cw-send")).to_be_visible()


def test_thumbs_and_an_optional_comment_are_sent_as_feedback(visit, host_site, widget_origin):
    fake = FakeChat()
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "How long is the warranty?")
    page.locator("chat-widget .cw-down").click()
    expect(page.locator("chat-widget .cw-down")).to_have_attribute("aria-pressed", "true")
    page.locator("chat-widget .cw-comment textarea").fill("I wanted the EU terms")
    page.locator("chat-widget .cw-comment button").click()
    page.locator("chat-widget .cw-thanks", has_text="Thanks").wait_for()
    assert fake.sent("feedback") == [
        {"type": "feedback", "message_id": 100, "value": "down"},
        {"type": "feedback", "message_id": 100, "value": "down", "comment": "I wanted the EU terms"},
    ]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "rate_limited", "message": "Too many", "retry_after": 7}, "Please wait 7 seconds"),
        ({"code": "quota_exceeded", "message": "Quota"}, "answered all the questions it can for now"),
        ({"code": "all_providers_failed", "message": "Down"}, "can't answer right now"),
    ],
)
def test_rate_limits_and_quota_exhaustion_get_a_friendly_message(visit, host_site, widget_origin, error, expected):
    fake = FakeChat(error=error)
    seen = embed(visit, host_site, widget_origin, fake)
    open_chat(seen.page)
    ask(seen.page, "Hello?")
    status = seen.page.locator("chat-widget .cw-status")
    status.wait_for()
    assert expected in status.text_content()
    expect(seen.page.locator("chat-widget .cw-send")).to_be_visible()


def test_the_canned_fallback_is_shown_plainly_when_the_answer_failed(visit, host_site, widget_origin):
    fake = FakeChat(chunks=[], citations=[], end_status="failed", end_content="")
    seen = embed(visit, host_site, widget_origin, fake)
    open_chat(seen.page)
    ask(seen.page, "Hello?")
    failed = seen.page.locator("chat-widget .cw-failed")
    failed.wait_for()
    expect(failed.locator(".cw-body")).to_have_text("Sorry, I can't answer right now. Please try again in a moment.")
    expect(failed.locator(".cw-fb")).to_have_count(0)


def test_history_is_drawn_and_an_answer_still_streaming_is_resumed_from_the_start(visit, host_site, widget_origin):
    fake = FakeChat(
        history=[
            {"id": 1, "role": "user", "content": "Where is my order?", "status": "complete", "citations": []},
            {"id": 2, "role": "assistant", "content": "It ships **today**.", "status": "complete", "citations": []},
            {"id": 3, "role": "user", "content": "And the warranty?", "status": "complete", "citations": []},
            {"id": 100, "role": "assistant", "content": "The warr", "status": "streaming", "citations": []},
        ]
    )
    seen = embed(visit, host_site, widget_origin, fake)
    fake._answers[100] = [
        {"type": "delta", "message_id": 100, "seq": 1, "text": "The warranty "},
        {"type": "delta", "message_id": 100, "seq": 2, "text": "lasts two years."},
        {"type": "end", "message_id": 100, "seq": 3, "status": "complete", "usage": {}, "content": ""},
    ]
    open_chat(seen.page)
    bodies = seen.page.locator("chat-widget .cw-msg:not(.cw-welcome) .cw-body")
    seen.page.locator("chat-widget .cw-assistant .cw-fb").last.wait_for()
    assert bodies.all_text_contents() == [
        "Where is my order?",
        "It ships today.",
        "And the warranty?",
        "The warranty lasts two years.",
    ]
    assert fake.sent("resume") == [{"type": "resume", "message_id": 100, "last_seq": 0}]


def test_new_conversation_clears_the_log_and_tells_the_server(visit, host_site, widget_origin):
    fake = FakeChat()
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "How long is the warranty?")
    page.locator("chat-widget .cw-fb").wait_for()
    page.locator("chat-widget .cw-new").click()
    expect(page.locator("chat-widget .cw-msg")).to_have_count(1)  # the welcome message only
    page.wait_for_function("() => true")
    assert fake.sent("new_conversation") == [{"type": "new_conversation"}]


def test_dark_scheme_and_the_full_screen_mobile_layout(visit, host_site, widget_origin):
    fake = FakeChat(widget={"title": "Acme help", "primary_color": "#7c3aed", "scheme": "dark", "position": "left"})
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    open_chat(page)
    ask(page, "How long is the warranty?")
    page.locator("chat-widget .cw-fb").wait_for()
    background = page.locator("chat-widget .cw-panel").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(23, 25, 28)"
    header = page.locator("chat-widget .cw-head").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(124, 58, 237)"
    box = page.locator("chat-widget .cw-panel").bounding_box()
    assert box["x"] == 20  # position: left
    screenshot(page, "dark")

    mobile = embed(
        visit,
        host_site,
        widget_origin,
        FakeChat(),
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    open_chat(mobile.page)
    ask(mobile.page, "How long is the warranty?")
    cite = mobile.page.locator("chat-widget .cw-cite").first
    cite.locator(".cw-n").tap()
    expect(cite.locator(".cw-snip")).to_be_visible()
    box = mobile.page.locator("chat-widget .cw-panel").bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 844)
    screenshot(mobile.page, "mobile")


def test_keyboard_users_can_open_send_and_close_with_focus_returned(visit, host_site, widget_origin):
    fake = FakeChat()
    seen = embed(visit, host_site, widget_origin, fake)
    page = seen.page
    launcher = page.locator("chat-widget .cw-launch")
    launcher.wait_for()
    launcher.focus()
    page.keyboard.press("Enter")
    page.locator("chat-widget .cw-panel").wait_for(state="visible")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    page.wait_for_function(
        "() => document.querySelector('chat-widget').shadowRoot.activeElement?.tagName === 'TEXTAREA'"
    )
    page.keyboard.type("Hello")
    page.keyboard.press("Enter")
    page.locator("chat-widget .cw-fb").wait_for()
    page.keyboard.press("Escape")
    page.locator("chat-widget .cw-panel").wait_for(state="hidden")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert (
        page.evaluate("() => document.querySelector('chat-widget').shadowRoot.activeElement.className") == "cw-launch"
    )


def test_the_powered_by_line_shows_unless_the_session_says_to_hide_it(visit, host_site, widget_origin):
    plain = embed(visit, host_site, widget_origin, FakeChat())
    open_chat(plain.page)
    assert plain.page.locator("chat-widget .cw-powered").inner_text().strip() == "Powered by Chatbot SaaS"

    white_label = embed(visit, host_site, widget_origin, FakeChat(widget={"title": "Acme", "hide_powered_by": True}))
    open_chat(white_label.page)
    white_label.page.locator("chat-widget .cw-foot").wait_for()
    expect(white_label.page.locator("chat-widget .cw-powered")).to_have_count(0)
