"""A tiny loopback HTTP server for fetch tests: no internet needed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = tuple[int, dict[str, str], bytes]

# Request paths each server received, by base URL; kept after the server stops.
HITS: dict[str, list[str]] = {}


@contextmanager
def serve(routes: dict[str, Route | Callable[[], Route]]) -> Iterator[str]:
    """Serve `routes` (path -> (status, headers, body)) on 127.0.0.1; yields the base URL."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            route = routes.get(self.path)
            if callable(route):
                route = route()
            status, headers, body = route or (404, {}, b"not found")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        server.hits = hits  # type: ignore[attr-defined]
        base = f"http://127.0.0.1:{server.server_address[1]}"
        HITS[base] = hits
        yield base
    finally:
        server.shutdown()
        server.server_close()
