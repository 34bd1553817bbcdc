"""Per-answer Redis stream buffers, for resume across reconnects and across server processes.

Every numbered frame of an answer (`delta`, `reset`, `citations`, `end`) is appended to the Redis
stream `…:stream:<message id>` under the explicit entry id `0-<seq>`. A visitor who reconnects
reads with XREAD after `0-<last seq seen>`: Redis returns exactly the entries with a greater id,
in order, and blocks for the live tail. So a resume cannot skip or repeat a frame, whichever
process produced it. Streams expire STREAM_BUFFER_TTL_SECONDS after their last write.

A stop request from another process is a flag key the producer reads in the same round trip as
its writes, so stopping costs nothing while nobody asks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from .redisconn import async_redis, key

FOLLOW_BLOCK_MS = 5000


def stream_key(message_id: int) -> str:
    return key("stream", message_id)


def stop_key(message_id: int) -> str:
    return key("stop", message_id)


async def stream_append(*, message_id: int, frames: list[dict[str, Any]]) -> bool:
    """Append numbered frames in one round trip; returns True if a stop was requested meanwhile."""
    redis = async_redis()
    name = stream_key(message_id)
    pipe = redis.pipeline(transaction=False)
    for frame in frames:
        pipe.xadd(name, {"f": json.dumps(frame, separators=(",", ":"))}, id=f"0-{frame['seq']}")
    pipe.expire(name, settings.STREAM_BUFFER_TTL_SECONDS)
    pipe.exists(stop_key(message_id))
    results = await pipe.execute()
    return bool(results[-1])


async def stream_exists(*, message_id: int) -> bool:
    return bool(await async_redis().exists(stream_key(message_id)))


async def stream_request_stop(*, message_id: int) -> None:
    """Ask whichever process is producing this answer to stop it."""
    await async_redis().set(stop_key(message_id), "1", ex=settings.STREAM_BUFFER_TTL_SECONDS)


async def stream_clear_stop(*, message_id: int) -> None:
    await async_redis().delete(stop_key(message_id))


async def stream_follow(*, message_id: int, last_seq: int, block_ms: int = FOLLOW_BLOCK_MS) -> AsyncIterator[Any]:
    """Yield the frames after `last_seq`, then the live tail, until the `end` frame.

    Yields None each time `block_ms` passes with nothing new, so the caller can check whether
    the producer is still alive (the stream may never get an `end` if its server died).
    """
    redis = async_redis()
    name = stream_key(message_id)
    last_id = f"0-{max(0, int(last_seq))}"
    while True:
        response = await redis.xread({name: last_id}, count=500, block=block_ms)
        if not response:
            yield None
            continue
        for entry_id, fields in response[0][1]:
            last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            frame = json.loads(fields[b"f"])
            yield frame
            if frame.get("type") == "end":
                return
