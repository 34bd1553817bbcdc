"""A small threaded HTTP server that streams Server-Sent Events the way the real LLM APIs do.

Each request takes the next `Behaviour` from `server.script` (or `server.default`), so a test
says exactly what the provider does: how long until the first token, how fast tokens come, and
which fault happens (a 429 with Retry-After, a 500, a 529, a drop mid-stream, an error event
after a 200, never answering). Responses use chunked transfer encoding, so a drop mid-stream
is a real protocol error on the client, as it is in production.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    text: str = "The answer is in the documentation [1]."
    ttft: float = 0.0  # seconds before the first token
    tokens_per_second: float = 0.0  # 0: as fast as the socket goes
    # None, "429", "500", "529", "auth", "quota", "bad_request" (HTTP errors), "hang" (never answers),
    # "drop", "error_event", "stall" (after fault_after_tokens tokens: cut, error event, or go silent)
    fault: str | None = None
    fault_after_tokens: int = 2  # for "drop", "error_event" and "stall"
    retry_after: str | None = None  # the Retry-After header of a 429/529
    error_type: str | None = None  # override the error type in an error body or event

    def tokens(self, body: dict[str, Any] | None = None) -> list[str]:
        text = self.text
        if "{marker}" in text:  # a model that leaks the system prompt's confidential marker
            found = re.search(r"cnry-[0-9a-f]+", json.dumps(body or {}))
            text = text.replace("{marker}", found.group(0) if found else "")
        return re.findall(r"\S+\s*|\s+", text)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLLMServer(ABC):
    """Subclasses write the wire format; this class runs the server and applies the knobs."""

    api_prefix = ""

    def __init__(self, *, api_key: str = "test-key", keep_alive: bool = False) -> None:
        self.api_key = api_key
        # Off: every response closes its connection, so each request is a fresh one (what the
        # tests of drops and disconnects expect). On: a stream that ends normally keeps it, as
        # the real APIs do, so a benchmark's client reuses warm connections as in production.
        self.keep_alive = keep_alive
        self.script: deque[Behaviour] = deque()
        self.default = Behaviour()
        self.requests: list[Received] = []
        # Called in the server's thread with each request before it is answered (tests look at
        # the database from there: it sees what the app has committed, nothing else).
        self.on_request: Callable[[Received], None] | None = None
        # A model that reads its request: returns the Behaviour for a request body (None: the
        # script or default). For tests where the answer must follow the system prompt.
        self.responder: Callable[[dict[str, Any]], Behaviour | None] | None = None
        self.disconnects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.api_prefix}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def then(self, *behaviours: Behaviour) -> FakeLLMServer:
        self.script.extend(behaviours)
        return self

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    # --- wire format, per provider -----------------------------------------------------------
    @abstractmethod
    def authorised(self, headers: dict[str, str]) -> bool:
        """Whether the request carries this provider's valid key header."""

    @abstractmethod
    def error_response(self, kind: str, behaviour: Behaviour) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, JSON body) of an HTTP error of `kind`, shaped as the provider does."""

    @abstractmethod
    def stream_events(self, body: dict[str, Any], behaviour: Behaviour) -> Iterator[tuple[str, bool]]:
        """Yield (sse_text, is_token) pairs; a token event is where ttft/tps and faults apply."""

    @abstractmethod
    def error_event(self, behaviour: Behaviour) -> str:
        """The SSE error event the provider sends after a 200."""

    def json_response(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A non-streaming endpoint's JSON answer for `path`, or None to stream (the default)."""
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        return

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = Received(self.path, headers, body)
        fake.requests.append(received)
        if fake.on_request is not None:
            fake.on_request(received)
        behaviour = (fake.responder(body) if fake.responder is not None else None) or fake.next_behaviour()
        keep = fake.keep_alive and behaviour.fault is None and fake.json_response(self.path, body) is None
        self.close_connection = not keep
        if not fake.authorised(headers):
            return self._json(*fake.error_response("auth", behaviour))
        if behaviour.fault == "hang":
            return self._hang()
        if behaviour.fault in ("429", "500", "529", "auth", "quota", "bad_request"):
            return self._json(*fake.error_response(behaviour.fault, behaviour))
        payload = fake.json_response(self.path, body)
        if payload is not None:
            return self._json(200, {"x-request-id": "req_fake"}, payload)
        try:
            self._stream(body, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            fake.disconnects += 1

    def _json(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _hang(self) -> None:
        # Never answer; return when the client gives up or the server stops.
        while not self.server.fake._stop.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.fake.disconnects += 1
                return

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, body: dict[str, Any], behaviour: Behaviour) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        gap = 1 / behaviour.tokens_per_second if behaviour.tokens_per_second else 0
        sent_tokens = 0
        for event, is_token in fake.stream_events(body, behaviour):
            if is_token:
                wait = behaviour.ttft if sent_tokens == 0 else gap
                if wait and fake._stop.wait(wait):
                    return
                if behaviour.fault in ("drop", "error_event", "stall") and sent_tokens >= behaviour.fault_after_tokens:
                    return self._fault(behaviour)
                sent_tokens += 1
            self._chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _fault(self, behaviour: Behaviour) -> None:
        if behaviour.fault == "drop":  # the connection dies mid-body: an incomplete chunked read
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour.fault == "stall":  # the connection stays open, no more tokens come
            return self._hang()
        self._chunk(self.server.fake.error_event(behaviour))
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLMServer


def sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


__all__ = ["Behaviour", "FakeLLMServer", "Received", "sse"]
