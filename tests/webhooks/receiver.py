"""A real HTTP receiver on 127.0.0.1 that checks each request's signature the way docs/webhooks.md
tells tenants to (written out here, not through our signing module)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify(secret: str, header: str, body: bytes) -> bool:
    items = dict(item.split("=", 1) for item in header.split(",") if item.startswith("t="))
    signatures = [item.split("=", 1)[1] for item in header.split(",") if item.startswith("v1=")]
    expected = hmac.new(secret.encode(), f"{items['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def verified_with(self, secret: str) -> bool:
        return verify(secret, self.headers["x-webhook-signature"], self.body)


@dataclass
class Receiver:
    url: str
    status: int = 200
    received: list[Received] = field(default_factory=list)

    def events(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.event["type"] == type_]


@contextmanager
def receiver(status: int = 200) -> Iterator[Receiver]:
    """Serve POST /hook on 127.0.0.1, answering `status` (changeable through .status)."""
    state = Receiver(url="", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body))
            payload = b"ok" if state.status < 400 else b"receiver says no"
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
