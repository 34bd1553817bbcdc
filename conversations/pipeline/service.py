"""answer_stream: the one service call behind the widget, the API and the CLI.

    async for event in answer_stream(bot=bot, conversation=conversation, user_message=text): ...

Guarantees:
- Input that cannot be a question (empty, too long, undecodable) yields one `Error` and stores nothing.
- Otherwise the visitor's message and an assistant message in status `streaming` are stored before
  any model call, and `Start` is the first event.
- The stream ends with exactly one `Done` or `Error`; by then the assistant message is settled
  (`complete`, `partial` or `failed`), its Trace is written and the usage recorded.
- A caller that stops early (aclose(), GeneratorExit, task cancellation) leaves the message
  `partial` with the text shown so far, traced and recorded.
- The visitor never sees a provider's error text or a stack trace: provider failures fail over,
  and when every provider failed the bot's canned message is sent with `all_providers_failed`.
It needs no tenant context from the caller: every ORM call runs in a thread with the bot's tenant set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from bots.catalog import model_info, turn_cost
from bots.models import Bot
from conversations.llm.base import ChatRequest, TextDelta, Timeouts
from conversations.llm.tokens import estimate_tokens
from conversations.models import Conversation, Message
from knowledge.embeddings import embed_query_by_model
from knowledge.types import RetrievedPassage
from tenants.context import tenant_context
from tenants.models import Tenant

from . import guardrails
from .breaker import BreakerPolicy, CircuitBreaker, PrefetchedRead, breaker_key, shared_redis
from .context import I_DONT_KNOW, AssembledContext, assemble, citations_for
from .events import AnswerEvent, Citations, Delta, Done, Error, Reset, Start
from .failover import ChainDone, ChainFailed, ChainReset, ChainSetup, stream_with_failover
from .retrieval import passages_for
from .turn import TurnOutcome, TurnSetup, turn_begin, turn_settle

log = logging.getLogger(__name__)
T = TypeVar("T")


_pools: dict[str, tuple[ThreadPoolExecutor, int]] = {}
_pool_thread = threading.local()
_pools_lock = threading.Lock()


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if name not in _pools:
            _pools[name] = (ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"answer-{name}"), size)
        return _pools[name][0]


def shutdown_thread_pools() -> None:
    """Stop the pipeline's thread pools and close their threads' database connections; the next
    turn starts new ones. For tests that switch ANSWER_DB_THREADS (a test database cannot be
    flushed or dropped while a pool connection is open), and for short-lived processes."""
    with _pools_lock:
        pools = [pool for pool, _size in _pools.values()]
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True)
    with _pools_lock:
        opened = list(_pool_connections)
        _pool_connections.clear()
    for wrapper in opened:
        # Its thread has ended, so closing it from here cannot race with a query.
        wrapper.inc_thread_sharing()
        try:
            wrapper.close()
        finally:
            wrapper.dec_thread_sharing()


_pool_connections: list[Any] = []  # the connections of the "db" pool's threads, one per thread


def _tidy_connection() -> None:
    # A pool thread keeps its connection between calls (a fixed pool bounds them, and connecting
    # costs more than most turn queries); one that failed is closed, so the next call reconnects.
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


async def _db(scope: Tenant | None, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a sync ORM function in a thread with `scope` as the tenant context.

    With ANSWER_DB_THREADS > 0 the thread comes from a pool of that size, each with its own
    connection, so concurrent turns do not queue behind one thread; 0 runs every call on the
    one thread asgiref keeps for thread-sensitive code (tests: it shares the test's transaction).
    """

    def run() -> T:
        with tenant_context(scope):
            return fn(**kwargs)

    size = settings.ANSWER_DB_THREADS
    if size <= 0:
        return await sync_to_async(run, thread_sensitive=True)()

    def run_pooled() -> T:
        wrapper = connections[DEFAULT_DB_ALIAS]
        if not getattr(_pool_thread, "registered", False):
            with _pools_lock:
                _pool_connections.append(wrapper)
            _pool_thread.registered = True
        try:
            return run()
        finally:
            _tidy_connection()

    return await sync_to_async(run_pooled, thread_sensitive=False, executor=_pool("db", size))()


# bot id -> the embedding models of its knowledge bases at its last turn in this process. Only a
# hint for starting the query embedding before they are read: turn_begin reads the truth, and a
# wrong hint costs a wasted embedding or a late one, never a wrong answer.
_kb_models_hint: dict[int, tuple[str, ...]] = {}
KB_MODELS_HINT_SIZE = 10_000


