"""A customer's website on another origin: a stdlib server that serves whatever page a test sets.

The root conftest serves one per session as the `host_site` fixture, for the widget's and the
dashboard's browser tests alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from chatbot_saas.demo_host import make_server


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


@contextmanager
def host_site_server() -> Iterator[HostSite]:
    site = HostSite(server=None)
    site.server = make_server(lambda: site.html, quiet=True)
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
