"""Browser fixtures for the dashboard journeys: headless Debian chromium against a live daphne
(and, where ingestion runs, the live Celery worker), a signed-in page per user, and screenshots of
every page at desktop and mobile widths under test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.support.browser import chromium_browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API keeps an event loop in this thread; Django would then refuse the
    # test's own (synchronous) ORM calls such as factories.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[object]:
    # Per module, started after the test database exists (see tests/support/browser.py).
    yield from chromium_browser()


@pytest.fixture
def signed_in(browser: object, live_daphne: str) -> Iterator[Callable[..., object]]:
    """signed_in(user, **context_options) -> a Playwright page whose browser holds that user's
    session (made with Django's test client, so no test repeats the login form)."""
    contexts = []

    def open_page(user: object, **options: object) -> object:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context = browser.new_context(viewport=DESKTOP, **options)
        contexts.append(context)
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": cookie.value,
                    "domain": urlsplit(live_daphne).hostname,
                    "path": "/",
                }
            ]
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.errors = []  # uncaught page errors, for tests to assert on
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()


def shots(page: object, name: str) -> list[Path]:
    """Save the current page at desktop and mobile widths (full page), then restore the viewport."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    paths = []
    for label, size in (("desktop", DESKTOP), ("mobile", MOBILE)):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    page.set_viewport_size(original)
    return paths
