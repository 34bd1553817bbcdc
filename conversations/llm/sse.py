"""Server-Sent Events read straight off the HTTP response: (event name, data bytes) per event.

The providers keep the official SDKs for the request (auth, base URL, headers, HTTP errors,
timeouts) but read the stream themselves. The SDKs build a pydantic model per streamed chunk,
which cost ~1.3 ms of CPU per token, most of a streaming answer's CPU; decoding the `data:` JSON
with orjson costs a few microseconds. Lines end with LF, CRLF or CR (the SSE spec).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx2

DRAIN_SECONDS = 0.1


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[bytes | None, bytes]]:
    """Yield (event name or None, data) per event; comments and events without data are skipped."""
    buffer = b""
    event: bytes | None = None
    data: list[bytes] = []
    async for chunk in response.aiter_bytes():
        buffer += chunk
        # Only complete lines: up to the last LF, or a CR that is not the last byte (it may be CRLF).
        cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\r", 0, len(buffer) - 1))
        if cut < 0:
            continue
        complete, buffer = buffer[: cut + 1], buffer[cut + 1 :]
        for line in complete.splitlines():
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = None, []
                continue
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip()
            # ids, retry and ":" comments mean nothing for a one-shot completion
    for line in buffer.splitlines():
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
    if data:
        yield event, b"\n".join(data)


async def drain(events: AsyncIterator[object]) -> None:
    """Read what follows the last event (the chunked terminator) so HTTP/1.1 can reuse the
    connection; give up after DRAIN_SECONDS, as the SDKs do."""
    with contextlib.suppress(httpx2.HTTPError, TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in events:
                pass