def _embedding_models_hint(bot: Bot) -> tuple[str, ...]:
    # A bot not seen yet is assumed to use the default model: most bots have a knowledge base.
    return _kb_models_hint.get(bot.pk, (settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL,))


def _remember_embedding_models(bot: Bot, knowledge_bases: list[tuple[int, str]]) -> tuple[str, ...]:
    models = tuple(sorted({model for _kb_id, model in knowledge_bases}))
    if _kb_models_hint.get(bot.pk) != models:
        if len(_kb_models_hint) >= KB_MODELS_HINT_SIZE:
            _kb_models_hint.clear()
        _kb_models_hint[bot.pk] = models
    return models


def _start_query_embedding(text: str, models: tuple[str, ...]) -> Future | None:
    """Embed the query under `models` in a thread, now: it runs while turn_begin reads the turn's
    inputs and stores the messages, and retrieval then only runs SQL."""
    if not models:
        return None
    future = _pool("embed", settings.ANSWER_EMBED_THREADS).submit(embed_query_by_model, text, models)
    # A turn that ends before retrieval (quota, refusal, stop) never reads it: mark any error seen.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


@dataclass
class _Turn:
    bot: Bot
    tenant: Tenant
    setup: TurnSetup
    started: float
    knowledge_bases: list[tuple[int, str]] = field(default_factory=list)
    query_vectors: Future | None = None  # {model: vector}, being computed since the turn started
    retrieved: bool = False  # passages searched (by turn_begin when the vectors were ready in time)
    blocked_topic: str | None = None  # the bot's blocked topic the message names, if any
    breakers: dict[str, PrefetchedRead] = field(default_factory=dict)  # breaker key -> its state, read early
    shown: str = ""  # what the visitor has been shown since the last reset
    latency: dict[str, float] = field(default_factory=dict)
    passages: list[RetrievedPassage] = field(default_factory=list)
    context: AssembledContext | None = None
    chain: ChainSetup | None = None
    hits: list[dict[str, Any]] = field(default_factory=list)
    canary: str = ""
    settled: bool = False

    def outcome(self, status: str, content: str, **extra: Any) -> TurnOutcome:
        self.latency.setdefault("total_ms", _ms(self.started))
        return TurnOutcome(
            status=status,
            content=content,
            latency=self.latency,
            retrieved=[
                {"chunk_id": p.chunk_id, "document_id": p.document_id, "score": round(p.score, 4)}
                for p in self.passages
            ],
            prompt=self.context.as_trace() if self.context else [],
            attempts=list(self.chain.attempts) if self.chain else [],
            guardrail_hits=self.hits,
            **extra,
        )

    async def settle(self, outcome: TurnOutcome) -> None:
        if self.settled:
            return
        self.settled = True
        # Shielded: a cancelled caller must not leave the message in `streaming`.
        await asyncio.shield(_db(self.tenant, turn_settle, tenant=self.tenant, setup=self.setup, outcome=outcome))


async def answer_stream(*, bot: Bot, conversation: Conversation, user_message: str) -> AsyncIterator[AnswerEvent]:
    """Answer one visitor message as a stream of typed events (see the module docstring)."""
    started = time.perf_counter()
    try:
        text = guardrails.check_input(user_message, max_chars=settings.BOT_MAX_INPUT_CHARS)
    except guardrails.InputRejected as exc:
        yield Error(code=exc.code, message=exc.message)
        return
    if conversation.bot_id != bot.pk or conversation.tenant_id != bot.tenant_id:
        yield Error(code="not_found", message="This conversation does not belong to this bot.")
        return
    opened = await _open(bot, conversation, text, started)
    if isinstance(opened, Error):
        yield opened
        return
    turn, setup = opened, opened.setup
    yield Start(
        user_message_id=setup.user_message.pk,
        assistant_message_id=setup.assistant_message.pk,
        conversation_id=conversation.pk,
    )
    try:
        async with contextlib.aclosing(_answer(turn, text)) as events:
            async for event in events:
                yield event
    except (GeneratorExit, asyncio.CancelledError):
        # The visitor pressed stop or went away: keep what they saw, as `partial`.
        await turn.settle(_stopped(turn))
        raise
    except Exception:
        log.exception("answer_stream failed for message %s", setup.assistant_message.pk)
        await turn.settle(turn.outcome(Message.Status.FAILED, bot.fallback_message, error_code="internal_error"))
        yield Error(code="internal_error", message=bot.fallback_message)


