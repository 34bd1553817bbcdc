"""The embeddable widget: gzipped sizes, and the time from the loader's start to a visible launcher.

Sizes are measured with Python's gzip (level 9) on the files under static/widget/.

Timing runs headless Debian chromium (Playwright, no browser download) against a host page on
another origin, in a fresh browser context each run (cold cache, new visitor). It reads the
loader's own User Timing marks: `cw:loader-start` (first line of embed.js) and
`cw:launcher-visible` (launcher drawn after the session answered). Two servers:

- `canned`: a stdlib server returns a fixed session answer: the widget's own cost plus one
  loopback round trip.
- `daphne`: the real app (migrated database, a benchmark bot, real session endpoint with its
  CORS preflight), as a visitor sees it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .common import percentile

TITLE = "Chat widget: gzipped sizes and loader start → launcher visible (headless chromium)"
ROOT = Path(__file__).resolve().parent.parent
WIDGET = ROOT / "static" / "widget"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
BOT_ID = "bot_benchmark"


def _gz(name: str) -> int:
    return len(gzip.compress((WIDGET / name).read_bytes(), compresslevel=9))


def size_rows() -> list[dict[str, Any]]:
    loader = _gz("embed.js")
    panel = _gz("panel.js") + _gz("panel.css")
    return [
        {
            "what": "embed.js (loader), gzipped",
            "value": round(loader / 1024, 2),
            "unit": "KB",
            "budget": "< 6 KB",
            "ok": loader < 6 * 1024,
        },
        {
            "what": "panel.js + panel.css, gzipped",
            "value": round(panel / 1024, 2),
            "unit": "KB",
            "budget": "< 25 KB",
            "ok": panel < 25 * 1024,
        },
    ]


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _handler(routes: Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            status, headers, body = routes(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_OPTIONS = _reply

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def canned_widget_server() -> Iterator[str]:
    """Serves static/widget/* and a fixed session answer, with the CORS headers the app sends."""
    session = json.dumps(
        {
            "token": "t",
            "expires_in": 900,
            "conversation_id": None,
            "history": [],
            "bot": {"name": "Bench", "welcome_message": "Hi", "widget": {"title": "Bench", "primary_color": "#0f766e"}},
        }
    ).encode()

    def routes(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        cors = {
            "Access-Control-Allow-Origin": req.headers.get("Origin", "*"),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
        }
        if req.path.startswith("/static/widget/"):
            path = WIDGET / req.path.rsplit("/", 1)[1]
            kind = "text/css" if path.suffix == ".css" else "text/javascript"
            return 200, {"Content-Type": kind}, path.read_bytes()
        if req.command == "OPTIONS":
            return 204, cors, b""
        length = int(req.headers.get("Content-Length") or 0)
        req.rfile.read(length)
        return 200, {**cors, "Content-Type": "application/json"}, session

    with _serve(_handler(routes)) as url:
        yield url


@contextmanager
def host_page(widget_base: str, bot_id: str) -> Iterator[str]:
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>host</title></head><body><h1>Host</h1>'
        f'<script src="{widget_base}/static/widget/embed.js" data-bot="{bot_id}" async></script></body></html>'
    ).encode()
    with _serve(_handler(lambda req: (200, {"Content-Type": "text/html"}, page))) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_bot(origin_port: int) -> str:
    """Migrate the DATABASE_URL database and make a benchmark bot allowed on the host page's origin.

    Runs before Playwright starts: Django refuses ORM calls beside its event loop."""
    from django.core.management import call_command

    from bots.models import Bot
    from tenants.models import Tenant

    call_command("migrate", "--noinput", verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug="bench-widget", defaults={"name": "Widget benchmark"})
    bot = Bot.objects.unscoped().filter(tenant=tenant, name="bench").first()
    if bot is None:
        bot = Bot(tenant=tenant, name="bench")
    bot.allowed_origins = [f"http://127.0.0.1:{origin_port}"]
    bot.widget = {"title": "Bench", "primary_color": "#0f766e"}
    bot.save()
    return bot.public_id


@contextmanager
def real_widget_server() -> Iterator[str]:
    """A real daphne on the DATABASE_URL database."""
    port = _free_port()
    daphne = Path(sys.executable).parent / "daphne"
    # No embedding model: loading it in the background would compete with the page loads measured.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KNOWLEDGE_PRELOAD_EMBEDDER": "false"}
    process = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "chatbot_saas.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


MEASURE = """() => new Promise(resolve => {
  const check = () => {
    const start = performance.getEntriesByName('cw:loader-start')[0];
    const shown = performance.getEntriesByName('cw:launcher-visible')[0];
    if (start && shown) resolve({loader: shown.startTime - start.startTime, navigation: shown.startTime});
    else setTimeout(check, 5);
  };
  check();
})"""


def measure(browser: Any, url: str, runs: int) -> tuple[list[float], list[float]]:
    loader, navigation = [], []
    for _ in range(runs):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.locator("chat-widget .cw-launch").wait_for(state="visible", timeout=30_000)
        timing = page.evaluate(MEASURE)
        loader.append(timing["loader"])
        navigation.append(timing["navigation"])
        context.close()
    return loader, navigation


def timing_rows(label: str, loader: list[float], navigation: list[float]) -> list[dict[str, Any]]:
    rows = []
    for what, values in (
        (f"loader start → launcher visible ({label})", loader),
        (f"navigation start → launcher visible ({label})", navigation),
    ):
        rows.append(
            {
                "what": what,
                "value": round(percentile(values, 50), 1),
                "unit": "ms p50",
                "budget": f"p95 {percentile(values, 95):.1f} ms, n={len(values)}",
                "ok": "",
            }
        )
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    runs = 5 if getattr(args, "quick", False) else 25
    rows = size_rows()
    port = _free_port()
    bot_id = bench_bot(port)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            with canned_widget_server() as widget, host_page(widget, BOT_ID) as host:
                measure(browser, host, 2)  # warm the browser process, not the page cache
                rows += timing_rows("canned session", *measure(browser, host, runs))
            with real_widget_server() as widget:
                page = (
                    '<!doctype html><html><head><meta charset="utf-8"></head><body><h1>Host</h1>'
                    f'<script src="{widget}/static/widget/embed.js" data-bot="{bot_id}" async></script></body></html>'
                ).encode()
                server = ThreadingHTTPServer(
                    ("127.0.0.1", port), _handler(lambda req: (200, {"Content-Type": "text/html"}, page))
                )
                threading.Thread(target=server.serve_forever, daemon=True).start()
                try:
                    host = f"http://127.0.0.1:{port}/"
                    measure(browser, host, 2)
                    rows += timing_rows("real daphne", *measure(browser, host, runs))
                finally:
                    server.shutdown()
                    server.server_close()
        finally:
            browser.close()
    return rows
