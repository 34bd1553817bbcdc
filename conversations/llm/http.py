"""One HTTP connection pool per event loop, shared by every provider client.

Building an SDK client with its own pool costs ~100 ms+ (TLS context, CA bundle) and a new
connection per turn; sharing one pool per loop makes a client ~0.2 ms and keeps connections
warm. Pools cannot cross event loops, hence the per-loop map (daphne has one loop per process;
each async_to_sync call in a command or test gets its own, which is collected with it).

The SDK clients themselves are kept too (`cached_sdk_client`), per loop and per key, base URL and
timeouts: a new client per turn re-detects the platform for its headers in a worker thread
(`asyncify(get_platform)`) and rebuilds its options, several ms of CPU per turn at 1,000 turns.

A base URL a tenant set goes through a second, guarded pool (`guarded=True`): its transport
resolves the host once per request with the egress guard (knowledge.egress.resolve: every
address must be public or on TENANT_URL_ALLOWLIST) and sends the request to the address it
checked, keeping the name in the Host header and TLS SNI (the certificate is verified against the
name). So a DNS answer that changes after the check (rebinding) cannot send us elsewhere, and a
refused URL never opens a connection. Proxies from the environment are not used on this pool.
What remains: the pool keys connections by address, so two tenant hosts resolving to one checked
address may share a kept-alive connection (the second name's certificate is then not checked
again); both were checked, so no unchecked address is ever reached.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import httpx2

from knowledge.egress import EgressRefused, resolve

T = TypeVar("T")
SDK_CLIENTS_PER_LOOP = 256

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = weakref.WeakKeyDictionary()
_guarded_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = weakref.WeakKeyDictionary()
LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)


class GuardedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to an address the egress guard resolved and checked (see the module docstring)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport(limits=LIMITS, trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme not in ("http", "https") or not host:
            raise EgressRefused("Only http and https URLs can be fetched.", code="url_invalid")
        # getaddrinfo blocks; a thread keeps the event loop (other visitors' streams) running.
        addresses = await asyncio.to_thread(resolve, host, port)
        address = addresses[0]
        # The Host header was set from the name when the request was built; SNI and the
        # certificate check follow sni_hostname.
        request.url = url.copy_with(host=str(address))
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


_sdk_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[Hashable, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def cached_sdk_client(key: Hashable, build: Callable[[httpx2.AsyncClient], T], *, guarded: bool = False) -> T:
    """The running loop's SDK client for `key` (built on the shared pool by `build`, or on the
    guarded pool for a tenant's base URL), least recently used dropped past SDK_CLIENTS_PER_LOOP.
    A client whose pool was closed is rebuilt."""
    http = guarded_http_client() if guarded else shared_http_client()
    key = (key, guarded)
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


def guarded_http_client() -> httpx2.AsyncClient:
    """The running loop's pool for base URLs a tenant set: every request goes through GuardedTransport."""
    loop = asyncio.get_running_loop()
    client = _guarded_pools.get(loop)
    if client is None or client.is_closed:
        client = httpx2.AsyncClient(
            transport=GuardedTransport(), follow_redirects=False, trust_env=False, timeout=httpx2.Timeout(30.0)
        )
        _guarded_pools[loop] = client
    return client


async def close_shared_http_client() -> None:
    """Close the running loop's pools. For short-lived loops (Celery tasks via async_to_sync),
    whose pools would otherwise keep the finished loop alive through idle connections."""
    loop = asyncio.get_running_loop()
    _sdk_clients.pop(loop, None)
    for pools in (_pools, _guarded_pools):
        client = pools.pop(loop, None)
        if client is not None:
            await client.aclose()
