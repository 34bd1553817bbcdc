"""The circuit breaker lives in Redis: closed -> open after repeated failures -> half-open after the
cool-down (one probe) -> closed on success, open again on failure."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from conversations.models import Message
from conversations.pipeline.breaker import BreakerPolicy, CircuitBreaker, breaker_key, redis_client
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain


def breaker_state(provider: str, model: str) -> str:
    async def read() -> str:
        client = redis_client()
        try:
            return await CircuitBreaker(client, breaker_key(provider, model), BreakerPolicy.from_settings()).state()
        finally:
            await client.aclose()

    return async_to_sync(read)()


def end_cool_down(provider: str, model: str) -> None:
    """Move the open-until time into the past, as if the cool-down had elapsed."""
    client = redis_client()

    async def rewind() -> None:
        try:
            await client.hset(breaker_key(provider, model), "open_until", time.time() - 1)
        finally:
            await client.aclose()

    async_to_sync(rewind)()


def attempts(turn) -> list[str]:
    message = Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id)
    return [f"{a['provider']}:{a['outcome']}" for a in message.trace.attempts]


@pytest.fixture
def bot(conversation_a):
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini", "offline:extractive")
    bot.save()
    return bot


def test_the_breaker_opens_after_repeated_failures_and_skips_the_provider(bot, conversation_a, fake_openai):
    fake_openai.default = Behaviour(fault="500")
    assert breaker_state("openai", "gpt-4o-mini") == "closed"
    ask(bot, conversation_a, "one")
    assert breaker_state("openai", "gpt-4o-mini") == "closed"
    ask(bot, conversation_a, "two")  # threshold is 2 in these tests
    assert breaker_state("openai", "gpt-4o-mini") == "open"
    turn = ask(bot, conversation_a, "three")
    assert len(fake_openai.requests) == 2, "no request while the breaker is open"
    assert attempts(turn) == ["openai:skipped_open_breaker", "offline:ok"]
    assert turn.done.model == "offline:extractive"


def test_after_the_cool_down_one_probe_goes_through_and_success_closes_the_breaker(bot, conversation_a, fake_openai):
    fake_openai.then(Behaviour(fault="500"), Behaviour(fault="500"))
    ask(bot, conversation_a, "one")
    ask(bot, conversation_a, "two")
    assert breaker_state("openai", "gpt-4o-mini") == "open"
    end_cool_down("openai", "gpt-4o-mini")
    assert breaker_state("openai", "gpt-4o-mini") == "half_open"
    fake_openai.then(Behaviour(text="Healthy again."))
    turn = ask(bot, conversation_a, "probe")
    assert turn.text == "Healthy again."
    assert breaker_state("openai", "gpt-4o-mini") == "closed"


def test_a_failed_probe_opens_the_breaker_again(bot, conversation_a, fake_openai):
    fake_openai.default = Behaviour(fault="500")
    ask(bot, conversation_a, "one")
    ask(bot, conversation_a, "two")
    end_cool_down("openai", "gpt-4o-mini")
    ask(bot, conversation_a, "probe")
    assert len(fake_openai.requests) == 3
    assert breaker_state("openai", "gpt-4o-mini") == "open"


def test_only_one_caller_may_probe_a_half_open_breaker(settings):
    async def race() -> list[bool]:
        client = redis_client()
        try:
            from conversations.pipeline.breaker import BreakerPolicy

            breaker = CircuitBreaker(client, breaker_key("anthropic", "x"), BreakerPolicy(1, 60, 30))
            await breaker.record_failure()
            await client.hset(breaker.key, "open_until", time.time() - 1)
            return [(await breaker.allow())[0] for _ in range(3)]
        finally:
            await client.aclose()

    assert async_to_sync(race)() == [True, False, False]


def test_breaker_state_is_shared_through_redis_not_held_in_the_process(bot, conversation_a, fake_openai):
    fake_openai.default = Behaviour(fault="500")
    ask(bot, conversation_a, "one")
    ask(bot, conversation_a, "two")
    raw = redis_client()

    async def read() -> dict:
        try:
            return await raw.hgetall(breaker_key("openai", "gpt-4o-mini"))
        finally:
            await raw.aclose()

    assert async_to_sync(read)()[b"state"] == b"open"


def test_a_breaker_whose_redis_cannot_be_reached_lets_the_call_through(settings):
    """The breaker protects the answer; its own Redis trouble must never be why an answer fails."""
    import redis.asyncio as aioredis

    async def scenario() -> tuple[tuple[bool, str], str]:
        # A real client on a port nobody listens on.
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            key, policy = breaker_key("openai", "gpt-4o-mini"), BreakerPolicy.from_settings()
            prefetched = CircuitBreaker(client, key, policy).prefetch()  # as the pipeline does
            assert await CircuitBreaker(client, key, policy, prefetched=prefetched).allow() == (True, "closed")
            breaker = CircuitBreaker(client, key, policy)
            allowed = await breaker.allow()
            state = await breaker.record_failure()
            await breaker.record_success()
            return allowed, state
        finally:
            await client.aclose()

    assert async_to_sync(scenario)() == ((True, "closed"), "closed")


def test_a_prefetched_read_decides_allow_until_it_is_too_old(settings):
    """The pipeline reads the breaker while its database work runs; allow() decides on that read
    without a round trip of its own, unless the read is older than PREFETCH_MAX_AGE."""
    from conversations.pipeline.breaker import PREFETCH_MAX_AGE, PrefetchedRead

    async def scenario() -> tuple[tuple[bool, str], tuple[bool, str]]:
        client = redis_client()
        try:
            policy = BreakerPolicy(1, 60, 30)
            key = breaker_key("openai", "prefetched")
            await CircuitBreaker(client, key, policy).record_failure()  # threshold 1: open
            read = CircuitBreaker(client, key, policy).prefetch()
            await read.task
            await client.delete(key)  # closed in Redis now; the read was taken while it was open
            on_the_read = await CircuitBreaker(client, key, policy, prefetched=read).allow()
            too_old = PrefetchedRead(time.monotonic() - PREFETCH_MAX_AGE - 1, read.task)
            read_again = await CircuitBreaker(client, key, policy, prefetched=too_old).allow()
            return on_the_read, read_again
        finally:
            await client.aclose()

    assert async_to_sync(scenario)() == ((False, "open"), (True, "closed"))
