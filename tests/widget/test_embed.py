"""The loader on a customer's page: isolation both ways, two bots on one page, the JavaScript
API, and the quiet failure when the bot cannot chat."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.widget.fake_chat import CORS, FakeChat, snippet

pytestmark = pytest.mark.browser

HOSTILE_HOST_CSS = """<style>
* { font-family: "Comic Sans MS", cursive !important; color: red !important; background: yellow !important;
    border: 4px dashed red !important; box-sizing: content-box !important; }
button { display: none !important; }
div { padding: 40px !important; }
chat-widget { display: none !important; }
textarea, input { font-size: 40px !important; }
</style>"""


@pytest.fixture
def widget_origin(live_daphne: str) -> str:
    return live_daphne


def test_host_page_styles_do_not_leak_into_the_widget_and_it_adds_none_to_the_page(visit, host_site, widget_origin):
    seen = visit()
    FakeChat().install(seen.page, widget_origin)
    page = seen.page
    page.goto(host_site.serve("<p id=copy>Shop copy</p>" + snippet(widget_origin, "bot_fake"), head=HOSTILE_HOST_CSS))
    launcher = page.locator("chat-widget .cw-launch")
    launcher.click()
    panel = page.locator("chat-widget .cw-panel")
    panel.wait_for(state="visible")
    style = panel.evaluate(
        """e => { const s = getComputedStyle(e); const t = getComputedStyle(e.querySelector('.cw-input'));
        return {font: s.fontFamily, color: s.color, background: s.backgroundColor, inputSize: t.fontSize,
                border: s.borderTopWidth, launcher: getComputedStyle(e.getRootNode().querySelector('.cw-launch')).display} }"""
    )
    assert "Comic Sans" not in style["font"]
    assert style["color"] != "rgb(255, 0, 0)"
    assert style["background"] == "rgb(255, 255, 255)"
    assert style["inputSize"] == "14px"
    assert style["border"] == "1px"
    assert style["launcher"] == "flex"
    # Nothing of the widget's CSS reaches the host page's own document.
    assert page.evaluate("() => document.styleSheets.length") == 1
    assert page.evaluate("() => getComputedStyle(document.getElementById('copy')).fontFamily").startswith('"Comic Sans')


def test_two_bots_on_one_page_get_their_own_launchers_and_panels(visit, host_site, widget_origin):
    seen = visit()
    page = seen.page
    fake = FakeChat().install(page, widget_origin)

    def session(route):
        if route.request.method == "OPTIONS":
            return route.fulfill(status=204, headers=CORS)
        bot = route.request.url.split("/widget/")[1].split("/")[0]
        title = {"bot_one": "Sales", "bot_two": "Support"}[bot]
        body = {
            "token": "t-" + bot,
            "expires_in": 900,
            "history": [],
            "conversation_id": None,
            "bot": {"name": title, "welcome_message": f"{title} here.", "widget": {"title": title}},
        }
        route.fulfill(status=200, headers=CORS, body=json.dumps(body), content_type="application/json")

    page.route(f"{widget_origin}/widget/*/session", session)
    page.goto(host_site.serve(snippet(widget_origin, "bot_one") + snippet(widget_origin, "bot_two")))
    one = page.locator("chat-widget[data-bot=bot_one]")
    two = page.locator("chat-widget[data-bot=bot_two]")
    one.locator(".cw-launch").wait_for()
    two.locator(".cw-launch").wait_for()
    box_one = one.locator(".cw-launch").bounding_box()
    box_two = two.locator(".cw-launch").bounding_box()
    assert box_one["y"] != box_two["y"]  # stacked, not on top of each other
    two.locator(".cw-launch").click()
    expect(two.locator(".cw-title")).to_have_text("Support")
    two.locator(".cw-input").fill("Hi support")
    page.keyboard.press("Enter")
    two.locator(".cw-fb").wait_for()
    expect(one.locator(".cw-panel")).to_have_count(0)
    one.locator(".cw-launch").click()
    expect(one.locator(".cw-title")).to_have_text("Sales")
    expect(one.locator(".cw-user")).to_have_count(0)
    assert page.evaluate("() => document.querySelectorAll('script[src$=\"panel.js\"]').length") == 1
    assert any("token=t-bot_two" in url for url in seen.requests if "/ws/widget/" in url) or fake.connections >= 1
    assert seen.errors == []


def test_the_javascript_api_opens_closes_identifies_and_reports_messages(visit, host_site, widget_origin):
    seen = visit()
    page = seen.page
    fake = FakeChat().install(page, widget_origin)
    page.goto(host_site.serve(snippet(widget_origin, "bot_fake")))
    page.locator("chat-widget .cw-launch").wait_for()
    page.evaluate("() => { window.seen = []; ChatWidget.on('message', m => window.seen.push(m)); ChatWidget.open(); }")
    page.locator("chat-widget .cw-panel").wait_for(state="visible")
    page.locator("chat-widget .cw-input").fill("How long is the warranty?")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.seen.length === 2")
    messages = page.evaluate("() => window.seen")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["text"] == "The warranty lasts **two years** [1]."
    assert messages[1]["citations"][0]["title"] == "Warranty terms"
    page.evaluate("() => ChatWidget.close()")
    page.locator("chat-widget .cw-panel").wait_for(state="hidden")

    page.evaluate("() => ChatWidget.identify({id: 'user-42', hmac: 'abc123', name: 'Ann'})")
    page.wait_for_function("() => true")
    page.locator("chat-widget .cw-launch").wait_for()
    page.wait_for_timeout(0)
    assert fake.session_bodies[-1]["identity"] == {"id": "user-42", "hmac": "abc123", "name": "Ann"}
    assert fake.session_bodies[-1]["visitor_id"] == fake.session_bodies[0]["visitor_id"]


def test_identify_queued_before_the_loader_reaches_the_first_session(visit, host_site, widget_origin):
    seen = visit()
    fake = FakeChat().install(seen.page, widget_origin)
    stub = "<script>window.ChatWidget = {q: [['identify', [{id: 'u1', hmac: 'h1'}]]]};</script>"
    seen.page.goto(host_site.serve(stub + snippet(widget_origin, "bot_fake")))
    seen.page.locator("chat-widget .cw-launch").wait_for()
    assert len(fake.session_bodies) == 1
    assert fake.session_bodies[0]["identity"] == {"id": "u1", "hmac": "h1", "name": ""}


def test_an_unknown_bot_shows_no_launcher_and_logs_one_clear_warning(visit, host_site, widget_origin):
    seen = visit()
    FakeChat(session_error=(404, {"error": {"code": "bot_not_found", "message": "No such bot."}})).install(
        seen.page, widget_origin
    )
    seen.page.goto(host_site.serve("<p>Shop</p>" + snippet(widget_origin, "bot_missing")))
    seen.page.wait_for_function("() => !!document.querySelector('chat-widget')")
    seen.page.wait_for_function("() => window.ChatWidget && ChatWidget._instances[0].state === 'unavailable'")
    assert seen.page.locator("chat-widget .cw-launch").is_hidden()
    widget_lines = [text for kind, text in seen.console if "[chat widget]" in text]
    assert widget_lines == ["[chat widget] chat unavailable for bot bot_missing: No such bot. (bot_not_found)"]
    assert [kind for kind, text in seen.console if "[chat widget]" in text] == ["warning"]
    # The browser's own network line for the 404 is the only other console entry.
    assert all("Failed to load resource" in text for text in seen.warnings() if "[chat widget]" not in text)
    assert seen.errors == []
