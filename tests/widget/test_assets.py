"""The widget's files: size budgets, no innerHTML, the headers they are served with, and the
demo host page that embeds the demo bot."""

from __future__ import annotations

import gzip
import re
import urllib.request
from pathlib import Path

import pytest

from bots.models import Bot
from chatbot_saas.demo_host import demo_bot_public_id, render_page
from tests.bots.factories import BotFactory
from tests.factories import TenantFactory

WIDGET = Path(__file__).resolve().parents[2] / "static" / "widget"


def gzipped(name: str) -> int:
    return len(gzip.compress((WIDGET / name).read_bytes(), compresslevel=9))


def test_the_loader_stays_under_6_kb_and_the_panel_under_25_kb_gzipped():
    assert gzipped("embed.js") < 6 * 1024
    assert gzipped("panel.js") + gzipped("panel.css") < 25 * 1024


def test_no_widget_script_writes_html_from_strings():
    for name in ("embed.js", "panel.js", "handoff.js"):
        code = re.sub(r"/\*[\s\S]*?\*/|//[^\n]*", "", (WIDGET / name).read_text())
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{name} uses {sink}"


@pytest.mark.integration
def test_widget_files_are_served_cross_origin_with_a_csp_that_allows_nothing(live_daphne):
    with urllib.request.urlopen(f"{live_daphne}/static/widget/embed.js") as response:
        headers = response.headers
        body = response.read()
    assert b"data-bot" in body
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "javascript" in headers["Content-Type"]


def test_the_demo_host_page_embeds_the_demo_bot_by_its_public_id(db, settings):
    demo = TenantFactory(slug=settings.DEMO_TENANT_SLUG)
    other = TenantFactory(slug="someone-else")
    BotFactory(tenant=other, name="demo")
    assert demo_bot_public_id() is None
    bot = BotFactory(tenant=demo, name="demo", allowed_origins=["http://127.0.0.1:8001"])
    assert demo_bot_public_id() == Bot.objects.unscoped().get(pk=bot.pk).public_id
    page = render_page(origin="http://127.0.0.1:8001", widget_base="http://127.0.0.1:8000", public_id=bot.public_id)
    assert (
        f'<script src="http://127.0.0.1:8000/static/widget/embed.js" data-bot="{bot.public_id}" async></script>' in page
    )


def test_the_demo_host_page_explains_itself_until_the_demo_bot_exists():
    page = render_page(origin="http://127.0.0.1:8001", widget_base="http://127.0.0.1:8000", public_id=None)
    assert "<script src=" not in page
    assert "does not exist yet" in page


def test_make_run_starts_the_demo_host_page():
    procfile = (WIDGET.parents[1] / "Procfile").read_text()
    assert "demo: python -m chatbot_saas.demo_host" in procfile
