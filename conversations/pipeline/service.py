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

A turn is a sequence of named stages (their typed inputs and outputs are in stages.py):
begin (_begin: turn.turn_begin) -> retrieve (retrieval.retrieve) -> assemble (stages.assemble_prompt)
-> generate with failover (stages.generation_chain, failover.stream_with_failover)
-> settle (turn.turn_settle). A refusal (quota, blocked topic, no provider allowed) settles the
turn after begin without the later stages.

Grounded or honest: retrieval keeps only the passages the relevance gate passes
(knowledge.answer_retrieval), after rewriting a follow-up question into a standalone query
(rewrite.py). When none passes, a knowledge-only bot answers with its own "I don't know"
(Bot.no_answer_text, offering its fallback contact) without calling any model and without
citations; a bot allowed general knowledge answers from the model and its answer ends with
UNGROUNDED_NOTE. The trace records every kept passage's verdict, the first dropped ones' and the rewrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from django.conf import settings

from bots.catalog import turn_cost
from bots.models import Bot
from conversations.llm.base import TextDelta
from conversations.models import Conversation, Message

from . import guardrails
from .breaker import BreakerPolicy, CircuitBreaker, shared_redis
from .context import UNGROUNDED_NOTE, citations_for
from .events import AnswerEvent, Citations, Delta, Done, Error, Reset, Start
from .failover import ChainDone, ChainFailed, ChainReset, stream_with_failover
from .retrieval import Retrieval, RetrievalRequest, retrieve
from .rewrite import may_be_follow_up, rewrite_query
from .stages import (
    AssemblyRequest,
    GenerationRequest,
    TurnState,
    assemble_prompt,
    chain_breaker_key,
    generation_chain,
    ms_since,
)
from .threads import embedding_models_hint, in_db_thread, remember_embedding_models, start_query_embedding
from .turn import TurnOutcome, turn_begin, turn_settle

log = logging.getLogger(__name__)


async def answer_stream(
    *, bot: Bot, conversation: Conversation, user_message: str, idempotency_key: str | None = None
) -> AsyncIterator[AnswerEvent]:
    """Answer one visitor message as a stream of typed events (see the module docstring).
    `idempotency_key` is stored on the visitor's message (unique per tenant: a second turn with
    the same key fails to store rather than ask twice; callers join the first, see idempotency.py)."""
    started = time.perf_counter()
    try:
        text = guardrails.check_input(user_message, max_chars=settings.BOT_MAX_INPUT_CHARS)
    except guardrails.InputRejected as exc:
        yield Error(code=exc.code, message=exc.message)
        return
    redacted: list[str] = []
    if bot.redact_input:
        # Before anything else sees it: the stored message, the retrieval query, the model's prompt,
        # the trace and the insights all get the masked text (the bot's "Redact visitors' messages").
        text, redacted = guardrails.redact(text)
    if conversation.bot_id != bot.pk or conversation.tenant_id != bot.tenant_id:
        yield Error(code="not_found", message="This conversation does not belong to this bot.")
        return
    begun = await _begin(bot, conversation, text, started, idempotency_key)
    if isinstance(begun, Error):
        yield begun
        return
    turn, setup = begun, begun.setup
    turn.hits.extend({"check": "redaction", "where": "input", "detail": kind} for kind in redacted)
    yield Start(
        user_message_id=setup.user_message.pk,
        assistant_message_id=setup.assistant_message.pk,
        conversation_id=conversation.pk,
    )
    try:
        async with contextlib.aclosing(_after_begin(turn, text)) as events:
            async for event in events:
                yield event
    except (GeneratorExit, asyncio.CancelledError):
        # The visitor pressed stop or went away: keep what they saw, as `partial`.
        await _settle(turn, turn.stopped())
        raise
    except Exception:
        log.exception("answer_stream failed for message %s", setup.assistant_message.pk)
        await _settle(turn, turn.outcome(Message.Status.FAILED, bot.fallback_message, error_code="internal_error"))
        yield Error(code="internal_error", message=bot.fallback_message)


