"""CPU per streamed token in the provider layer: our SSE reading vs the SDKs' parsed streams.

Streams 60-token answers from the fake OpenAI and Anthropic servers (tests/fakes, as fast as the
socket goes) through `OpenAIProvider`/`AnthropicProvider.stream`, and through the official SDKs'
own parsed streams (`create(stream=True)`, one pydantic model per chunk) as the baseline. Reports
the event loop thread's CPU (time.thread_time, so the fake servers' threads do not count) per
1,000 tokens, and the ratio. CPU time, not wall time: usable on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

TITLE = "Provider stream decoding: CPU per 1,000 streamed tokens (ours vs the SDKs' parsed streams)"
TOKENS = 60


async def _ours(provider: Any, request: Any) -> int:
    from conversations.llm.base import TextDelta

    return len([item async for item in provider.stream(request) if isinstance(item, TextDelta)])


async def _sdk_openai(client: Any, params: dict[str, Any]) -> int:
    count = 0
    stream = await client.chat.completions.create(**params)
    async for chunk in stream:
        for choice in chunk.choices or []:
            if choice.delta and choice.delta.content:
                count += 1
    return count


async def _sdk_anthropic(client: Any, params: dict[str, Any]) -> int:
    count = 0
    stream = await client.messages.create(**params)
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta" and event.delta.text:
            count += 1
    return count


async def _measure(streams: int, run: Any) -> tuple[float, int]:
    await run()  # warm: connection pool, imports
    started = time.thread_time()
    tokens = 0
    for _ in range(streams):
        tokens += await run()
    return time.thread_time() - started, tokens


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import anthropic
    import openai

    from conversations.llm.anthropic_provider import AnthropicProvider, anthropic_messages
    from conversations.llm.base import ChatMessage, ChatRequest, Timeouts
    from conversations.llm.http import shared_http_client
    from conversations.llm.openai_provider import OpenAIProvider
    from tests.fakes.anthropic_server import FakeAnthropic
    from tests.fakes.base import Behaviour
    from tests.fakes.openai_server import FakeOpenAI

    streams = 50 if args.quick else 300
    text = "".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)} " for i in range(TOKENS))
    timeouts = Timeouts(connect=10, first_token=30, idle=30)
    request = ChatRequest(
        model="gpt-4o-mini",
        system="Answer briefly.",
        messages=[ChatMessage("user", "Tell me about the product.")],
        max_tokens=512,
        temperature=0.2,
    )
    rows: list[dict[str, Any]] = []
    with FakeOpenAI(api_key="k") as fake_openai, FakeAnthropic(api_key="k") as fake_anthropic:
        fake_openai.default = fake_anthropic.default = Behaviour(text=text)

        async def measure_all() -> None:
            ours = OpenAIProvider(api_key="k", base_url=fake_openai.base_url, timeouts=timeouts)
            sdk = openai.AsyncOpenAI(api_key="k", base_url=fake_openai.base_url, http_client=shared_http_client())
            params = ours._params(request)
            cases = [("openai", "ours (raw SSE + orjson)", lambda: _ours(ours, request))]
            cases.append(("openai", "SDK parsed stream", lambda: _sdk_openai(sdk, params)))
            claude = ChatRequest(**{**request.__dict__, "model": "claude-haiku-4-5"})
            ours_a = AnthropicProvider(api_key="k", base_url=fake_anthropic.base_url, timeouts=timeouts)
            sdk_a = anthropic.AsyncAnthropic(
                api_key="k", base_url=fake_anthropic.base_url, http_client=shared_http_client()
            )
            params_a = {
                "model": claude.model,
                "system": claude.system,
                "messages": anthropic_messages(claude.messages),
                "max_tokens": claude.max_tokens,
                "stream": True,
            }
            cases.append(("anthropic", "ours (raw SSE + orjson)", lambda: _ours(ours_a, claude)))
            cases.append(("anthropic", "SDK parsed stream", lambda: _sdk_anthropic(sdk_a, params_a)))
            for provider, how, case in cases:
                cpu, tokens = await _measure(streams, case)
                rows.append(
                    {
                        "provider": provider,
                        "reader": how,
                        "streams": streams,
                        "tokens": tokens,
                        "cpu_s_per_1k_tokens": cpu / tokens * 1000,
                        "cpu_ms_per_stream": cpu / streams * 1000,
                    }
                )
            for provider in ("openai", "anthropic"):
                ours_row, sdk_row = [r for r in rows if r["provider"] == provider]
                ours_row["vs_sdk"] = ours_row["cpu_s_per_1k_tokens"] / sdk_row["cpu_s_per_1k_tokens"]
                sdk_row["vs_sdk"] = 1.0

        asyncio.run(measure_all())
    return rows
