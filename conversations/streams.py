"""Per-answer Redis stream buffers, for resume across reconnects and across server processes.

The numbered frames of an answer (`delta`, `reset`, `citations`, `end`) are appended to the Redis
stream `…:stream:<message id>` in batches: one entry per write, with the explicit entry id
`0-<seq of its last frame>` and the batch's frames, in order, as one JSON list. A visitor who
reconnects reads with XREAD after `0-<last seq seen>`: Redis returns every entry whose last frame
is newer, in order, and blocks for the live tail; the reader drops the frames of the first entry
it has already seen. So a resume cannot skip or repeat a frame, whichever process produced it.

An answer's frames are written at most every RESUME_FLUSH_SECONDS (its `end` at the next tick):
three XADDs for a 2 s answer instead of one per frame. A resuming visitor may so wait up to
that long for the newest frames; a live one never does (the relay sends to it directly). Streams
expire STREAM_BUFFER_TTL_SECONDS after their first write and their `end`.

A stop request from another process is a flag key; the writer reads the flags of every answer it
writes in a tick with one MGET (at most every STOP_CHECK_SECONDS per answer), so stopping costs
nothing while nobody asks.
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
RESUME_FLUSH_SECONDS = 1.0
STOP_CHECK_SECONDS = 1.0

logger = logging.getLogger(__name__)


def stream_key(message_id: int) -> str:
    return key("stream", message_id)


def stop_key(message_id: int) -> str:
    return key("stop", message_id)


async def stream_append(*, message_id: int, frames: list[dict[str, Any]]) -> bool:
    """Append one answer's numbered frames now (one entry); returns True if a stop was requested for it."""
    return bool(await _write_batch({message_id: frames}, first={message_id}))


class StreamBatcher:
    """Writes the frames of every answer streaming in this process, one Redis round trip per tick.

    Each answer's frames wait in memory until RESUME_FLUSH_SECONDS after its previous write (an
    `end` goes at the next tick), then go as one XADD. Frames of one answer keep their order (one
    writer, ordered batches, increasing explicit ids). An answer that wrote in a tick also learns,
    from the same round trip, whether a stop was requested for it (at most every STOP_CHECK_SECONDS).
    """

    def __init__(self) -> None:
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.on_stop: dict[int, Callable[[], None]] = {}
        self.stop_checked: dict[int, float] = {}
        self.written_at: dict[int, float] = {}
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def add(self, message_id: int, frames: list[dict[str, Any]], on_stop: Callable[[], None]) -> None:
        self.pending.setdefault(message_id, []).extend(frames)
        self.on_stop[message_id] = on_stop
        self.wakeup.set()

    def _due(self, now: float) -> dict[int, list[dict[str, Any]]]:
        """The answers to write this tick: ended ones, new ones, and those last written long enough ago."""
        batch = {}
        for message_id, frames in self.pending.items():
            ended = frames[-1].get("type") == "end"
            if ended or now - self.written_at.get(message_id, float("-inf")) >= RESUME_FLUSH_SECONDS:
                batch[message_id] = frames
        for message_id in batch:
            del self.pending[message_id]
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            await asyncio.sleep(BATCH_TICK_SECONDS)  # let the tick's frames gather
            now = loop.time()
            batch = self._due(now)
            if not self.pending:
                self.wakeup.clear()  # else tick again for the answers still waiting
            if not batch:
                continue
            first = {m for m in batch if m not in self.written_at}
            for message_id in batch:
                self.written_at[message_id] = now
            check = {m for m in batch if now - self.stop_checked.get(m, float("-inf")) >= STOP_CHECK_SECONDS}
            for message_id in check:
                self.stop_checked[message_id] = now
            # The callbacks of this batch's answers, as they are now: a later add (an `end`) may
            # replace or drop them while the round trip is under way.
            callbacks = {message_id: self.on_stop.get(message_id) for message_id in check}
            for message_id, frames in batch.items():
                if frames[-1].get("type") == "end":
                    for state in (self.on_stop, self.stop_checked, self.written_at):
                        state.pop(message_id, None)
            try:
                stopped = await _write_batch(batch, first=first, check_stop=check)
            except Exception:  # Redis unavailable: live clients still get their frames; resume will not
                logger.exception("could not buffer %s answers' frames", len(batch))
                continue
            for message_id in stopped:
                callback = callbacks.get(message_id)
                if callback is not None:
                    callback()


async def _write_batch(
    batch: dict[int, list[dict[str, Any]]], *, first: set[int], check_stop: set[int] | None = None
) -> list[int]:
    """Append each answer's frames as one entry; return the ids among `check_stop` (default: all)
    whose stop flag is set. `first`: answers whose stream this write creates (they get their TTL)."""
    redis = async_redis()
    pipe = redis.pipeline(transaction=False)
    ids = [m for m in batch if batch[m]]
    for message_id in ids:
        name = stream_key(message_id)
        frames = batch[message_id]
        pipe.xadd(name, {"f": orjson.dumps(frames)}, id=f"0-{frames[-1]['seq']}")
        if message_id in first or frames[-1].get("type") == "end":
            pipe.expire(name, settings.STREAM_BUFFER_TTL_SECONDS)
    checked = [m for m in ids if check_stop is None or m in check_stop]
    if checked:
        pipe.mget([stop_key(m) for m in checked])
    results = await pipe.execute()
    if not checked:
        return []
    return [message_id for message_id, flag in zip(checked, results[-1], strict=True) if flag]


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
    last_seq = max(0, int(last_seq))
    last_id = f"0-{last_seq}"
    while True:
        response = await redis.xread({name: last_id}, count=500, block=block_ms)
        if not response:
            yield None
            continue
        for entry_id, fields in response[0][1]:
            last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            frames = orjson.loads(fields[b"f"])
            for frame in frames if isinstance(frames, list) else [frames]:
                if frame["seq"] <= last_seq:
                    continue  # an entry ends after last_seq but may begin before it
                last_seq = frame["seq"]
                yield frame
                if frame.get("type") == "end":
                    return
