"""The providers' SSE reader (conversations/llm/sse.py) on the byte shapes real servers send."""

from __future__ import annotations

import asyncio

import httpx2

from conversations.llm.sse import sse_events


def _events(*chunks: bytes) -> list[tuple[bytes | None, bytes]]:
    async def body():
        for chunk in chunks:
            yield chunk

    async def read() -> list[tuple[bytes | None, bytes]]:
        response = httpx2.Response(200, content=body())
        return [event async for event in sse_events(response)]

    return asyncio.run(read())


def test_events_split_anywhere_across_network_reads_come_out_whole():
    raw = b'data: {"a":1}\n\nevent: message_delta\ndata: {"b":2}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    expected = [(None, b'{"a":1}'), (b"message_delta", b'{"b":2}'), (None, b"[DONE]")]
    for size in (1, 2, 3, 7, len(raw)):
        assert _events(*(raw[i : i + size] for i in range(0, len(raw), size))) == expected


def test_crlf_cr_and_multi_line_data_follow_the_sse_spec():
    assert _events(b"data: x\r\n", b"\r\ndata:y\r\rdata: a\ndata: b\n\n") == [
        (None, b"x"),
        (None, b"y"),
        (None, b"a\nb"),
    ]


def test_a_last_event_without_its_blank_line_is_still_delivered():
    assert _events(b"data: 1\n\ndata: 2") == [(None, b"1"), (None, b"2")]
