"""Atomic token buckets in Redis (one Lua script), shared by every process.

Several buckets (visitor, IP, bot, tenant, API key) are checked in one script run: a request is
let through only if every bucket has a token, and then one token is taken from each. A refused
request takes nothing, so a flood against one bucket does not drain the others. The clock is
Redis's own (TIME), so processes with skewed clocks agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chatbot_saas.errors import AppError

from . import metrics
from .redisconn import async_redis, key, sync_redis

# KEYS: bucket keys. ARGV: cost, then capacity and period (seconds) for each key.
# Returns {allowed (0/1), index of the refusing bucket (1-based, 0 if none), retry-after in ms}.
# Each bucket is one string "<tokens> <timestamp>": one MGET reads them all and one SET PX writes
# each (7 Redis commands for a visitor's 4 buckets; a hash per bucket took HMGET, HSET and PEXPIRE
# each, 14). Scripts' inner commands count in INFO commandstats like any other.
BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local values = redis.call('MGET', unpack(KEYS))
local state = {}
local refused, retry = 0, 0
for i, k in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local rate = cap / period
  local tokens, ts = cap, now
  if values[i] then
    local a, b = string.match(values[i], '^(%S+) (%S+)$')
    tokens = tonumber(a) or cap
    ts = tonumber(b) or now
  end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  state[i] = tokens
  if tokens < cost then
    local wait = (cost - tokens) / rate
    if wait > retry then
      retry = wait
      refused = i
    end
  end
end
if refused > 0 then
  return {0, refused, math.ceil(retry * 1000)}
end
for i, k in ipairs(KEYS) do
  local period = tonumber(ARGV[2 * i + 1])
  redis.call('SET', k, string.format('%.17g %.17g', state[i] - cost, now), 'PX', math.ceil(period * 1000))
end
return {1, 0, 0}
"""

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Rate:
    capacity: int
    period: float


def parse_rate(value: str, *, name: str) -> Rate:
    """'20/60' is 20 requests per 60 seconds (burst 20). Raises ImproperlyConfigured naming `name`."""
    match = _RATE_RE.match(value or "")
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise ImproperlyConfigured(f"{name} must look like '<requests>/<seconds>', e.g. '20/60'; got {value!r}")
    return Rate(int(match.group(1)), float(match.group(2)))


def configured_rate(setting: str) -> Rate:
    return parse_rate(getattr(settings, setting), name=setting)


def bucket_key(scope: str, ident: object) -> str:
    """The Redis key of one bucket (privacy erasure deletes these by name)."""
    # "rl2": string buckets; the hash buckets of "rl" expire by themselves after a deploy.
    return key("rl2", scope, ident)


@dataclass(frozen=True)
class Bucket:
    scope: str  # visitor, ip, bot, tenant, api_key, widget_session, connection_test
    ident: str
    rate: Rate

    @property
    def key(self) -> str:
        return bucket_key(self.scope, self.ident)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    refused_by: str | None = None
    retry_after: float = 0.0


# What each bucket limits, as the 429 message says it: the caller should know whether to slow
# down one key, one visitor or the whole workspace.
LIMITED = {
    "visitor": "You have sent too many messages",
    "ip": "Too many messages came from your network",
    "bot": "This bot is receiving too many messages",
    "tenant": "This workspace has made too many requests",
    "api_key": "This API key has made too many requests",
    "widget_session": "Too many chat sessions were opened from your network",
    "connection_test": "You have tested connections too often",
}


class RateLimited(AppError):
    code = "rate_limited"
    status = 429

    def __init__(self, decision: Decision) -> None:
        retry = round(decision.retry_after, 1)
        what = LIMITED.get(decision.refused_by or "", "Too many requests")
        super().__init__(
            f"{what}. Please wait {max(1, round(retry))} seconds and try again.",
            retry_after=retry,
            scope=decision.refused_by,
        )
        self.retry_after = retry


def _args(buckets: list[Bucket], cost: int) -> tuple[list[str], list[float]]:
    args: list[float] = [cost]
    for bucket in buckets:
        args += [bucket.rate.capacity, bucket.rate.period]
    return [b.key for b in buckets], args


def _decision(buckets: list[Bucket], result: list[int]) -> Decision:
    if int(result[0]) == 1:
        return Decision(True)
    scope = buckets[int(result[1]) - 1].scope
    metrics.RATE_LIMIT_REFUSALS.labels(scope=scope).inc()
    return Decision(False, scope, int(result[2]) / 1000)


async def rate_limit_take(buckets: list[Bucket], *, cost: int = 1) -> Decision:
    """Take `cost` tokens from every bucket, atomically, or from none. Async (consumers, async views)."""
    keys, args = _args(buckets, cost)
    result = await async_redis().eval(BUCKET_LUA, len(keys), *keys, *args)
    return _decision(buckets, result)


def rate_limit_take_sync(buckets: list[Bucket], *, cost: int = 1) -> Decision:
    keys, args = _args(buckets, cost)
    result = sync_redis().eval(BUCKET_LUA, len(keys), *keys, *args)
    return _decision(buckets, result)


async def rate_limit_check(buckets: list[Bucket], *, cost: int = 1) -> None:
    """Raise RateLimited (code rate_limited, with retry_after) when any bucket is empty."""
    decision = await rate_limit_take(buckets, cost=cost)
    if not decision.allowed:
        raise RateLimited(decision)


def visitor_buckets(*, tenant_id: int, bot_id: int, visitor_id: str, ip: str) -> list[Bucket]:
    return [
        Bucket("visitor", f"{bot_id}:{visitor_id}", configured_rate("RATE_LIMIT_VISITOR")),
        Bucket("ip", ip, configured_rate("RATE_LIMIT_IP")),
        Bucket("bot", str(bot_id), configured_rate("RATE_LIMIT_BOT")),
        Bucket("tenant", str(tenant_id), configured_rate("RATE_LIMIT_TENANT")),
    ]


def api_key_buckets(*, tenant_id: int, api_key_id: int) -> list[Bucket]:
    return [
        Bucket("api_key", str(api_key_id), configured_rate("RATE_LIMIT_API_KEY")),
        Bucket("tenant", str(tenant_id), configured_rate("RATE_LIMIT_TENANT")),
    ]
