"""The signup journey in a real browser (Debian chromium) against a live daphne."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.mark.browser
def test_a_visitor_signs_up_and_lands_on_an_empty_dashboard(transactional_db, live_daphne, live_worker):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM is not used while it runs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{live_daphne}/accounts/signup/")
        page.fill("input[name=email]", "founder@example.com")
        page.fill("input[name=password1]", "a-strong passphrase 42")
        page.fill("input[name=password2]", "a-strong passphrase 42")
        page.fill("input[name=organisation]", "Browser Co")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_daphne}/t/browser-co/")
        assert page.inner_text("[data-testid=dashboard-title]") == "Browser Co"
        assert "Get started" in page.content()
        page.screenshot(path=str(ARTIFACTS / "dashboard-after-signup.png"))
        health = page.goto(f"{live_daphne}/healthz")
        assert health.status == 200 and health.json()["status"] == "ok"
        browser.close()
