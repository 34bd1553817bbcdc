"""A fake OpenAI server: Chat Completions (the real SSE chunk shapes, usage, error bodies) and
Embeddings (the real response shape, float or base64 encoding)."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import time
from collections.abc import Iterator
from typing import Any

from .base import Behaviour, FakeLLMServer, sse

ERRORS = {
    "429": (429, "Rate limit reached for requests. Please try again shortly.", "requests", "rate_limit_exceeded"),
    "quota": (
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    "auth": (
        401,
        "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    "500": (500, "The server had an error while processing your request. Sorry about that!", "server_error", None),
    "529": (503, "The engine is currently overloaded, please try again later.", "server_error", None),
    "bad_request": (400, "Invalid value for 'temperature'.", "invalid_request_error", None),
}


def fake_embedding(text: str, dimensions: int = 1536) -> list[float]:
    """A deterministic, L2-normalised bag-of-words vector: texts sharing words are close, so
    retrieval over these vectors behaves like retrieval over real ones for simple queries."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    if not any(vector):  # no words (or they cancelled out): still a valid unit vector
        vector[0] = 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


class FakeOpenAI(FakeLLMServer):
    api_prefix = "/v1"

    def json_response(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if not path.endswith("/embeddings"):
            return None
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        dimensions = int(body.get("dimensions") or 1536)
        data = []
        for index, text in enumerate(texts):
            vector = fake_embedding(str(text), dimensions)
            if body.get("encoding_format") == "base64":  # what the SDK asks for by default
                encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body.get("model", "text-embedding-3-small"), "usage": usage}

    def authorised(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def error_response(self, kind: str, behaviour: Behaviour) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, message, type_, code = ERRORS[kind]
        headers = {"x-request-id": "req_fake"}
        if behaviour.retry_after is not None:
            headers["retry-after"] = behaviour.retry_after
        error = {"message": message, "type": behaviour.error_type or type_, "param": None, "code": code}
        return status, headers, {"error": error}

    def error_event(self, behaviour: Behaviour) -> str:
        return sse(
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": behaviour.error_type or "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )

    def stream_events(self, body: dict[str, Any], behaviour: Behaviour) -> Iterator[tuple[str, bool]]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice], "usage": None})

        yield chunk({"role": "assistant", "content": "", "refusal": None}), False
        tokens = behaviour.tokens(body)
        for token in tokens:
            yield chunk({"content": token}), True
        yield chunk({}, "stop"), False
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
            usage = {"prompt_tokens": prompt, "completion_tokens": len(tokens), "total_tokens": prompt + len(tokens)}
            yield sse({**base, "choices": [], "usage": usage}), False
        yield sse("[DONE]"), False
