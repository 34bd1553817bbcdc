"""The database side of the begin and settle stages of a turn (see service.py): turn_begin
stores the messages and loads what the pipeline needs; turn_settle writes the final status, the
trace and the usage. Plain ORM calls through the tenant-scoped managers, in sync functions run in
a database thread (the ORM is synchronous)."""

from __future__ import annotations

import logging
import time
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from billing.models import Plan
from billing.quotas import QuotaExceeded, quota_check
from billing.services import usage_record
from bots.models import Bot, ProviderCredential
from bots.selectors import ProviderKey, provider_keys_from
from conversations.llm.base import ChatMessage
from conversations.models import Conversation, Message, Trace
from knowledge.types import RetrievedPassage
from tenants.context import tenant_context
from tenants.events import event_emit
from tenants.models import Tenant

from . import candidate
from .config import turn_config
from .memory import Memory, memory_read
from .retrieval import decision_for, traced_verdicts

log = logging.getLogger(__name__)
DEFAULT_PROMPT = "You are a helpful assistant for this company's website. Be concise and friendly."


@dataclass
class TurnSetup:
    tenant: Tenant
    user_message: Message
    assistant_message: Message
    prompt_text: str
    prompt_version: int | None
    chain: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    keys: dict[str, ProviderKey | None]
    window: list[ChatMessage]
    summary: str
    facts: dict[str, str]
    quota_error: QuotaExceeded | None = None
    webhook_events: frozenset[str] = frozenset()  # from the turn configuration (config.TurnConfig)