async def _open(bot: Bot, conversation: Conversation, text: str, started: float) -> _Turn | Error:
    """Start the query embedding and the breaker read, then open the turn in one database hop
    (turn_begin); an Error when the tenant or the bot refuses (nothing stored)."""
    # The query embedding starts now, under the models the bot's knowledge bases used last time:
    # it overlaps all of the turn's database work rather than following its first query.
    hinted = _embedding_models_hint(bot)
    vectors = _start_query_embedding(text, hinted)
    client = shared_redis()
    policy = BreakerPolicy.from_settings()
    # The first breaker's state is read from Redis meanwhile too (the chain's head is nearly always
    # the entry that is called); stream_with_failover decides on it without a round trip of its own.
    breakers = {
        _breaker_key(entry): CircuitBreaker(client, _breaker_key(entry), policy).prefetch()
        for entry in bot.model_chain[:1]
    }
    topic = guardrails.blocked_topic(text, bot.blocked_topics or [])
    begin_ = functools.partial(
        turn_begin, bot=bot, conversation=conversation, text=text, query_vectors=vectors, retrieve=topic is None
    )
    opening = asyncio.ensure_future(_db(None, begin_))
    try:
        begin = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # Cancelled while the messages were being stored: settle them rather than leave `streaming`.
        begin = await opening
        if begin.setup is not None:
            await _Turn(bot=bot, tenant=begin.tenant, setup=begin.setup, started=started).settle(
                TurnOutcome(status=Message.Status.PARTIAL, content="", error_code="stopped")
            )
        raise
    if begin.setup is None:
        if vectors is not None:
            vectors.cancel()
        if begin.refused == "tenant_suspended":
            return Error(code="tenant_suspended", message="This assistant is not available right now.")
        return Error(code="bot_paused", message="This assistant is paused. Please try again later.")
    models = _remember_embedding_models(bot, begin.knowledge_bases)
    if vectors is not None and not models:
        vectors.cancel()  # the bot has no knowledge base (any more): nothing to embed for
        vectors = None
    elif models and (vectors is None or not set(models) <= set(hinted)):
        if vectors is not None:
            vectors.cancel()
        vectors = _start_query_embedding(text, models)  # the hint was wrong: embed under the right models
    turn = _Turn(
        bot=bot, tenant=begin.tenant, setup=begin.setup, started=started, knowledge_bases=begin.knowledge_bases,
        query_vectors=vectors, breakers=breakers, blocked_topic=topic,
    )  # fmt: skip
    turn.latency["open_ms"] = _ms(started)
    if begin.passages is not None:
        turn.passages, turn.retrieved = begin.passages, True
        turn.latency["retrieval_ms"] = begin.retrieval_ms
    return turn


def _stopped(turn: _Turn) -> TurnOutcome:
    tokens_out = estimate_tokens(turn.shown)
    tokens_in = turn.context.tokens if turn.context else 0
    model = ""
    if turn.chain and turn.chain.attempts:
        model = f"{turn.chain.attempts[-1]['provider']}:{turn.chain.attempts[-1]['model']}"
    elif turn.chain and turn.chain.entries:
        model = f"{turn.chain.entries[0]['provider']}:{turn.chain.entries[0]['model']}"
    provider, _, name = model.partition(":")
    cost = turn_cost(provider, name, tokens_in, tokens_out) if model else Decimal("0")
    return turn.outcome(
        Message.Status.PARTIAL, turn.shown, model=model, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
        error_code="stopped",
    )  # fmt: skip


async def _retrieve(turn: _Turn, text: str) -> None:
    """turn.passages, searched with the query vectors computed while the turn was opened."""
    if turn.retrieved:
        return
    retrieval_started = time.perf_counter()
    if turn.knowledge_bases:
        vectors = await asyncio.wrap_future(turn.query_vectors) if turn.query_vectors is not None else None
        turn.passages = await _db(
            turn.tenant, passages_for, tenant=turn.tenant, bot=turn.bot, query=text,
            knowledge_base_ids=[kb_id for kb_id, _model in turn.knowledge_bases], query_vectors=vectors,
        )  # fmt: skip
    turn.latency["retrieval_ms"] = _ms(retrieval_started)


