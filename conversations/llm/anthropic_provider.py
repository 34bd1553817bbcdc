"""Anthropic Messages streaming through the official SDK (retries off, explicit timeouts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from .base import ChatMessage, ChatRequest, StreamItem, TextDelta, Timeouts, Usage
from .errors import classify
from .http import shared_http_client


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

    def __init__(self, *, api_key: str, base_url: str | None, timeouts: Timeouts) -> None:
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or None,
            max_retries=0,
            timeout=anthropic.Timeout(
                connect=timeouts.connect,
                read=max(timeouts.first_token, timeouts.idle) + 1,
                write=10.0,
                pool=timeouts.connect,
            ),
            http_client=shared_http_client(),
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
        stream = None
        try:
            stream = await self.client.messages.create(**params)
            async for event in stream:
                if event.type == "message_start":
                    tokens_in = event.message.usage.input_tokens or 0
                    tokens_out = event.message.usage.output_tokens or 0
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if event.delta.text:
                        yield TextDelta(event.delta.text)
                elif event.type == "message_delta" and event.usage is not None:
                    tokens_out = event.usage.output_tokens or tokens_out
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            raise classify(exc, provider=self.name) from exc
        finally:
            if stream is not None:
                await stream.close()
        yield Usage(tokens_in, tokens_out)

    async def aclose(self) -> None:
        # The connection pool is shared (conversations.llm.http): closing it here would break other turns.
        return None
