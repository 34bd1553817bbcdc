"""One HTTP connection pool per event loop, shared by every provider client.

Building an SDK client with its own pool costs ~100 ms+ (TLS context, CA bundle) and a new
connection per turn; sharing one pool per loop makes a client ~0.2 ms and keeps connections
warm. Pools cannot cross event loops, hence the per-loop map (daphne has one loop per process;
each async_to_sync call in a command or test gets its own, which is collected with it).

The SDK clients themselves are kept too (`cached_sdk_client`), per loop and per key, base URL and
timeouts: a new client per turn re-detects the platform for its headers in a worker thread
(`asyncify(get_platform)`) and rebuilds its options, several ms of CPU per turn at 1,000 turns.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import httpx2

T = TypeVar("T")
SDK_CLIENTS_PER_LOOP = 256

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = weakref.WeakKeyDictionary()
LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)


_sdk_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[Hashable, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def cached_sdk_client(key: Hashable, build: Callable[[httpx2.AsyncClient], T]) -> T:
    """The running loop's SDK client for `key` (built on the shared pool by `build`), least recently
    used dropped past SDK_CLIENTS_PER_LOOP. A client whose pool was closed is rebuilt."""
    http = shared_http_client()
    clients = _sdk_clients.setdefault(asyncio.get_running_loop(), OrderedDict())
    entry = clients.get(key)
    if entry is not None and entry[0] is http:
        clients.move_to_end(key)
        return entry[1]
    client = build(http)
    clients[key] = (http, client)
    if len(clients) > SDK_CLIENTS_PER_LOOP:
        clients.popitem(last=False)
    return client


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
    _sdk_clients.pop(asyncio.get_running_loop(), None)
    client = _pools.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
