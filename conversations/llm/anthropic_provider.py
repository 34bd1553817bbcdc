"""Anthropic Messages streaming: the official SDK makes the request (retries off, explicit timeouts),
we read the events (conversations/llm/sse.py says why), with the SDK's rules: `ping` and unnamed
events are skipped, and an `error` event after the 200 raises `anthropic.APIStatusError` (status
200) with the event's JSON as its body."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import orjson

from .base import ChatMessage, ChatRequest, StreamItem, TextDelta, Timeouts, Usage
from .errors import classify
from .http import cached_sdk_client
from .sse import drain, sse_events


def anthropic_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """Messages must alternate and start with the user: merge neighbours with the same role."""
    out: list[dict[str, str]] = []
    for message in messages:
        if out and out[-1]["role"] == message.role:
            out[-1]["content"] += "\n\n" + message.content
        else:
            out.append({"role": message.role, "content": message.content})
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": "(conversation continues)"})
    return out


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None, timeouts: Timeouts, guarded: bool = False) -> None:
        """`guarded`: base_url was set by a tenant, so requests go through the egress guard (llm.http)."""
        self.client = cached_sdk_client(
            (anthropic.AsyncAnthropic, api_key, base_url or None, timeouts),
            lambda http: anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url or None,
                max_retries=0,
                timeout=anthropic.Timeout(
                    connect=timeouts.connect,
                    read=max(timeouts.first_token, timeouts.idle) + 1,
                    write=10.0,
                    pool=timeouts.connect,
                ),
                http_client=http,
            ),
            guarded=guarded,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        params: dict[str, Any] = {
            "model": request.model,
            "system": request.system,
            "messages": anthropic_messages(request.messages),
            "max_tokens": request.max_tokens,
            # The Messages API of SDK 2.x no longer takes temperature/top_p: the model decides.
            "stream": True,
        }
        tokens_in = tokens_out = 0
        try:
            async with self.client.messages.with_streaming_response.create(**params) as raw:
                response = raw.http_response
                async with contextlib.aclosing(sse_events(response)) as events:
                    async for name, data in events:
                        if name is None or name == b"ping":
                            continue
                        if name == b"error":
                            raise _stream_error(data, response)
                        event = orjson.loads(data)
                        kind = event.get("type")
                        if kind == "content_block_delta":
                            delta = event.get("delta") or {}
                            if delta.get("type") == "text_delta" and delta.get("text"):
                                yield TextDelta(delta["text"])
                        elif kind == "message_start":
                            usage = (event.get("message") or {}).get("usage") or {}
                            tokens_in = usage.get("input_tokens") or 0
                            tokens_out = usage.get("output_tokens") or 0
                        elif kind == "message_delta" and event.get("usage") is not None:
                            tokens_out = event["usage"].get("output_tokens") or tokens_out
                        elif kind == "message_stop":
                            await drain(events)
                            break
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            raise classify(exc, provider=self.name) from exc
        yield Usage(tokens_in, tokens_out)

    async def aclose(self) -> None:
        # The connection pool is shared (conversations.llm.http): closing it here would break other turns.
        return None


def _stream_error(data: bytes, response: httpx2.Response) -> anthropic.APIStatusError:
    """The exception the SDK raises for an `error` event after the 200 (classified by errors.classify)."""
    try:
        body: Any = orjson.loads(data)
        message = f"{body}"
    except orjson.JSONDecodeError:
        body = message = data.decode("utf-8", "replace") or f"Error code: {response.status_code}"
    return anthropic.APIStatusError(message, response=response, body=body)
