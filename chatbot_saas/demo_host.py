"""A stand-in for a customer's website: `python -m chatbot_saas.demo_host` (the Procfile's `demo`).

It serves one page on a second origin (http://127.0.0.1:8001/ by default) with the embed
snippet of the demo bot (tenant 'demo', bot 'demo'), so the widget runs cross-origin exactly
as it does on a real site. Standard library HTTP server, bound to 127.0.0.1; the bot's public
id is looked up per request, so the page works as soon as the demo bot exists.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PageFn = Callable[[], str]

# Questions the demo bot answers from Acme Gadgets' help centre (demo/helpcentre/, ingested by
# `bootstrap_demo_knowledge`); tests/project/test_demo_bootstrap.py checks that each one retrieves
# its article. The widget has no suggestion chips, so the page lists them as text.
SUGGESTED_QUESTIONS = (
    "How long does standard delivery take?",
    "Can I return a product I have already opened?",
    "How do I reset my Acme Glow bulb?",
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Gadgets: demo host page</title>
<style>
  body {{ font: 16px/1.6 Georgia, serif; max-width: 720px; margin: 40px auto; padding: 0 20px; color: #222; }}
  code, pre {{ background: #f4f4f4; padding: 2px 4px; }}
  pre {{ padding: 12px; overflow-x: auto; }}
  .note {{ border-left: 4px solid #e0b400; padding: 8px 12px; background: #fffbea; }}
</style>
</head>
<body>
<h1>Acme Gadgets</h1>
<p>This page stands for a customer's website on another origin ({origin}). The chat button in the
corner is the embeddable widget, loaded from {widget_base} with one script tag:</p>
<pre><code>{snippet_text}</code></pre>
{body}
{snippet}
</body>
</html>
"""


def widget_snippet(*, widget_base: str, public_id: str) -> str:
    src = f"{widget_base.rstrip('/')}/static/widget/embed.js"
    return f'<script src="{html.escape(src)}" data-bot="{html.escape(public_id)}" async></script>'


def demo_bot_public_id() -> str | None:
    """The demo bot's public id, or None until bootstrap_demo_bot has created it."""
    from django.conf import settings

    from bots.models import Bot

    # Operator-style look-up across tenants on purpose: this process serves no tenant.
    bot = (
        Bot.objects.unscoped()
        .filter(tenant__slug=settings.DEMO_TENANT_SLUG, name=settings.WIDGET_DEMO_BOT_NAME)
        .only("public_id")
        .first()
    )
    return bot.public_id if bot else None


def render_page(*, origin: str, widget_base: str, public_id: str | None, body: str = "") -> str:
    if public_id is None:
        snippet = ""
        body = (
            '<p class="note">The demo bot does not exist yet. <code>make run</code> creates it '
            "(tenant <code>demo</code>, bot <code>demo</code>); reload this page when it is up.</p>" + body
        )
        shown = widget_snippet(widget_base=widget_base, public_id="PUBLIC_ID")
    else:
        snippet = shown = widget_snippet(widget_base=widget_base, public_id=public_id)
    if not body:
        questions = "".join(f"<li>{html.escape(question)}</li>" for question in SUGGESTED_QUESTIONS)
        body = (
            "<p>Open the chat and ask about delivery, returns, warranty, troubleshooting, Acme Care+ or "
            f'your account. Try one of these:</p><ul class="suggested">{questions}</ul>'
            "<p>Reload the page: the conversation is still there.</p>"
        )
    return PAGE.format(
        origin=html.escape(origin),
        widget_base=html.escape(widget_base),
        snippet_text=html.escape(shown),
        snippet=snippet,
        body=body,
    )


class _Handler(BaseHTTPRequestHandler):
    page: PageFn = staticmethod(lambda: "")
    server_version = "demo-host"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/favicon.ico":  # browsers ask; a 404 would put an error line in the console
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
            return
        if path != "/":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            body = self.page().encode()
        except Exception as exc:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, explain=str(exc))
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in getattr(self.server, "extra_headers", {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"demo-host {self.address_string()} {format % args}\n")


def make_server(page: PageFn, *, port: int = 0, quiet: bool = False) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 serving `page()` at `/`. Port 0 picks a free one.

    Tests reuse it as "another origin" and may set `server.extra_headers` (e.g. a CSP)."""
    handler = type("Handler", (_Handler,), {"page": staticmethod(page)})
    if quiet:
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.extra_headers = {}  # type: ignore[attr-defined]
    return server


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    port = settings.WIDGET_DEMO_PORT
    origin = f"http://127.0.0.1:{port}"

    def page() -> str:
        # One thread per request: close its connection, or every page view would leave one open.
        try:
            return render_page(origin=origin, widget_base=settings.SITE_URL, public_id=demo_bot_public_id())
        finally:
            connection.close()

    server = make_server(page, port=port)
    print(f"demo host page on {origin}/ (embeds the demo bot from {settings.SITE_URL})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
