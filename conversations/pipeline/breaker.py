"""A circuit breaker per provider+model whose state lives in Redis, shared by every process.

closed    -> calls flow; retryable failures are counted in a sliding window;
open      -> after BREAKER_FAILURE_THRESHOLD failures in BREAKER_WINDOW_SECONDS (or a 429 whose
             Retry-After is too long to wait), calls are skipped until the cool-down ends;
half_open -> after the cool-down exactly one caller (SET NX) probes; success closes the
             breaker, failure opens it for another cool-down.
Non-retryable errors (bad key, quota, invalid request) do not count: they are configuration
problems of one tenant, and must not take a provider away from every other tenant.

The breaker protects the answer, it must never be why one fails: when its Redis cannot be reached
in time (down, or every pooled connection busy under a burst of turns), the call goes ahead as if
the breaker were closed, and the failure or success is not counted. Concurrent `allow()` calls for
one breaker in a process share one in-flight HGETALL (each still gets the state as Redis has it),
so a burst of 1,000 turns is a handful of reads rather than 1,000 waits for a pooled connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from conversations.redisconn import async_redis

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int
    window: int
    cooldown: int

    @classmethod
    def from_settings(cls) -> BreakerPolicy:
        return cls(
            settings.BREAKER_FAILURE_THRESHOLD, settings.BREAKER_WINDOW_SECONDS, settings.BREAKER_COOLDOWN_SECONDS
        )


def breaker_key(provider: str, model: str, base_url: str | None = None) -> str:
    # Inside the cache prefix, so operators find it next to the other shared counters.
    target = f"{provider}:{model}" + (f"@{base_url}" if base_url else "")
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'cb')}:breaker:{target}"


# A state read in advance (CircuitBreaker.prefetch) is used by allow() up to this age; older, it re-reads.
PREFETCH_MAX_AGE = 1.0


@dataclass(frozen=True)
class PrefetchedRead:
    at: float  # time.monotonic() when the read started
    task: asyncio.Future


class CircuitBreaker:
    def __init__(
        self, client: aioredis.Redis, key: str, policy: BreakerPolicy, *, prefetched: PrefetchedRead | None = None
    ) -> None:
        self.client = client
        self.key = key
        self.policy = policy
        self._prefetched = prefetched

    def prefetch(self) -> PrefetchedRead:
        """Start reading the state now, for an allow() that comes a few ms later (on another
        CircuitBreaker(..., prefetched=...) for the same key): the answer pipeline reads it while
        its database work runs, so that allowing the call costs no Redis round trip. Like any
        read, it can be a moment out of date: a breaker opened meanwhile lets one more call in."""
        task = asyncio.ensure_future(self._read())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen, if never awaited
        return PrefetchedRead(time.monotonic(), task)

    async def _read_for_allow(self) -> dict[bytes, bytes]:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and time.monotonic() - prefetched.at <= PREFETCH_MAX_AGE:
            return await asyncio.shield(prefetched.task)
        return await self._read()

    async def _read(self) -> dict[bytes, bytes]:
        """The breaker's hash, from an HGETALL shared with concurrent callers in this process."""
        reads = _in_flight.setdefault(asyncio.get_running_loop(), {})
        read_key = (id(self.client), self.key)
        task = reads.get(read_key)
        if task is None:
            task = asyncio.ensure_future(self.client.hgetall(self.key))
            reads[read_key] = task
            task.add_done_callback(lambda done: reads.pop(read_key, None) if reads.get(read_key) is done else None)
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def state(self) -> str:
        raw = await self._read()
        if not raw:
            return CLOSED
        state = raw.get(b"state", b"closed").decode()
        if state == OPEN and time.time() >= float(raw.get(b"open_until", 0)):
            return HALF_OPEN
        return state

    async def allow(self) -> tuple[bool, str]:
        """(may this call go ahead, the state it saw). In half-open only one caller gets True."""
        try:
            raw = await self._read_for_allow()
            if not raw or raw.get(b"state") == b"closed":
                return True, CLOSED
            if time.time() < float(raw.get(b"open_until", 0)):
                return False, OPEN
            # Cool-down over: one probe at a time; the probe lock expires if the prober dies.
            if await self.client.set(self.key + ":probe", "1", nx=True, ex=max(self.policy.cooldown, 1)):
                await self.client.hset(self.key, "state", HALF_OPEN)
                return True, HALF_OPEN
            return False, HALF_OPEN
        except RedisError as exc:
            log.warning("breaker %s unavailable (%s): calling the provider", self.key, exc)
            return True, CLOSED

    async def record_success(self) -> None:
        try:
            await self.client.delete(self.key, self.key + ":fails", self.key + ":probe")
        except RedisError as exc:
            log.warning("breaker %s unavailable (%s): success not recorded", self.key, exc)

    async def record_failure(self, *, hold_for: float | None = None) -> str:
        """Count a retryable failure; returns the state after it. `hold_for` opens at least that long."""
        try:
            return await self._record_failure(hold_for)
        except RedisError as exc:
            log.warning("breaker %s unavailable (%s): failure not counted", self.key, exc)
            return CLOSED

    async def _record_failure(self, hold_for: float | None) -> str:
        raw = await self.client.hgetall(self.key)
        now = time.time()
        if raw.get(b"state") == HALF_OPEN.encode():
            return await self._open(now + self.policy.cooldown)
        failures = await self.client.incr(self.key + ":fails")
        if failures == 1:  # the window starts at the first failure (Redis 6.2 has no EXPIRE NX)
            await self.client.expire(self.key + ":fails", self.policy.window)
        until = 0.0
        if failures >= self.policy.threshold:
            until = now + self.policy.cooldown
        if hold_for:
            until = max(until, now + hold_for)
        if until:
            return await self._open(until)
        return CLOSED

    async def _open(self, until: float) -> str:
        pipe = self.client.pipeline()
        pipe.hset(self.key, mapping={"state": OPEN, "open_until": until})
        pipe.expire(self.key, int(until - time.time()) + self.policy.window + 60)
        pipe.delete(self.key + ":fails", self.key + ":probe")
        await pipe.execute()
        return OPEN


def redis_client() -> aioredis.Redis:
    """A new client (the caller closes it)."""
    return aioredis.Redis.from_url(settings.REDIS_URL)


_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], asyncio.Future]] = (
    weakref.WeakKeyDictionary()
)


def shared_redis() -> aioredis.Redis:
    """The running loop's client: the conversations app's one asyncio pool (conversations.redisconn)."""
    return async_redis()
