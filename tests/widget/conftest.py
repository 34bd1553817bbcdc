"""Browser fixtures for the widget: one headless Debian chromium per session, a fresh context
per test, and a stdlib "customer site" on another origin that embeds the widget."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatbot_saas.demo_host import make_server
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
class HostSite:
    """Another origin (a customer's website) serving whatever page a test sets."""

    server: object
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/"

    def serve(self, body: str, *, head: str = "", headers: dict[str, str] | None = None) -> str:
        self.html = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{head}</head><body>{body}</body></html>'
        self.server.extra_headers = dict(headers or {})
        return self.url


@pytest.fixture(scope="session")
def host_site() -> Iterator[HostSite]:
    site = HostSite(server=None)
    site.server = make_server(lambda: site.html, quiet=True)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()


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