async def _begin(
    bot: Bot, conversation: Conversation, text: str, started: float, idempotency_key: str | None = None
) -> TurnState | Error:
    """The begin stage: start the query embedding and the breaker read, then open the turn in
    one database hop (turn_begin); an Error when the tenant or the bot refuses (nothing stored)."""
    # The query embedding starts now, under the models the bot's knowledge bases used last time:
    # it overlaps all of the turn's database work rather than following its first query.
    hinted = embedding_models_hint(bot.pk)
    vectors = start_query_embedding(text, hinted)
    client = shared_redis()
    policy = BreakerPolicy.from_settings()
    # The first breaker's state is read from Redis meanwhile too (the chain's head is nearly always
    # the entry that is called); stream_with_failover decides on it without a round trip of its own.
    breakers = {
        chain_breaker_key(entry): CircuitBreaker(client, chain_breaker_key(entry), policy).prefetch()
        for entry in bot.model_chain[:1]
    }
    topic = guardrails.blocked_topic(text, bot.blocked_topics or [])
    # A question that may be a follow-up is retrieved by the retrieve stage, after its rewrite.
    begin_ = functools.partial(
        turn_begin,
        bot=bot,
        conversation=conversation,
        text=text,
        query_vectors=vectors,
        retrieve=topic is None and not may_be_follow_up(text),
        idempotency_key=idempotency_key,
    )
    opening = asyncio.ensure_future(in_db_thread(None, begin_))
    try:
        begin = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # Cancelled while the messages were being stored: settle them rather than leave `streaming`.
        begin = await opening
        if begin.setup is not None:
            await _settle(
                TurnState(bot=bot, tenant=begin.tenant, setup=begin.setup, started=started),
                TurnOutcome(status=Message.Status.PARTIAL, content="", error_code="stopped"),
            )
        raise
    if begin.setup is None:
        if vectors is not None:
            vectors.cancel()
        if begin.refused == "tenant_suspended":
            return Error(code="tenant_suspended", message="This assistant is not available right now.")
        return Error(code="bot_paused", message="This assistant is paused. Please try again later.")
    models = remember_embedding_models(bot.pk, begin.knowledge_bases)
    if vectors is not None and not models:
        vectors.cancel()  # the bot has no knowledge base (any more): nothing to embed for
        vectors = None
    elif models and (vectors is None or not set(models) <= set(hinted)):
        if vectors is not None:
            vectors.cancel()
        vectors = start_query_embedding(text, models)  # the hint was wrong: embed under the right models
    turn = TurnState(
        bot=bot,
        tenant=begin.tenant,
        setup=begin.setup,
        started=started,
        knowledge_bases=begin.knowledge_bases,
        query_vectors=vectors,
        breakers=breakers,
        blocked_topic=topic,
    )
    turn.latency["open_ms"] = ms_since(started)
    turn.span("begin", started, ms=turn.latency["open_ms"])
    if begin.passages is not None:
        turn.passages, turn.verdicts, turn.retrieved = begin.passages, begin.verdicts, True
        turn.latency["retrieval_ms"] = begin.retrieval_ms
        # Searched inside begin's database hop, at its end.
        turn.spans["retrieve"] = [round(turn.latency["open_ms"] - begin.retrieval_ms, 2), begin.retrieval_ms]
    return turn


async def _retrieve(turn: TurnState, text: str) -> Retrieval:
    """The retrieve stage: rewrite a follow-up into a standalone query, then search and gate, with
    the query vectors computed while the turn was opened (turn_begin ran it already when they were
    ready in time and the question needed no rewrite)."""
    if turn.retrieved:  # its span was recorded by _begin
        return Retrieval(turn.passages, turn.latency.get("retrieval_ms", 0.0), turn.verdicts)
    started = time.perf_counter()
    if not turn.knowledge_bases:
        turn.span("retrieve", started)
        return Retrieval([], 0.0)
    turn.rewrite = await rewrite_query(
        text=text, window=turn.setup.window, chain=turn.setup.chain, keys=turn.setup.keys
    )
    query = turn.rewrite.rewritten
    if query != text:
        turn.latency["rewrite_ms"] = ms_since(started)
        if turn.query_vectors is not None:
            turn.query_vectors.cancel()
        turn.query_vectors = start_query_embedding(query, tuple(sorted({m for _id, m in turn.knowledge_bases})))
    vectors = await asyncio.wrap_future(turn.query_vectors) if turn.query_vectors is not None else None
    request = RetrievalRequest(
        tenant=turn.tenant, bot=turn.bot, query=query, query_vectors=vectors, knowledge_bases=turn.knowledge_bases
    )
    retrieval = await in_db_thread(turn.tenant, retrieve, request=request)
    turn.span("retrieve", started)
    return retrieval