async def _answer(turn: _Turn, text: str) -> AsyncIterator[AnswerEvent]:
    bot, setup = turn.bot, turn.setup
    if setup.quota_error is not None:
        await turn.settle(turn.outcome(Message.Status.FAILED, "", error_code="quota_exceeded"))
        yield Error(code="quota_exceeded", message=setup.quota_error.message)
        return
    if turn.blocked_topic is not None:
        turn.hits.append({"check": "blocked_topic", "where": "input", "detail": turn.blocked_topic})
        async with contextlib.aclosing(_canned(turn, guardrails.REFUSAL, model="guardrail:blocked_topic")) as events:
            async for event in events:
                yield event
        return
    for name in guardrails.injection_hits(text):
        turn.hits.append({"check": "injection", "where": "input", "detail": name})
        log.warning("prompt-injection heuristic %s hit on message %s", name, setup.user_message.pk)

    await _retrieve(turn, text)
    for passage in turn.passages:
        for name in guardrails.injection_hits(passage.text):
            turn.hits.append(
                {"check": "injection", "where": "retrieved", "detail": f"{name} in chunk {passage.chunk_id}"}
            )
            log.warning("prompt-injection heuristic %s hit in chunk %s", name, passage.chunk_id)
    if bot.answer_policy == Bot.AnswerPolicy.KNOWLEDGE_ONLY and not turn.passages:
        async with contextlib.aclosing(_canned(turn, I_DONT_KNOW, model="policy:no_passages")) as events:
            async for event in events:
                yield event
        return
    if not setup.chain:
        turn.hits.append({"check": "chain", "where": "input", "detail": "no provider allowed by the plan"})
        async with contextlib.aclosing(_fail(turn)) as events:
            async for event in events:
                yield event
        return
    async with contextlib.aclosing(_generate(turn, text)) as events:
        async for event in events:
            yield event


async def _canned(turn: _Turn, answer: str, *, model: str) -> AsyncIterator[AnswerEvent]:
    """A fixed answer (refusal, "I don't know") that involves no model."""
    turn.shown = answer
    turn.latency["first_token_ms"] = _ms(turn.started)
    yield Delta(answer)
    await turn.settle(turn.outcome(Message.Status.COMPLETE, answer, model=model))
    yield Done(
        assistant_message_id=turn.setup.assistant_message.pk, content=answer, model=model, tokens_in=0, tokens_out=0,
        cost=Decimal("0"), latency=turn.latency, attempts=_attempts(turn),
    )  # fmt: skip


async def _fail(turn: _Turn, *, code: str = "all_providers_failed") -> AsyncIterator[AnswerEvent]:
    if turn.shown:
        turn.shown = ""
        yield Reset(reason="The answer could not be completed.")
    await turn.settle(turn.outcome(Message.Status.FAILED, turn.bot.fallback_message, error_code=code))
    yield Error(code=code, message=turn.bot.fallback_message, attempts=_attempts(turn))


def _attempts(turn: _Turn) -> list[dict[str, Any]]:
    return list(turn.chain.attempts) if turn.chain else []


def _breaker_key(entry: dict[str, Any]) -> str:
    return breaker_key(entry["provider"], entry["model"], entry.get("params", {}).get("base_url"))


def _timeouts() -> Timeouts:
    return Timeouts(
        connect=settings.LLM_CONNECT_TIMEOUT_MS / 1000,
        first_token=settings.LLM_FIRST_TOKEN_TIMEOUT_MS / 1000,
        idle=settings.LLM_IDLE_TIMEOUT_MS / 1000,
    )


def _context_for(turn: _Turn, text: str) -> AssembledContext:
    bot, setup = turn.bot, turn.setup
    # One assembly for the whole chain, sized for its smallest window, so [n] means the same everywhere.
    smallest = min(setup.chain, key=lambda e: model_info(e["provider"], e["model"]).context_window)
    return assemble(
        prompt_text=setup.prompt_text,
        policy=bot.answer_policy,
        canary=turn.canary,
        passages=turn.passages,
        summary=setup.summary,
        facts=setup.facts,
        window=setup.window,
        user_message=text,
        provider=smallest["provider"],
        model=smallest["model"],
        max_answer_tokens=bot.max_answer_tokens,
    )


