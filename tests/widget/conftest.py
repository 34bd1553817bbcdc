"""Browser fixtures for the widget: one headless Debian chromium per module and a fresh context per
test. The customer's site on another origin is the root conftest's `host_site`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.browser import chromium_browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API keeps an event loop in this thread; Django would then refuse
    # ORM calls made by the test itself (factories), which are plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[object]:
    # Per module, started after the test database exists (see tests/support/browser.py).
    yield from chromium_browser()


@dataclass
class Visit:
    page: object
    console: list[tuple[str, str]]
    errors: list[str]
    requests: list[str]

    def warnings(self) -> list[str]:
        return [text for kind, text in self.console if kind in {"warning", "error"}]


@pytest.fixture
def visit(browser: object) -> Iterator[callable]:
    """visit(url, **context_options) -> Visit, in a fresh browser context (own localStorage)."""
    contexts = []

    def open_page(url: str | None = None, **options: object) -> Visit:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        seen = Visit(page, [], [], [])
        page.on("console", lambda m: seen.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.on("request", lambda r: seen.requests.append(r.url))
        if url:
            page.goto(url)
        return seen

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"widget-{name}.png"
    page.screenshot(path=str(path))
    return path
