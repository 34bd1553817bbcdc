"""The baseline for benchmarks/streaming.py: a bare Channels consumer that streams the same frames
(same tokens, same pacing, same coalescing, same JSON shapes and encoder) with no database, Redis,
pipeline or provider. Served by daphne: `daphne benchmarks.bare_asgi:application`."""

from __future__ import annotations

import asyncio
import json
import os

import django
import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

TOKENS = int(os.environ.get("BENCH_TOKENS", "60"))
TOKENS_PER_SECOND = float(os.environ.get("BENCH_TPS", "30"))
TTFT = float(os.environ.get("BENCH_TTFT", "0.2"))
COALESCE = int(os.environ.get("STREAM_COALESCE_MS", "40")) / 1000


def answer_tokens() -> list[str]:
    return [f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)} " for i in range(TOKENS)]


class BareConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "no-channel-layer"  # like the app's consumer

    async def connect(self) -> None:
        self.message_id = 0
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        json.loads(text_data or "{}")
        self.message_id += 1
        asyncio.get_running_loop().create_task(self.stream(self.message_id))

    async def stream(self, message_id: int) -> None:
        loop = asyncio.get_running_loop()
        send = self.send

        def encode(frame: dict) -> str:  # as the app's consumer encodes its frames
            return orjson.dumps(frame).decode()

        await send(text_data=encode({"type": "start", "message_id": message_id}))
        seq, pending, last_flush, text = 0, [], float("-inf"), ""
        flush_at: float | None = None

        async def flush() -> None:
            nonlocal seq, pending, last_flush, flush_at
            flush_at = None
            if not pending:
                return
            seq += 1
            last_flush = loop.time()
            frame = {"type": "delta", "message_id": message_id, "seq": seq, "text": "".join(pending)}
            pending = []
            await send(text_data=encode(frame))

        # The app's coalescing (conversations/relay.py AnswerRelay._on_delta), so both send the same
        # frames: text goes out at once when the last frame is COALESCE old, otherwise a flush is due
        # COALESCE after the last one (the app's timer; here the same instant in this one coroutine).
        started = loop.time()
        for i, token in enumerate(answer_tokens()):
            due = started + TTFT + i / TOKENS_PER_SECOND
            if flush_at is not None and flush_at <= due:
                await asyncio.sleep(max(0.0, flush_at - loop.time()))
                await flush()
            await asyncio.sleep(max(0.0, due - loop.time()))
            pending.append(token)
            text += token
            if loop.time() - last_flush >= COALESCE:
                await flush()
            elif flush_at is None:
                flush_at = last_flush + COALESCE
        await flush()
        end = {"type": "end", "message_id": message_id, "seq": seq + 1, "status": "complete", "content": text}
        await send(text_data=encode(end))


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/bare/", BareConsumer.as_asgi())])})
