"""OpenAI Chat Completions streaming: the official SDK makes the request, we read the stream.

The SDK's own retries are off (max_retries=0) and every timeout is explicit: the failover
chain decides what happens next, not a 600 s default. The SDK sends the request and raises its
usual errors for HTTP failures; the streamed chunks are decoded here (conversations/llm/sse.py
says why), with the SDK's rules: `[DONE]` ends the stream, and a chunk carrying `error` after the
200 raises `openai.APIError` with that error as its body.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import orjson
from openai._base_client import make_request_options
from openai._constants import RAW_RESPONSE_HEADER
from openai._response import AsyncResponseContextManager
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .base import ChatRequest, StreamItem, TextDelta, Timeouts, Usage
from .errors import classify
from .http import cached_sdk_client
from .sse import drain, sse_events
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

    def __init__(self, *, api_key: str, base_url: str | None, timeouts: Timeouts, guarded: bool = False) -> None:
        """`guarded`: base_url was set by a tenant, so requests go through the egress guard (llm.http)."""
        self.client = cached_sdk_client(
            (openai.AsyncOpenAI, api_key, base_url or None, timeouts),
            lambda http: openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url or None,
                max_retries=0,
                timeout=sdk_timeout(timeouts),
                http_client=http,
            ),
            guarded=guarded,
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

    def _post(self, params: dict[str, Any]) -> AsyncResponseContextManager[Any]:
        """`client.chat.completions.with_streaming_response.create(**params)` without its body transform.

        create() walks every message through the SDK's TypedDict transform (aliases, dates, files),
        ~0.5 ms per message of CPU before the request leaves, on the path to the first token. Our
        body is plain JSON types with the API's own field names, which the transform returns
        unchanged; the SDK still builds the request, sends it and raises its usual errors.
        """
        # Built per call, as create() does: the SDK keeps a reference to the headers it is given.
        options = make_request_options(extra_headers={RAW_RESPONSE_HEADER: "stream"}, security={"bearer_auth": True})
        return AsyncResponseContextManager(
            self.client.post(
                "/chat/completions",
                body=params,
                options=options,
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        usage: Usage | None = None
        produced: list[str] = []
        try:
            async with self._post(self._params(request)) as raw:
                response = raw.http_response
                async with contextlib.aclosing(sse_events(response)) as events:
                    async for _event, data in events:
                        if data.startswith(b"[DONE]"):
                            await drain(events)
                            break
                        chunk = orjson.loads(data)
                        if not isinstance(chunk, dict):
                            continue
                        if chunk.get("error"):
                            raise _stream_error(chunk["error"], response)
                        counts = chunk.get("usage")
                        if isinstance(counts, dict):
                            usage = Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta")
                            text = delta.get("content") if delta else None
                            if text:
                                produced.append(text)
                                yield TextDelta(text)
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise classify(exc, provider=self.name) from exc
        if usage is None:  # servers that ignore stream_options: estimate, and say so
            prompt = request.system + "".join(m.content for m in request.messages)
            usage = Usage(estimate_tokens(prompt), estimate_tokens("".join(produced)), estimated=True)
        yield usage

    async def aclose(self) -> None:
        # The connection pool is shared (conversations.llm.http): closing it here would break other turns.
        return None


def _stream_error(error: Any, response: httpx2.Response) -> openai.APIError:
    """The exception the SDK raises for an error chunk after the 200 (classified by errors.classify)."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message, response.request, body=error)
