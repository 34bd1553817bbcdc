"""OpenAI Chat Completions streaming through the official SDK.

The SDK's own retries are off (max_retries=0) and every timeout is explicit: the failover
chain decides what happens next, not a 600 s default.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from .base import ChatRequest, StreamItem, TextDelta, Timeouts, Usage
from .errors import classify
from .http import shared_http_client
from .tokens import estimate_tokens

REASONING_MODELS = re.compile(r"^(o\d|gpt-5)")


def sdk_timeout(timeouts: Timeouts) -> openai.Timeout:
    # read is a backstop; the chain enforces first-token and idle-gap timeouts itself.
    return openai.Timeout(
        connect=timeouts.connect, read=max(timeouts.first_token, timeouts.idle) + 1, write=10.0, pool=timeouts.connect
    )


def openai_messages(request: ChatRequest) -> list[dict[str, str]]:
    return [{"role": "system", "content": request.system}] + [
        {"role": m.role, "content": m.content} for m in request.messages
    ]


class OpenAIProvider:
    name = "openai"
    # Ollama, vLLM and LM Studio know max_tokens; OpenAI's newer models want max_completion_tokens.
    max_tokens_param = "max_completion_tokens"

    def __init__(self, *, api_key: str, base_url: str | None, timeouts: Timeouts) -> None:
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or None,
            max_retries=0,
            timeout=sdk_timeout(timeouts),
            http_client=shared_http_client(),
        )

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": openai_messages(request),
            self.max_tokens_param: request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # Reasoning models (o-series, gpt-5) refuse any temperature but the default.
        if not (self.name == "openai" and REASONING_MODELS.match(request.model)):
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        return params

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        usage: Usage | None = None
        produced: list[str] = []
        stream = None
        try:
            stream = await self.client.chat.completions.create(**self._params(request))
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        produced.append(text)
                        yield TextDelta(text)
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise classify(exc, provider=self.name) from exc
        finally:
            if stream is not None:
                await stream.close()
        if usage is None:  # servers that ignore stream_options: estimate, and say so
            prompt = request.system + "".join(m.content for m in request.messages)
            usage = Usage(estimate_tokens(prompt), estimate_tokens("".join(produced)), estimated=True)
        yield usage

    async def aclose(self) -> None:
        # The connection pool is shared (conversations.llm.http): closing it here would break other turns.
        return None
