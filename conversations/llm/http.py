"""One HTTP connection pool per event loop, shared by every provider client.

Building an SDK client with its own pool costs ~100 ms+ (TLS context, CA bundle) and a new
connection per turn; sharing one pool per loop makes a client ~0.2 ms and keeps connections
warm. Pools cannot cross event loops, hence the per-loop map (daphne has one loop per process;
each async_to_sync call in a command or test gets its own, which is collected with it).
"""

from __future__ import annotations

import asyncio
import weakref

import httpx2

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = weakref.WeakKeyDictionary()
LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)


def shared_http_client() -> httpx2.AsyncClient:
    """The running loop's pool. Per-request timeouts are set by the SDK call, not here."""
    loop = asyncio.get_running_loop()
    client = _pools.get(loop)
    if client is None or client.is_closed:
        client = httpx2.AsyncClient(limits=LIMITS, follow_redirects=False, timeout=httpx2.Timeout(30.0))
        _pools[loop] = client
    return client


async def close_shared_http_client() -> None:
    """Close the running loop's pool. For short-lived loops (Celery tasks via async_to_sync),
    whose pools would otherwise keep the finished loop alive through idle connections."""
    client = _pools.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