async def _settle(turn: TurnState, outcome: TurnOutcome) -> None:
    """The settle stage, once per turn."""
    if turn.settled:
        return
    turn.settled = True
    # Shielded: a cancelled caller must not leave the message in `streaming`.
    await asyncio.shield(in_db_thread(turn.tenant, turn_settle, tenant=turn.tenant, setup=turn.setup, outcome=outcome))


async def _after_begin(turn: TurnState, text: str) -> AsyncIterator[AnswerEvent]:
    """retrieve -> assemble -> generate, or the refusal that ends the turn instead."""
    setup = turn.setup
    if setup.quota_error is not None:
        await _settle(turn, turn.outcome(Message.Status.FAILED, "", error_code="quota_exceeded"))
        yield Error(code="quota_exceeded", message=setup.quota_error.message)
        return
    if turn.blocked_topic is not None:
        turn.hits.append({"check": "blocked_topic", "where": "input", "detail": turn.blocked_topic})
        for event in await _canned(turn, guardrails.REFUSAL, model="guardrail:blocked_topic"):
            yield event
        return
    for name in guardrails.injection_hits(text):
        turn.hits.append({"check": "injection", "where": "input", "detail": name})
        log.warning("prompt-injection heuristic %s hit on message %s", name, setup.user_message.pk)

    retrieval = await _retrieve(turn, text)
    turn.passages, turn.latency["retrieval_ms"] = retrieval.passages, retrieval.retrieval_ms
    turn.verdicts = retrieval.verdicts
    for passage in turn.passages:
        for name in guardrails.injection_hits(passage.text):
            turn.hits.append(
                {"check": "injection", "where": "retrieved", "detail": f"{name} in chunk {passage.chunk_id}"}
            )
            log.warning("prompt-injection heuristic %s hit in chunk %s", name, passage.chunk_id)
    if turn.bot.answer_policy == Bot.AnswerPolicy.KNOWLEDGE_ONLY and not turn.passages:
        # Nothing relevant: the bot's own "I don't know", and no model is asked to improvise.
        for event in await _canned(turn, turn.bot.no_answer_text(), model="policy:no_passages"):
            yield event
        return
    if not setup.chain:
        turn.hits.append({"check": "chain", "where": "input", "detail": "no provider allowed by the plan"})
        for event in await _fail(turn):
            yield event
        return

    turn.canary = "cnry-" + secrets.token_hex(8)
    assemble_started = time.perf_counter()
    turn.context = assemble_prompt(
        AssemblyRequest(bot=turn.bot, setup=setup, passages=turn.passages, user_message=text, canary=turn.canary)
    )
    turn.span("assemble", assemble_started)
    async with contextlib.aclosing(_generate(turn, text)) as events:
        async for event in events:
            yield event


async def _generate(turn: TurnState, text: str) -> AsyncIterator[AnswerEvent]:
    """The generate stage: stream the chain with failover through the output filter, then settle."""
    assert turn.context is not None  # assembled by the caller
    turn.generate_started = time.perf_counter()
    client = shared_redis()
    policy = BreakerPolicy.from_settings()

    def breaker_for(entry: dict[str, Any]) -> CircuitBreaker:
        key = chain_breaker_key(entry)
        return CircuitBreaker(client, key, policy, prefetched=turn.breakers.pop(key, None))

    turn.chain = generation_chain(
        GenerationRequest(
            bot=turn.bot, setup=turn.setup, context=turn.context, user_message=text, breaker_for=breaker_for
        )
    )
    out = guardrails.OutputFilter(canary=turn.canary, redact_pii=turn.bot.redact_output)
    async with contextlib.aclosing(stream_with_failover(turn.chain)) as chain_events:
        async for item in chain_events:
            # The per-token case inline: a call per token costs more than the token.
            if type(item) is TextDelta:
                try:
                    safe = out.feed(item.text)
                except guardrails.CanaryLeak:
                    for event in await _canary_leaked(turn, out):
                        yield event
                    return
                if safe:
                    if "first_token_ms" not in turn.latency:
                        turn.latency["first_token_ms"] = ms_since(turn.started)
                    turn.shown += safe
                    yield Delta(safe)
                continue
            for event in await _on_chain_item(turn, out, item):
                yield event
            if turn.settled:
                return


