"""Atomic Redis token buckets (Lua): shared by every process, all-or-nothing across buckets."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured

from conversations.ratelimit import Bucket, Rate, parse_rate, rate_limit_take, rate_limit_take_sync


def test_a_bucket_lets_its_burst_through_then_refuses_with_a_retry_after():
    bucket = Bucket("visitor", "v1", Rate(3, 60))
    decisions = [rate_limit_take_sync([bucket]) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].refused_by == "visitor"
    assert 0 < decisions[-1].retry_after <= 20


def test_a_refusal_by_one_bucket_takes_nothing_from_the_others():
    tight = Bucket("visitor", "v2", Rate(1, 60))
    roomy = Bucket("tenant", "t2", Rate(2, 60))
    assert rate_limit_take_sync([tight, roomy]).allowed
    for _ in range(5):
        refused = rate_limit_take_sync([tight, roomy])
        assert not refused.allowed and refused.refused_by == "visitor"
    # The tenant bucket still has exactly one token: the refusals took none.
    assert rate_limit_take_sync([roomy]).allowed
    assert not rate_limit_take_sync([roomy]).allowed


def test_buckets_are_exact_under_concurrent_callers():
    bucket = Bucket("ip", "203.0.113.9", Rate(25, 600))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: rate_limit_take_sync([bucket]).allowed, range(100)))
    assert results.count(True) == 25


def test_tokens_refill_over_the_period():
    bucket = Bucket("bot", "refill", Rate(1, 0.2))
    assert rate_limit_take_sync([bucket]).allowed
    refused = rate_limit_take_sync([bucket])
    assert not refused.allowed
    import time

    time.sleep(refused.retry_after + 0.05)
    assert rate_limit_take_sync([bucket]).allowed


def test_the_async_client_shares_the_same_buckets():
    bucket = Bucket("api_key", "k1", Rate(2, 60))
    assert rate_limit_take_sync([bucket]).allowed

    async def take_two() -> list[bool]:
        return [(await rate_limit_take([bucket])).allowed for _ in range(2)]

    assert asyncio.run(take_two()) == [True, False]


@pytest.mark.parametrize("value", ["", "10", "0/60", "ten/60", "10/0", "10/-5", "10/60/ip"])
def test_malformed_rate_settings_name_the_variable(value):
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_X"):
        parse_rate(value, name="RATE_LIMIT_X")
