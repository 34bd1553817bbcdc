"""Stream from the first healthy provider in the chain, failing over before or after the first token.

Each attempt has three clocks: connect (the SDK's connect timeout), first token, and the idle
gap between tokens (both enforced here, by one timer per stream: _Watchdog). A retryable failure counts against
the provider's circuit breaker; a 429 with a short Retry-After is retried once on the same
provider after waiting; anything else moves on. When text of a failed attempt already reached
the visitor, a `ChainReset` tells the caller to discard it; the next provider starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bots.selectors import ProviderKey
from chatbot_saas.tracing import enabled as tracing_enabled
from chatbot_saas.tracing import span
from conversations.llm.base import ChatRequest, LLMProvider, ProviderError, TextDelta, Timeouts, Usage
from conversations.llm.errors import classify
from conversations.llm.registry import build_provider

from .breaker import CircuitBreaker


@dataclass
class ChainReset:
    reason: str


@dataclass
class ChainDone:
    provider: str
    model: str
    usage: Usage
    attempts: list[dict[str, Any]]


@dataclass
class ChainFailed:
    attempts: list[dict[str, Any]]
    last_error: ProviderError | None = None


@dataclass
class ChainSetup:
    entries: list[dict[str, Any]]
    keys: dict[str, ProviderKey | None]
    timeouts: Timeouts
    max_retry_after: float
    breaker_for: Callable[[dict[str, Any]], CircuitBreaker]
    request_for: Callable[[dict[str, Any]], ChatRequest]
    attempts: list[dict[str, Any]] = field(default_factory=list)


class _Watchdog:
    """The first-token and idle clocks of one stream, on one timer.

    An asyncio.timeout around each item costs a timer scheduled and cancelled per token; this
    re-arms its timer only when it fires while a wait is shorter than its limit (at most once per
    limit). It cancels the task only while the task waits for the provider, as asyncio.timeout
    would, and `expired()` tells that cancellation from any other.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.deadline: float | None = None  # when the current wait times out; None while not waiting
        self.handle: asyncio.TimerHandle | None = None
        self.cancelling = 0
        self.fired = False

    def start(self, limit: float) -> None:
        self.deadline = deadline = self.loop.time() + limit
        self.cancelling = self.task.cancelling()
        if self.handle is not None and self.handle.when() > deadline:
            self.handle.cancel()
            self.handle = None
        if self.handle is None:
            self.handle = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self.handle = None
        if self.deadline is None:
            return  # not waiting: the next wait arms the timer again
        if self.loop.time() >= self.deadline:
            self.fired = True
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(self.deadline, self._check)

    def expired(self) -> bool:
        """After a CancelledError in the wait: True if it was this watchdog's (then it is consumed)."""
        if not self.fired:
            return False
        self.fired = False
        return self.task.uncancel() <= self.cancelling

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


async def _timed_stream(provider: LLMProvider, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[Any]:
    """The provider's stream with first-token and idle-gap timeouts turned into ProviderErrors."""
    iterator = aiter(provider.stream(request))
    seen_text = False
    watchdog = _Watchdog()
    try:
        while True:
            limit = timeouts.idle if seen_text else timeouts.first_token
            watchdog.start(limit)
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not watchdog.expired():
                    raise
                what = "between tokens" if seen_text else "before the first token"
                raise ProviderError(
                    f"{provider.name} sent nothing for {limit:g} s {what}.",
                    code="idle_timeout" if seen_text else "first_token_timeout",
                    retryable=True,
                ) from None
            finally:
                watchdog.deadline = None
            seen_text = seen_text or isinstance(item, TextDelta)
            yield item
    finally:
        watchdog.close()
        await iterator.aclose()


def _attempt_record(entry: dict[str, Any], outcome: str, started: float, **extra: Any) -> dict[str, Any]:
    return {
        "provider": entry["provider"],
        "model": entry["model"],
        "outcome": outcome,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        **extra,
    }


async def _record_failure(
    setup: ChainSetup,
    entry: dict[str, Any],
    breaker: CircuitBreaker,
    state: str,
    error: ProviderError,
    started: float,
    sent_text: bool,
    retry: bool,
) -> float | None:
    """Trace the failed attempt and feed the breaker; return seconds to wait before retrying, or None."""
    hold = error.retry_after if (error.retry_after or 0) > setup.max_retry_after else None
    breaker_state = await breaker.record_failure(hold_for=hold) if error.retryable else state
    setup.attempts.append(
        _attempt_record(
            entry,
            "error",
            started,
            error=error.message,
            code=error.code,
            retryable=error.retryable,
            status=error.status,
            after_first_token=sent_text,
            breaker=breaker_state,
            retry=retry,
        )
    )
    # A 429 with a short Retry-After is retried once on the same provider, if nothing was shown yet.
    short_wait = error.code == "rate_limited" and error.retry_after is not None and not hold
    if short_wait and not retry and not sent_text and breaker_state != "open":
        return error.retry_after
    return None


@dataclass
class _Attempt:
    entry: dict[str, Any]
    retry: bool
    number: int  # 1 for the chain's first entry tried, counting skipped ones and retries
    started: float = field(default_factory=time.perf_counter)
    sent_text: bool = False
    first_token_ms: float | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0, estimated=True))


