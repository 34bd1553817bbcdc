"""Redis clients for the conversations app: one asyncio client per event loop, one sync client.

An asyncio connection belongs to the loop that opened it, so the client is cached per loop
(daphne has one; tests and the benchmark may run several in turn).
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_sync_client: redis.Redis | None = None


def async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # Blocking pool: under a burst, callers wait for a connection instead of failing.
        # socket_timeout stays above stream_follow's XREAD block time.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_ASYNC_POOL_SIZE,
            timeout=settings.REDIS_ASYNC_POOL_WAIT_SECONDS,
            socket_timeout=30,
            socket_connect_timeout=5,
        )
        client = aioredis.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


def sync_redis() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return _sync_client


def key(*parts: object) -> str:
    """A namespaced key, under the cache prefix so test clean-up and operators find it."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "cb")
    return ":".join([prefix, "conv", *(str(p) for p in parts)])
