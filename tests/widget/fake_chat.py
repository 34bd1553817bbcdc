"""A scripted stand-in for the chat server, inside the page: Playwright answers the session
request and the WebSocket exactly as docs/protocol.md describes. It lets the browser tests pin
the widget's behaviour (streaming, resume, stop, errors, hostile answers) frame by frame; the
live-server tests prove the same widget against the real daphne."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "content-type",
}


@dataclass
class FakeChat:
    bot_id: str = "bot_fake"
    name: str = "Acme help"
    widget: dict[str, Any] = field(default_factory=lambda: {"title": "Acme help", "primary_color": "#0f766e"})
    welcome: str = "Hi! Ask me anything about Acme gadgets."
    history: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[str] = field(default_factory=lambda: ["The warranty ", "lasts **two years** ", "[1]."])
    citations: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "n": 1,
                "title": "Warranty terms",
                "page": 3,
                "url": "https://docs.example.com/warranty",
                "snippet": "Every Acme gadget carries a two-year warranty from the date of purchase.",
            },
            {
                "n": 2,
                "title": "Returns FAQ",
                "page": None,
                "url": "",
                "snippet": "Returns are accepted within 30 days.",
            },
        ]
    )
    # "complete": stream the whole answer; "hold": stream the first chunk and wait (for stop);
    # "drop": close the first socket after `drop_after` frames, then let resume replay the rest;
    # "lose": close the first socket as soon as the question arrives, before any `start`;
    # "busy": refuse the first question with server_busy (retry_after 1), then answer.
    mode: str = "complete"
    drop_after: int = 2
    error: dict[str, Any] | None = None
    end_status: str = "complete"
    end_content: str | None = None
    session_error: tuple[int, dict[str, Any]] | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    session_bodies: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    _answers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 100

    def install(self, page: Any, widget_origin: str) -> FakeChat:
        page.route(f"{widget_origin}/widget/*/session", self._session)
        page.route_web_socket(re.compile(r"/ws/widget/"), self._connect)
        return self

    def bot(self) -> dict[str, Any]:
        return {"name": self.name, "welcome_message": self.welcome, "widget": self.widget}

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == kind]

    # -- HTTP
    def _session(self, route: Any) -> None:
        request = route.request
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=CORS)
            return
        self.session_bodies.append(json.loads(request.post_data or "{}"))
        if self.session_error:
            status, body = self.session_error
            route.fulfill(status=status, headers=CORS, json=body)
            return
        body = {"token": "tok", "expires_in": 900, "bot": self.bot(), "conversation_id": None, "history": self.history}
        route.fulfill(status=200, headers=CORS, json=body)

    # -- WebSocket
    def _connect(self, ws: Any) -> None:
        self.connections += 1
        number = self.connections
        ws.on_message(lambda raw: self._frame(ws, number, json.loads(raw)))

    def _frame(self, ws: Any, connection: int, frame: dict[str, Any]) -> None:
        self.received.append(frame)
        kind = frame.get("type")
        if kind == "message":
            self._answer(ws, connection, frame)
        elif kind == "resume":
            frames = self._answers.get(frame["message_id"])
            if frames is None:
                ws.send(
                    json.dumps(
                        {
                            "type": "error",
                            "code": "not_found",
                            "message": "No such message.",
                            "message_id": frame["message_id"],
                        }
                    )
                )
                return
            for f in frames:
                if f["seq"] > frame["last_seq"]:
                    ws.send(json.dumps(f))
        elif kind == "stop":
            frames = self._answers[frame["message_id"]]
            text = "".join(f.get("text", "") for f in frames if f["type"] == "delta")
            ws.send(
                json.dumps(
                    {
                        "type": "end",
                        "message_id": frame["message_id"],
                        "seq": len(frames) + 1,
                        "status": "partial",
                        "usage": {},
                        "content": text,
                    }
                )
            )
        elif kind == "feedback":
            ws.send(json.dumps({"type": "feedback_ok", "message_id": frame["message_id"]}))

    def _answer(self, ws: Any, connection: int, frame: dict[str, Any]) -> None:
        if self.error:
            ws.send(json.dumps({"type": "error", **self.error}))
            return
        if self.mode == "busy" and len(self.sent("message")) == 1:
            ws.send(
                json.dumps(
                    {
                        "type": "error",
                        "code": "server_busy",
                        "message": "The assistant is busy right now. Please try again in 1 seconds.",
                        "retry_after": 1,
                        "client_id": frame.get("client_id"),
                    }
                )
            )
            return
        if self.mode == "lose" and connection == 1:
            # The socket dies after the question left and before `start` came back.
            ws.close(code=4000, reason="lost by the test")
            return
        mid = self._next_id
        self._next_id += 2
        ws.send(
            json.dumps(
                {
                    "type": "start",
                    "message_id": mid,
                    "user_message_id": mid - 1,
                    "conversation_id": 1,
                    "client_id": frame.get("client_id"),
                }
            )
        )
        frames = [{"type": "delta", "message_id": mid, "seq": i + 1, "text": t} for i, t in enumerate(self.chunks)]
        frames.append({"type": "citations", "message_id": mid, "seq": len(frames) + 1, "items": self.citations})
        content = "".join(self.chunks) if self.end_content is None else self.end_content
        frames.append(
            {
                "type": "end",
                "message_id": mid,
                "seq": len(frames) + 1,
                "status": self.end_status,
                "usage": {"tokens_in": 10, "tokens_out": 12},
                "content": content,
            }
        )
        self._answers[mid] = frames
        if self.mode == "hold":
            self._answers[mid] = frames[:1]
            ws.send(json.dumps(frames[0]))
            return
        if self.mode == "drop" and connection == 1:
            for f in frames[: self.drop_after]:
                ws.send(json.dumps(f))
            ws.close(code=4000, reason="dropped by the test")
            return
        for f in frames:
            ws.send(json.dumps(f))


def snippet(widget_origin: str, bot_id: str, extra: str = "") -> str:
    return f'<script src="{widget_origin}/static/widget/embed.js" data-bot="{bot_id}" async{extra}></script>'