async def _generate(turn: _Turn, text: str) -> AsyncIterator[AnswerEvent]:
    bot, setup = turn.bot, turn.setup
    turn.canary = "cnry-" + secrets.token_hex(8)
    turn.context = context = _context_for(turn, text)
    client = shared_redis()
    policy = BreakerPolicy.from_settings()

    def request_for(entry: dict[str, Any]) -> ChatRequest:
        params = entry.get("params", {})
        return ChatRequest(
            model=entry["model"],
            system=context.system,
            messages=context.messages,
            max_tokens=min(int(params.get("max_tokens", bot.max_answer_tokens)), bot.max_answer_tokens),
            temperature=float(params.get("temperature", bot.temperature)),
            top_p=params.get("top_p"),
            passages=context.passages,
            query=text,
        )

    def breaker_for(entry: dict[str, Any]) -> CircuitBreaker:
        key = _breaker_key(entry)
        return CircuitBreaker(client, key, policy, prefetched=turn.breakers.pop(key, None))

    turn.chain = ChainSetup(
        entries=setup.chain, keys=setup.keys, timeouts=_timeouts(),
        max_retry_after=settings.LLM_MAX_RETRY_AFTER_MS / 1000, breaker_for=breaker_for, request_for=request_for,
    )  # fmt: skip
    out = guardrails.OutputFilter(canary=turn.canary, redact_pii=bot.redact_output)
    async with contextlib.aclosing(stream_with_failover(turn.chain)) as chain_events:
        async for item in chain_events:
            # The per-token case inline: a generator and an aclosing per token cost more than the token.
            if type(item) is TextDelta:
                try:
                    safe = out.feed(item.text)
                except guardrails.CanaryLeak:
                    async with contextlib.aclosing(_canary_leaked(turn, out)) as events:
                        async for event in events:
                            yield event
                    return
                if safe:
                    if "first_token_ms" not in turn.latency:
                        turn.latency["first_token_ms"] = _ms(turn.started)
                    turn.shown += safe
                    yield Delta(safe)
                continue
            async with contextlib.aclosing(_on_chain_item(turn, out, item)) as events:
                async for event in events:
                    yield event
            if turn.settled:
                return


async def _on_chain_item(turn: _Turn, out: guardrails.OutputFilter, item: object) -> AsyncIterator[AnswerEvent]:
    """Every chain item but text (handled inline in _generate, per token)."""
    if isinstance(item, ChainReset):
        out.reset()
        if turn.shown:
            turn.shown = ""
            yield Reset(reason=item.reason)
    elif isinstance(item, ChainDone):
        async with contextlib.aclosing(_finish(turn, out, item)) as events:
            async for event in events:
                yield event
    elif isinstance(item, ChainFailed):
        turn.hits.extend(out.hits)
        async with contextlib.aclosing(_fail(turn)) as events:
            async for event in events:
                yield event


async def _canary_leaked(turn: _Turn, out: guardrails.OutputFilter) -> AsyncIterator[AnswerEvent]:
    turn.hits.extend(out.hits)
    turn.hits.append({"check": "canary", "where": "output", "detail": "the system-prompt marker appeared"})
    log.warning("system-prompt canary in the output of message %s", turn.setup.assistant_message.pk)
    if turn.shown:
        turn.shown = ""
        yield Reset(reason="The answer was withdrawn.")
    async with contextlib.aclosing(_canned(turn, guardrails.REFUSAL, model="guardrail:canary")) as events:
        async for event in events:
            yield event


async def _finish(turn: _Turn, out: guardrails.OutputFilter, done: ChainDone) -> AsyncIterator[AnswerEvent]:
    try:
        tail = out.flush()
    except guardrails.CanaryLeak:
        async with contextlib.aclosing(_canary_leaked(turn, out)) as events:
            async for event in events:
                yield event
        return
    if tail:
        turn.latency.setdefault("first_token_ms", _ms(turn.started))
        turn.shown += tail
        yield Delta(tail)
    turn.hits.extend(out.hits)
    citations = citations_for(turn.shown, turn.context.passages if turn.context else [])
    if citations:
        yield Citations(items=citations)
    model = f"{done.provider}:{done.model}"
    cost = turn_cost(done.provider, done.model, done.usage.tokens_in, done.usage.tokens_out)
    outcome = turn.outcome(
        Message.Status.COMPLETE, turn.shown, model=model, tokens_in=done.usage.tokens_in,
        tokens_out=done.usage.tokens_out, cost=cost, citations=citations,
    )  # fmt: skip
    await turn.settle(outcome)
    yield Done(
        assistant_message_id=turn.setup.assistant_message.pk, content=turn.shown, model=model,
        tokens_in=done.usage.tokens_in, tokens_out=done.usage.tokens_out, cost=cost, latency=turn.latency,
        attempts=_attempts(turn),
    )  # fmt: skip
