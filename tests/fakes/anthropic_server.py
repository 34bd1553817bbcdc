"""A fake Anthropic Messages server: the real SSE event sequence (with pings), usage and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Behaviour, FakeLLMServer, sse

ERRORS = {
    "429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    "quota": (400, "invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "500": (500, "api_error", "Internal server error"),
    "529": (529, "overloaded_error", "Overloaded"),
    "bad_request": (400, "invalid_request_error", "messages: roles must alternate between user and assistant"),
}


class FakeAnthropic(FakeLLMServer):
    def authorised(self, headers: dict[str, str]) -> bool:
        # SDK 2.x sends the key as a bearer token; older clients send x-api-key.
        return self.api_key in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))

    def error_response(self, kind: str, behaviour: Behaviour) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, type_, message = ERRORS[kind]
        headers = {"request-id": "req_fake"}
        if behaviour.retry_after is not None:
            headers["retry-after"] = behaviour.retry_after
        return status, headers, {"type": "error", "error": {"type": behaviour.error_type or type_, "message": message}}

    def error_event(self, behaviour: Behaviour) -> str:
        error = {"type": behaviour.error_type or "overloaded_error", "message": "Overloaded"}
        return sse({"type": "error", "error": error}, event="error")

    def stream_events(self, body: dict[str, Any], behaviour: Behaviour) -> Iterator[tuple[str, bool]]:
        prompt = (
            len(str(body.get("system", ""))) + sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        ) // 4
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body.get("model", "claude-haiku-4-5"),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        yield sse({"type": "message_start", "message": message}, "message_start"), False
        yield (
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            False,
        )
        yield sse({"type": "ping"}, "ping"), False
        tokens = behaviour.tokens(body)
        for token in tokens:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}}
            yield sse(delta, "content_block_delta"), True
        yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False
        end = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(tokens)},
        }
        yield sse(end, "message_delta"), False
        yield sse({"type": "message_stop"}, "message_stop"), False
