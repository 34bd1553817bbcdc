"""Debian chromium for the browser tests: one launch recipe for every module that needs one."""

from __future__ import annotations

from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
# The closed network here refuses chromium's background connections; these keep it quiet and fast.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

EXPECT_TIMEOUT_MS = 20_000


def chromium_browser() -> Iterator[object]:
    """Yield a headless chromium under Playwright's sync API, closed afterwards (a fixture body).

    Start it per module and after the test database exists: the sync API keeps an event loop in
    this thread while it is up, which Django's ORM set-up and later asyncio.run() calls refuse."""
    from playwright.sync_api import expect, sync_playwright

    # expect() waits for the page to settle; a loaded 2-core CI machine needs more than its 5 s.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