# The endings below settle the turn, then return the events that tell the visitor: by the time
# the last one (Done or Error) is sent, the message is settled.


async def _canned(turn: TurnState, answer: str, *, model: str) -> list[AnswerEvent]:
    """A fixed answer (refusal, "I don't know") that involves no model."""
    turn.shown = answer
    turn.latency["first_token_ms"] = ms_since(turn.started)
    await _settle(turn, turn.outcome(Message.Status.COMPLETE, answer, model=model))
    done = Done(
        assistant_message_id=turn.setup.assistant_message.pk,
        content=answer,
        model=model,
        tokens_in=0,
        tokens_out=0,
        cost=Decimal("0"),
        latency=turn.latency,
        attempts=turn.attempts(),
    )
    return [Delta(answer), done]


async def _fail(turn: TurnState, *, code: str = "all_providers_failed") -> list[AnswerEvent]:
    events: list[AnswerEvent] = []
    if turn.shown:
        turn.shown = ""
        events.append(Reset(reason="The answer could not be completed."))
    await _settle(turn, turn.outcome(Message.Status.FAILED, turn.bot.fallback_message, error_code=code))
    return [*events, Error(code=code, message=turn.bot.fallback_message, attempts=turn.attempts())]


async def _on_chain_item(turn: TurnState, out: guardrails.OutputFilter, item: object) -> list[AnswerEvent]:
    """Every chain item but text (handled inline in _generate, per token)."""
    if isinstance(item, ChainReset):
        out.reset()
        if turn.shown:
            turn.shown = ""
            return [Reset(reason=item.reason)]
    elif isinstance(item, ChainDone):
        return await _finish(turn, out, item)
    elif isinstance(item, ChainFailed):
        turn.hits.extend(out.hits)
        return await _fail(turn)
    return []


async def _canary_leaked(turn: TurnState, out: guardrails.OutputFilter) -> list[AnswerEvent]:
    turn.hits.extend(out.hits)
    turn.hits.append({"check": "canary", "where": "output", "detail": "the system-prompt marker appeared"})
    log.warning("system-prompt canary in the output of message %s", turn.setup.assistant_message.pk)
    events: list[AnswerEvent] = []
    if turn.shown:
        turn.shown = ""
        events.append(Reset(reason="The answer was withdrawn."))
    return [*events, *await _canned(turn, guardrails.REFUSAL, model="guardrail:canary")]


async def _finish(turn: TurnState, out: guardrails.OutputFilter, done: ChainDone) -> list[AnswerEvent]:
    try:
        tail = out.flush()
    except guardrails.CanaryLeak:
        return await _canary_leaked(turn, out)
    events: list[AnswerEvent] = []
    general = turn.bot.answer_policy == Bot.AnswerPolicy.GENERAL
    if general and turn.knowledge_bases and not turn.passages and done.provider != "offline":
        # Its knowledge had nothing relevant: the answer says it is not from the documentation (a
        # bot without knowledge bases has no documentation to speak of; the offline answerer says
        # "I don't know" instead).
        tail += ("\n\n" if (turn.shown + tail).strip() else "") + UNGROUNDED_NOTE
    if tail:
        turn.latency.setdefault("first_token_ms", ms_since(turn.started))
        turn.shown += tail
        events.append(Delta(tail))
    turn.hits.extend(out.hits)
    citations = citations_for(turn.shown, turn.context.passages if turn.context else [])
    if citations:
        events.append(Citations(items=citations))
    model = f"{done.provider}:{done.model}"
    cost = turn_cost(done.provider, done.model, done.usage.tokens_in, done.usage.tokens_out)
    outcome = turn.outcome(
        Message.Status.COMPLETE,
        turn.shown,
        model=model,
        tokens_in=done.usage.tokens_in,
        tokens_out=done.usage.tokens_out,
        cost=cost,
        citations=citations,
    )
    await _settle(turn, outcome)
    events.append(
        Done(
            assistant_message_id=turn.setup.assistant_message.pk,
            content=turn.shown,
            model=model,
            tokens_in=done.usage.tokens_in,
            tokens_out=done.usage.tokens_out,
            cost=cost,
            latency=turn.latency,
            attempts=turn.attempts(),
        )
    )
    return events
