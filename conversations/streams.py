"""Per-answer Redis stream buffers, for resume across reconnects and across server processes.

Every numbered frame of an answer (`delta`, `reset`, `citations`, `end`) is appended to the Redis
stream `…:stream:<message id>` under the explicit entry id `0-<seq>`. A visitor who reconnects
reads with XREAD after `0-<last seq seen>`: Redis returns exactly the entries with a greater id,
in order, and blocks for the live tail. So a resume cannot skip or repeat a frame, whichever
process produced it. Streams expire STREAM_BUFFER_TTL_SECONDS after their last TTL refresh, which
comes with the first frame, every TTL_REFRESH_EVERY frames (~2 s of streaming) and the `end` frame:
one EXPIRE per write would be a Redis command per frame for nothing.

A stop request from another process is a flag key the producer reads in the same round trip as
its writes (at most every STOP_CHECK_SECONDS per answer), so stopping costs nothing while nobody asks.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from django.conf import settings

from .redisconn import async_redis, key

FOLLOW_BLOCK_MS = 5000
BATCH_TICK_SECONDS = 0.02
TTL_REFRESH_EVERY = 50
STOP_CHECK_SECONDS = 0.25

logger = logging.getLogger(__name__)


def stream_key(message_id: int) -> str:
    return key("stream", message_id)


def stop_key(message_id: int) -> str:
    return key("stop", message_id)


async def stream_append(*, message_id: int, frames: list[dict[str, Any]]) -> bool:
    """Append one answer's numbered frames now; returns True if a stop was requested for it."""
    return bool(await _write_batch({message_id: frames}))


class StreamBatcher:
    """Writes the frames of every answer streaming in this process in one Redis round trip per tick.

    One pipeline per tick instead of one per frame per answer: at 1,000 concurrent answers that is
    ~50 round trips a second instead of ~25,000. Frames of one answer keep their order (one writer,
    ordered batches, explicit ids). An answer that wrote in a tick also learns, from the same
    round trip, whether a stop was requested for it (at most every STOP_CHECK_SECONDS).
    """

    def __init__(self) -> None:
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.on_stop: dict[int, Callable[[], None]] = {}
        self.stop_checked: dict[int, float] = {}
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def add(self, message_id: int, frames: list[dict[str, Any]], on_stop: Callable[[], None]) -> None:
        self.pending.setdefault(message_id, []).extend(frames)
        self.on_stop[message_id] = on_stop
        self.wakeup.set()

    async def _loop(self) -> None:
        while True:
            await self.wakeup.wait()
            await asyncio.sleep(BATCH_TICK_SECONDS)  # let the tick's frames gather
            self.wakeup.clear()
            batch, self.pending = self.pending, {}
            now = asyncio.get_running_loop().time()
            check = {m for m in batch if now - self.stop_checked.get(m, float("-inf")) >= STOP_CHECK_SECONDS}
            for message_id in check:
                self.stop_checked[message_id] = now
            # The callbacks of this batch's answers, as they are now: a later add (an `end`) may
            # replace or drop them while the round trip is under way.
            callbacks = {message_id: self.on_stop.get(message_id) for message_id in check}
            try:
                stopped = await _write_batch(batch, check_stop=check)
            except Exception:  # Redis unavailable: live clients still get their frames; resume will not
                logger.exception("could not buffer %s answers' frames", len(batch))
                continue
            for message_id in stopped:
                callback = callbacks.get(message_id)
                if callback is not None:
                    callback()
            for message_id, frames in batch.items():
                if frames and frames[-1].get("type") == "end":
                    self.on_stop.pop(message_id, None)
                    self.stop_checked.pop(message_id, None)


async def _write_batch(batch: dict[int, list[dict[str, Any]]], check_stop: set[int] | None = None) -> list[int]:
    """Append the frames; return the ids among `check_stop` (default: all) whose stop flag is set."""
    redis = async_redis()
    pipe = redis.pipeline(transaction=False)
    ids = list(batch)
    for message_id in ids:
        name = stream_key(message_id)
        refresh_ttl = False
        for frame in batch[message_id]:
            seq = frame["seq"]
            pipe.xadd(name, {"f": orjson.dumps(frame)}, id=f"0-{seq}")
            refresh_ttl = refresh_ttl or seq % TTL_REFRESH_EVERY == 1 or frame.get("type") == "end"
        if refresh_ttl:
            pipe.expire(name, settings.STREAM_BUFFER_TTL_SECONDS)
    checked = [m for m in ids if check_stop is None or m in check_stop]
    for message_id in checked:
        pipe.exists(stop_key(message_id))
    results = await pipe.execute()
    if not checked:
        return []
    return [message_id for message_id, flag in zip(checked, results[-len(checked) :], strict=True) if flag]


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamBatcher] = weakref.WeakKeyDictionary()


def stream_batcher() -> StreamBatcher:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None or batcher.task.done():
        batcher = _batchers[loop] = StreamBatcher()
    return batcher


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
            frame = orjson.loads(fields[b"f"])
            yield frame
            if frame.get("type") == "end":
                return
