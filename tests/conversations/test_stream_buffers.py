"""Per-answer Redis stream buffers: a resume gets exactly the frames it missed, then the live tail."""

from __future__ import annotations

import asyncio

from conversations.streams import stream_append, stream_follow, stream_request_stop


def _frames(first: int, last: int, message_id: int = 7) -> list[dict]:
    return [{"type": "delta", "message_id": message_id, "seq": s, "text": f"t{s} "} for s in range(first, last + 1)]


async def _collect(message_id: int, last_seq: int) -> list[dict]:
    return [f async for f in stream_follow(message_id=message_id, last_seq=last_seq, block_ms=200) if f is not None]


def test_following_from_any_point_gives_the_rest_without_gaps_or_duplicates():
    async def scenario() -> None:
        await stream_append(message_id=7, frames=_frames(1, 10))
        await stream_append(message_id=7, frames=[{"type": "end", "message_id": 7, "seq": 11, "status": "complete"}])
        for last_seq in (0, 1, 5, 10):
            seqs = [f["seq"] for f in await _collect(7, last_seq)]
            assert seqs == list(range(last_seq + 1, 12))

    asyncio.run(scenario())


def test_a_follower_gets_the_live_tail_as_it_is_written():
    async def scenario() -> list[int]:
        await stream_append(message_id=8, frames=_frames(1, 3, 8))
        follower = asyncio.create_task(_collect(8, 2))
        for seq in range(4, 9):
            await asyncio.sleep(0.01)
            await stream_append(message_id=8, frames=_frames(seq, seq, 8))
        await stream_append(message_id=8, frames=[{"type": "end", "message_id": 8, "seq": 9}])
        return [f["seq"] for f in await follower]

    assert asyncio.run(scenario()) == [3, 4, 5, 6, 7, 8, 9]


def test_a_stop_request_reaches_the_producer_on_its_next_write():
    async def scenario() -> tuple[bool, bool]:
        before = await stream_append(message_id=9, frames=_frames(1, 1, 9))
        await stream_request_stop(message_id=9)
        after = await stream_append(message_id=9, frames=_frames(2, 2, 9))
        return before, after

    assert asyncio.run(scenario()) == (False, True)


def test_a_quiet_stream_yields_none_so_the_follower_can_check_liveness():
    async def scenario() -> object:
        async for frame in stream_follow(message_id=10, last_seq=0, block_ms=50):
            return frame
        return "ended"

    assert asyncio.run(scenario()) is None


def test_the_batcher_writes_many_answers_in_order_and_reports_stops():
    from conversations.streams import stream_batcher

    async def scenario() -> tuple[dict[int, list[int]], list[int]]:
        stopped: list[int] = []
        batcher = stream_batcher()
        await stream_request_stop(message_id=22)
        for seq in range(1, 6):
            for message_id in (21, 22, 23):
                batcher.add(message_id, _frames(seq, seq, message_id), lambda m=message_id: stopped.append(m))
            await asyncio.sleep(0.005)
        for message_id in (21, 22, 23):
            batcher.add(message_id, [{"type": "end", "message_id": message_id, "seq": 6}], lambda: None)
        seqs = {m: [f["seq"] for f in await _collect(m, 0)] for m in (21, 22, 23)}
        return seqs, sorted(set(stopped))

    seqs, stopped = asyncio.run(scenario())
    assert seqs == {21: [1, 2, 3, 4, 5, 6], 22: [1, 2, 3, 4, 5, 6], 23: [1, 2, 3, 4, 5, 6]}
    assert stopped == [22]