@dataclass
class TurnOutcome:
    status: str
    content: str
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal("0")
    citations: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    error_code: str = ""
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    retrieval: dict[str, Any] = field(default_factory=dict)  # the gate's verdicts and the query's rewrite
    prompt: list[dict[str, str]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    guardrail_hits: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0  # the turn's perf_counter start (0: unknown), for the settle's span
    timings: dict[str, Any] = field(default_factory=dict)  # per stage, see Trace.timings


@dataclass
class TurnBegin:
    """What turn_begin found and did: refused (nothing stored), or the turn opened."""

    tenant: Tenant
    refused: str = ""  # "tenant_suspended" or "bot_paused": nothing was stored
    setup: TurnSetup | None = None
    knowledge_bases: list[tuple[int, str]] = field(default_factory=list)  # (id, embedding model)
    # Retrieved in the same thread when the query vectors were ready by then (None: not yet).
    passages: list[RetrievedPassage] | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # the gate's, for the trace
    retrieval_ms: float = 0.0


def turn_begin(
    *,
    bot: Bot,
    conversation: Conversation,
    text: str,
    query_vectors: Future | None = None,
    retrieve: bool = True,
    idempotency_key: str | None = None,
) -> TurnBegin:
    """The begin stage's database side, in one thread hop: read the bot's tenant fresh (a
    suspension applies to the next message), refuse if it or the bot is not active (nothing
    stored), read the turn's inputs through its scope (_read_inputs), check the quota and store
    the turn's two messages (_turn_open). Needs no tenant context: it sets the bot's tenant.

    `query_vectors` is the query being embedded meanwhile (a {model: vector} future): when it is
    done by the time the messages are stored, or already being computed then (it is then waited
    for, up to EMBEDDING_WAIT seconds), and `retrieve` is set (no refusal is due), the passages
    are searched here too (the retrieve stage's work), saving the pipeline another hop.
    """
    tenant = Tenant.objects.get(pk=bot.tenant_id)
    if not tenant.is_active:
        return TurnBegin(tenant, refused="tenant_suspended")
    if bot.status != Bot.Status.ACTIVE:
        return TurnBegin(tenant, refused="bot_paused")
    with tenant_context(tenant):
        inputs = _read_inputs(bot=bot, conversation=conversation)
        setup, knowledge_bases = _turn_open(
            tenant=tenant,
            bot=bot,
            conversation=conversation,
            text=text,
            inputs=inputs,
            idempotency_key=idempotency_key,
        )
        begin = TurnBegin(tenant, setup=setup, knowledge_bases=knowledge_bases)
        wait = retrieve and bool(knowledge_bases) and setup.quota_error is None
        vectors = _ready(query_vectors, wait=wait)
        wanted = {model for _kb_id, model in knowledge_bases}
        if retrieve and setup.quota_error is None and vectors is not None and wanted <= vectors.keys():
            started = time.perf_counter()
            decision = decision_for(
                tenant=tenant, bot=bot, query=text, knowledge_bases=knowledge_bases, query_vectors=vectors
            )
            begin.passages, begin.verdicts = decision.kept, traced_verdicts(decision)
            begin.retrieval_ms = round((time.perf_counter() - started) * 1000, 2)
    return begin


# How long turn_begin waits for a query embedding that is running when the messages are stored.
# One takes ~12-20 ms; past this the pipeline awaits it instead, so a slow one does not hold a
# database thread. A queued one (its pool busy with other turns) is never waited for here.
EMBEDDING_WAIT = 0.1


def _ready(future: Future | None, *, wait: bool = False) -> dict[str, list[float]] | None:
    """The future's vectors when it is done; with `wait`, a running one is waited for first:
    searching in this thread straight away beats handing the search back to the event loop."""
    if future is not None and wait and future.running():
        futures.wait([future], timeout=EMBEDDING_WAIT)
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _allowed(entry: dict[str, Any], allowed: list[str]) -> bool:
    if not allowed or entry["provider"] == "offline":
        return True
    return entry["model"] in allowed or f"{entry['provider']}:{entry['model']}" in allowed


@dataclass
class _Inputs:
    plan: Plan
    prompt: tuple[str, int | None] | None  # the published prompt version's text and number
    memory: Memory
    knowledge_bases: list[tuple[int, str]]  # (id, embedding model)
    credentials: tuple[ProviderCredential, ...]
    webhook_events: frozenset[str] = frozenset()


def _read_inputs(*, bot: Bot, conversation: Conversation) -> _Inputs:
    """The bot's turn configuration (its plan, published prompt, knowledge bases and the
    provider credentials: config.turn_config, remembered for a short while) and the
    conversation's memory (window, summary and facts, read fresh). Tenant scope required."""
    config = turn_config(bot=bot)
    # The caller's bot row may be as old as its socket; this flag must follow corrections as they change.
    bot.has_corrections = config.has_corrections
    # Evaluation runs judge the prompt or knowledge bases about to go live; otherwise unchanged.
    prompt, bases = candidate.apply(prompt=config.prompt, knowledge_bases=list(config.knowledge_bases))
    return _Inputs(
        plan=config.plan,
        prompt=prompt,
        memory=memory_read(conversation_id=conversation.pk, size=settings.BOT_MEMORY_WINDOW_MESSAGES),
        knowledge_bases=bases,
        credentials=config.credentials,
        # Evaluation turns are not visitors' conversations: nothing to tell the tenant's systems.
        webhook_events=frozenset() if candidate.active() else config.webhook_events,
    )


def _turn_open(
    *,
    tenant: Tenant,
    bot: Bot,
    conversation: Conversation,
    text: str,
    inputs: _Inputs,
    idempotency_key: str | None = None,
) -> tuple[TurnSetup, list[tuple[int, str]]]:
    """With the turn's inputs read (_read_inputs), check the quota, then store the visitor's
    message and a `streaming` assistant message.

    Tenant scope required. Both messages are stored by one bulk_create (atomic, committed when it
    returns outside a transaction), so when this returns the visitor's message is stored, before
    any model is called. The window was read before, so it is the history without this turn's
    messages. An exceeded quota is returned (not raised) so the caller can settle the turn and
    report it. `last_active` is written by turn_settle, after the answer.
    """
    plan = inputs.plan
    quota_error = None
    try:
        # The period's usage is read by quota_check, and only when the plan limits messages.
        quota_check(tenant=tenant, kind="messages", amount=1, plan=plan)
    except QuotaExceeded as exc:
        quota_error = exc
    if inputs.prompt is None:  # bots are created with a published prompt; this only guards hand-made rows
        log.warning("bot %s has no published prompt; using the default", bot.pk)
    allowed = list(plan.allowed_models or [])
    chain = [e for e in bot.model_chain if _allowed(e, allowed)]
    skipped = [
        {"provider": e["provider"], "model": e["model"], "outcome": "skipped_plan", "latency_ms": 0.0}
        for e in bot.model_chain
        if not _allowed(e, allowed)
    ]
    keys: dict[str, ProviderKey | None] = dict(
        provider_keys_from(
            providers=[e["provider"] for e in chain if e["provider"] != "offline"], credentials=inputs.credentials
        )
    )
    knowledge_bases = inputs.knowledge_bases
    now = timezone.now()
    # bulk_create skips save()'s tenant check: the tenant is the one in context, passed explicitly.
    user_message, assistant = Message.objects.bulk_create(
        [
            Message(
                tenant=tenant,
                conversation=conversation,
                role=Message.Role.USER,
                content=text,
                status=Message.Status.COMPLETE,
                created=now,
                idempotency_key=idempotency_key,
            ),
            Message(
                tenant=tenant,
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                created=now,
            ),
        ]
    )
    setup = TurnSetup(
        tenant=tenant,
        user_message=user_message,
        assistant_message=assistant,
        prompt_text=inputs.prompt[0] if inputs.prompt is not None else DEFAULT_PROMPT,
        prompt_version=inputs.prompt[1] if inputs.prompt is not None else None,
        chain=chain,
        skipped=skipped,
        keys=keys,
        window=inputs.memory.window,
        summary=inputs.memory.summary,
        facts=inputs.memory.facts,
        quota_error=quota_error,
        webhook_events=inputs.webhook_events,
    )
    return setup, knowledge_bases


def turn_settle(*, tenant: Tenant, setup: TurnSetup, outcome: TurnOutcome) -> None:
    """The settle stage: write the assistant message's final state, its trace, the usage and the
    conversation's last_active in one transaction, then queue the memory refresh once it commits.
    Tenant scope required. Called once per turn, also when the visitor stopped it. A message
    deleted meanwhile raises DatabaseError (as save(update_fields=...) would) and writes nothing."""
    from conversations.tasks import memory_refresh_enqueue

    settle_started = time.perf_counter()
    message = setup.assistant_message
    message.content = outcome.content
    message.status = outcome.status
    message.model = outcome.model[:120]
    message.tokens_in = outcome.tokens_in
    message.tokens_out = outcome.tokens_out
    message.cost = outcome.cost
    message.citations = outcome.citations
    message.latency = outcome.latency
    message.error_code = outcome.error_code[:64]
    message.updated = timezone.now()
    with transaction.atomic():
        # The UPDATE save(update_fields=...) would send, through the scope, without save()'s
        # per-field machinery: ~0.4 ms of CPU less per turn.
        settled = {name: getattr(message, name) for name in (*SETTLED_FIELDS, "updated")}
        if not Message.objects.filter(pk=message.pk).update(**settled):
            raise DatabaseError(f"Message {message.pk} was deleted before its turn was settled.")
        Trace.objects.create(
            timings=_with_settle(outcome, settle_started),
            prompt_version=setup.prompt_version,
            tenant=tenant,
            message=message,
            retrieved=outcome.retrieved,
            retrieval=outcome.retrieval,
            prompt=outcome.prompt,
            attempts=setup.skipped + outcome.attempts,
            guardrail_hits=outcome.guardrail_hits,
        )
        # Written here rather than when the turn opens: nothing before the first token needs it.
        Conversation.objects.filter(pk=message.conversation_id).update(last_active=setup.user_message.created)
        if outcome.error_code != "quota_exceeded":
            usage_record(
                tenant=tenant,
                messages=1,
                tokens_in=outcome.tokens_in,
                tokens_out=outcome.tokens_out,
                cost=outcome.cost,
            )
        conversation_id = message.conversation_id
        transaction.on_commit(
            lambda: memory_refresh_enqueue(tenant_id=tenant.pk, conversation_id=conversation_id),
            robust=True,  # a broker hiccup must not fail a turn that is already answered
        )
        if setup.webhook_events:
            _emit_turn_events(tenant=tenant, setup=setup, outcome=outcome)


def _emit_turn_events(*, tenant: Tenant, setup: TurnSetup, outcome: TurnOutcome) -> None:
    """message.completed, and conversation.started for a conversation's first turn (its memory
    window was empty), when the tenant's endpoints want them: emitted once the settle commits."""
    message, conversation = setup.assistant_message, setup.user_message.conversation
    common = {"conversation_id": conversation.pk, "bot_id": conversation.bot_id, "channel": conversation.channel}
    if "conversation.started" in setup.webhook_events and not setup.window and not setup.summary:
        started = {**common, "visitor_id": conversation.visitor_id, "first_message": setup.user_message.content}
        transaction.on_commit(
            lambda: event_emit(name="conversation.started", tenant_id=tenant.pk, payload=started), robust=True
        )
    if "message.completed" in setup.webhook_events:
        completed = {
            **common,
            "message_id": message.pk,
            "question": setup.user_message.content,
            "answer": outcome.content,
            "status": outcome.status,
            "error_code": outcome.error_code,
            "model": message.model,
            "tokens_in": outcome.tokens_in,
            "tokens_out": outcome.tokens_out,
            "citations": [{"title": c.get("title"), "url": c.get("url")} for c in outcome.citations],
        }
        transaction.on_commit(
            lambda: event_emit(name="message.completed", tenant_id=tenant.pk, payload=completed), robust=True
        )


def _with_settle(outcome: TurnOutcome, settle_started: float) -> dict[str, Any]:
    """The outcome's timings and the settle's span. The span ends as the trace is written: its own
    insert and the usage row follow, in the same transaction, and are left out of it."""
    if not outcome.started:
        return dict(outcome.timings)
    now = time.perf_counter()
    settle = [round((settle_started - outcome.started) * 1000, 2), round((now - settle_started) * 1000, 2)]
    spans = {**outcome.timings.get("spans", {}), "settle": settle}
    return {
        **outcome.timings,
        "settle_ms": settle[1],
        "total_ms": round((now - outcome.started) * 1000, 2),
        "spans": spans,
    }


SETTLED_FIELDS = ("content", "status", "model", "tokens_in", "tokens_out", "cost", "citations", "latency", "error_code")