def _run_attempt(setup: ChainSetup, attempt: _Attempt) -> AsyncIterator[TextDelta]:
    # Tracing off: no extra generator between the provider's tokens and the visitor.
    return _traced_attempt(setup, attempt) if tracing_enabled() else _stream_attempt(setup, attempt)


async def _traced_attempt(setup: ChainSetup, attempt: _Attempt) -> AsyncIterator[TextDelta]:
    entry = attempt.entry
    # The attempt's span (chatbot_saas/tracing.py): provider, model, number and outcome, never text.
    traced = span("provider.attempt", provider=entry["provider"], model=entry["model"], attempt=attempt.number)
    with traced as attempt_span:
        attempt_span.set(retry=attempt.retry)
        try:
            async for text in _stream_attempt(setup, attempt):
                yield text
        except (GeneratorExit, asyncio.CancelledError):
            attempt_span.set(outcome="stopped")
            raise
        except Exception as exc:
            attempt_span.set(outcome="error", error_code=classify(exc, provider=entry["provider"]).code)
            raise
        attempt_span.set(outcome="ok", first_token_ms=attempt.first_token_ms)


async def _stream_attempt(setup: ChainSetup, attempt: _Attempt) -> AsyncIterator[TextDelta]:
    entry = attempt.entry
    provider: LLMProvider | None = None
    try:
        provider = build_provider(entry, setup.keys.get(entry["provider"]), setup.timeouts)
        async for item in _timed_stream(provider, setup.request_for(entry), setup.timeouts):
            if isinstance(item, TextDelta):
                if not attempt.sent_text:
                    attempt.first_token_ms = round((time.perf_counter() - attempt.started) * 1000, 2)
                attempt.sent_text = True
                yield item
            elif isinstance(item, Usage):
                attempt.usage = item
    except (GeneratorExit, asyncio.CancelledError):
        # The caller stopped (the visitor pressed stop): the in-flight attempt is part of the trace.
        setup.attempts.append(
            _attempt_record(
                entry,
                "stopped",
                attempt.started,
                first_token_ms=attempt.first_token_ms,
                after_first_token=attempt.sent_text,
            )
        )
        raise
    finally:
        if provider is not None:
            await provider.aclose()


async def stream_with_failover(setup: ChainSetup) -> AsyncIterator[TextDelta | ChainReset | ChainDone | ChainFailed]:
    """Yield text deltas and resets, then exactly one ChainDone or ChainFailed.

    `setup.attempts` is filled as attempts finish, so a caller that stops early still has them.
    """
    last_error: ProviderError | None = None
    for entry in setup.entries:
        breaker = setup.breaker_for(entry)
        started = time.perf_counter()
        allowed, state = await breaker.allow()
        if not allowed:
            setup.attempts.append(_attempt_record(entry, "skipped_open_breaker", started, breaker=state))
            continue
        for retry in (False, True):
            attempt = _Attempt(entry, retry, number=len(setup.attempts) + 1)
            try:
                async with contextlib.aclosing(_run_attempt(setup, attempt)) as texts:
                    async for text in texts:
                        yield text
            except Exception as exc:  # every provider failure is classified; none escapes to the visitor
                last_error = classify(exc, provider=entry["provider"])
                wait = await _record_failure(
                    setup, entry, breaker, state, last_error, attempt.started, attempt.sent_text, retry
                )
                if attempt.sent_text:
                    yield ChainReset(
                        f"{entry['provider']} failed mid-answer ({last_error.code}); retrying with another model."
                    )
                if wait is not None:
                    await asyncio.sleep(wait)
                    continue
                break
            await breaker.record_success()
            setup.attempts.append(
                _attempt_record(
                    entry,
                    "ok",
                    attempt.started,
                    first_token_ms=attempt.first_token_ms,
                    retry=retry,
                    usage_estimated=attempt.usage.estimated,
                )
            )
            yield ChainDone(entry["provider"], entry["model"], attempt.usage, setup.attempts)
            return
    yield ChainFailed(setup.attempts, last_error)
