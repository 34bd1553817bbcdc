"""The database side of one turn: open it (store messages, load what the pipeline needs) and
settle it (final status, trace, usage, memory refresh). Sync functions, run in a thread with
the tenant context set, because the ORM is synchronous."""

from __future__ import annotations

import logging
import time
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import DatabaseError, connection, connections, router, transaction
from django.db.models import OuterRef, QuerySet, Subquery, sql
from django.db.models.functions import JSONObject
from django.utils import timezone

from billing.models import Plan, Subscription, UsageCounter
from billing.quotas import QuotaExceeded, plan_of, quota_check
from billing.services import current_period, usage_record, usage_update
from bots.models import Bot, PromptVersion, ProviderCredential
from bots.selectors import ProviderKey, provider_keys_from
from conversations.llm.base import ChatMessage
from conversations.models import Conversation, Message, Trace
from knowledge.models import KnowledgeBase
from knowledge.types import RetrievedPassage
from tenants.context import get_current_tenant, tenant_context
from tenants.models import Tenant
from tenants.scoping import ScopedQuery, TenantScopedModel

from . import candidate
from .memory import memory_window_subquery
from .retrieval import passages_for

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
    prompt: list[dict[str, str]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    guardrail_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TurnBegin:
    """What turn_begin found and did: refused (nothing stored), or the turn opened."""

    tenant: Tenant
    refused: str = ""  # "tenant_suspended" or "bot_paused": nothing was stored
    setup: TurnSetup | None = None
    knowledge_bases: list[tuple[int, str]] = field(default_factory=list)  # (id, embedding model)
    # Retrieved in the same thread when the query vectors were ready by then (None: not yet).
    passages: list[RetrievedPassage] | None = None
    retrieval_ms: float = 0.0


def turn_begin(
    *, bot: Bot, conversation: Conversation, text: str, query_vectors: Future | None = None, retrieve: bool = True
) -> TurnBegin:
    """Everything the turn needs before its prompt, in one thread hop and two round trips: the
    bot's tenant, read fresh (a suspension applies to the next message), with the turn's inputs
    (_read_inputs), then the INSERT of its messages. Needs no tenant context.

    `query_vectors` is the query being embedded meanwhile (a {model: vector} future): when it is
    done by the time the messages are stored, or already being computed then (it is then waited
    for, up to EMBEDDING_WAIT seconds), and `retrieve` is set (no refusal is due), the passages
    are searched here too, saving the pipeline another hop.
    """
    tenant, inputs = _read_inputs(bot=bot, conversation=conversation)
    if not tenant.is_active:
        return TurnBegin(tenant, refused="tenant_suspended")
    if bot.status != Bot.Status.ACTIVE:
        return TurnBegin(tenant, refused="bot_paused")
    with tenant_context(tenant):
        setup, knowledge_bases = _turn_open(tenant=tenant, bot=bot, conversation=conversation, text=text, inputs=inputs)
        begin = TurnBegin(tenant, setup=setup, knowledge_bases=knowledge_bases)
        wait = retrieve and bool(knowledge_bases) and setup.quota_error is None
        vectors = _ready(query_vectors, wait=wait)
        wanted = {model for _kb_id, model in knowledge_bases}
        if retrieve and setup.quota_error is None and vectors is not None and wanted <= vectors.keys():
            started = time.perf_counter()
            begin.passages = passages_for(
                tenant=tenant, bot=bot, query=text, knowledge_base_ids=[kb_id for kb_id, _model in knowledge_bases],
                query_vectors=vectors,
            )  # fmt: skip
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


# The turn's reads, each compiled by the ORM once per process (ScopedQuery), through the tenant
# scope. Compiling them every turn cost ~10 ms of CPU, more than Postgres took to run them.
def _conversation_inputs(*, window: int, conversation_id: int) -> QuerySet:
    # Memory, the published prompt, the window and the knowledge bases in one row; each is a
    # subquery built through the tenant scope.
    published = PromptVersion.objects.filter(bot_id=OuterRef("bot_id"), is_published=True)
    return (
        Conversation.objects.filter(pk=conversation_id)
        .annotate(
            prompt_text=Subquery(published.values("text")[:1]),
            prompt_number=Subquery(published.values("number")[:1]),
            window=memory_window_subquery(size=window),
            knowledge_bases=ArraySubquery(
                KnowledgeBase.objects.filter(bots=OuterRef("bot_id"))
                .order_by("id")
                .values(pair=JSONObject(id="id", model="embedding_model"))
            ),
        )
        .values("summary", "visitor_facts", "prompt_text", "prompt_number", "window", "knowledge_bases")[:1]
    )


_SUBSCRIPTION_FIELDS = tuple(f.attname for f in Subscription._meta.concrete_fields)
_PLAN_FIELDS = tuple(f.attname for f in Plan._meta.concrete_fields)

CONVERSATION_INPUTS = ScopedQuery(_conversation_inputs, conversation_id=int)
SUBSCRIPTION = ScopedQuery(
    lambda: Subscription.objects.order_by("pk").values(*_SUBSCRIPTION_FIELDS, *(f"plan__{f}" for f in _PLAN_FIELDS))[:1]
)
MESSAGES_USED = ScopedQuery(
    lambda *, period: UsageCounter.objects.filter(period=period).order_by("pk").values("messages")[:1], period=date
)
CREDENTIALS = ScopedQuery(
    lambda *, providers: ProviderCredential.objects.filter(provider__in=providers).values(
        "provider", "encrypted_key", "base_url"
    )
)


@dataclass
class _Inputs:
    subscription: Subscription | None
    messages_used: int
    conversation: dict[str, Any]
    credentials: list[ProviderCredential]


def _read_inputs(*, bot: Bot, conversation: Conversation) -> tuple[Tenant, _Inputs]:
    """The bot's tenant, its subscription and plan, the period's message count, the conversation's
    memory, prompt, window and knowledge bases, and the provider credentials: five statements
    sent in one round trip (a client-side-bound cursor sends them as one simple query).

    The tenant-owned rows are read through the tenant scope, for the bot's tenant: the scope's
    tenant stands in for the row read in the same round trip, which then decides whether the
    turn may go on and becomes the context of everything after."""
    db = router.db_for_read(Tenant)
    tenant_query = Tenant.objects.filter(pk=bot.tenant_id).values_list(
        *(f.attname for f in Tenant._meta.concrete_fields)
    )
    tenant_sql, tenant_params = tenant_query.query.get_compiler(db).as_sql()
    providers = tuple(sorted({e["provider"] for e in bot.model_chain or [] if e["provider"] != "offline"}))
    window = {"window": settings.BOT_MEMORY_WINDOW_MESSAGES}
    with tenant_context(Tenant(pk=bot.tenant_id)):
        statements = [
            (tenant_sql, list(tenant_params)),
            SUBSCRIPTION.statement(),
            MESSAGES_USED.statement(period=current_period()),
            CONVERSATION_INPUTS.statement(shape=window, conversation_id=conversation.pk),
        ]
        if providers:
            statements.append(CREDENTIALS.statement(shape={"providers": providers}))
    results = _run_together(db, statements)
    if not results[0]:
        raise Tenant.DoesNotExist(f"Tenant {bot.tenant_id} does not exist.")
    tenant = Tenant.from_db(db, [f.attname for f in Tenant._meta.concrete_fields], results[0][0])
    subscription = None
    for row in SUBSCRIPTION.rows(results[1]):
        subscription = Subscription.from_db(db, _SUBSCRIPTION_FIELDS, [row[f] for f in _SUBSCRIPTION_FIELDS])
        subscription.plan = Plan.from_db(db, _PLAN_FIELDS, [row[f"plan__{f}"] for f in _PLAN_FIELDS])
    used = MESSAGES_USED.rows(results[2])
    inputs = CONVERSATION_INPUTS.rows(results[3], shape=window)
    credentials = []
    if providers:
        shape = {"providers": providers}
        credentials = [
            ProviderCredential(tenant_id=tenant.pk, **row) for row in CREDENTIALS.rows(results[4], shape=shape)
        ]
    return tenant, _Inputs(
        subscription=subscription,
        messages_used=used[0]["messages"] if used else 0,
        conversation=candidate.apply(inputs[0] if inputs else {}),  # evaluation runs only
        credentials=credentials,
    )


def _run_together(db: str, statements: list[tuple[str, list[Any]]]) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows, the statements sent in one round trip. Only ORM-compiled SQL with
    its parameters goes in. That takes Django's default client-side-binding cursor; with
    server-side binding (OPTIONS server_side_binding) they are run one by one."""
    results = []
    with connections[db].cursor() as cursor:
        if not isinstance(cursor.cursor, psycopg.ClientCursor):
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
            return results
        cursor.execute(";\n".join(sql for sql, _params in statements), [p for _sql, ps in statements for p in ps])
        results.append(cursor.fetchall())
        while cursor.nextset():
            results.append(cursor.fetchall())
    return results


def _turn_open(
    *, tenant: Tenant, bot: Bot, conversation: Conversation, text: str, inputs: _Inputs
) -> tuple[TurnSetup, list[tuple[int, str]]]:
    """With the turn's inputs read (_read_inputs), check the quota, then store the visitor's
    message and a `streaming` assistant message.

    Tenant scope required. One statement: the INSERT of both messages, which commits on its own
    (no BEGIN/COMMIT round trips), so a failed read stores nothing, and when this returns the
    visitor's message is committed (before any model is called). The window was read before
    the INSERT, so it is the history without this turn's messages. An exceeded quota is returned
    (not raised) so the caller can settle the turn and report it. `last_active` is written by
    turn_settle, after the answer.
    """
    plan = plan_of(inputs.subscription)
    quota_error = None
    try:
        quota_check(tenant=tenant, kind="messages", amount=1, plan=plan, used=inputs.messages_used)
    except QuotaExceeded as exc:
        quota_error = exc
    fresh = inputs.conversation
    if fresh.get("prompt_text") is None:  # bots are created with a published prompt; this only guards hand-made rows
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
    window = [ChatMessage(m["role"], m["content"]) for m in reversed(fresh.get("window") or [])]
    knowledge_bases = [(kb["id"], kb["model"]) for kb in fresh.get("knowledge_bases") or []]
    now = timezone.now()
    user_message, assistant = _insert_messages(
        [
            Message(
                tenant=tenant, conversation=conversation, role=Message.Role.USER, content=text,
                status=Message.Status.COMPLETE, created=now,
            ),
            Message(
                tenant=tenant, conversation=conversation, role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING, created=now,
            ),
        ]
    )  # fmt: skip
    setup = TurnSetup(
        tenant=tenant,
        user_message=user_message,
        assistant_message=assistant,
        prompt_text=fresh["prompt_text"] if fresh.get("prompt_text") is not None else DEFAULT_PROMPT,
        prompt_version=fresh.get("prompt_number"),
        chain=chain,
        skipped=skipped,
        keys=keys,
        window=window,
        summary=fresh.get("summary", ""),
        facts=fresh.get("visitor_facts") or {},
        quota_error=quota_error,
    )
    return setup, knowledge_bases


def _insert_messages(messages: list[Message]) -> list[Message]:
    """bulk_create(messages) as one INSERT ... RETURNING id, after save()'s tenant check: in
    autocommit it commits on its own, where bulk_create wraps it in BEGIN and COMMIT (two more
    round trips). Tenant scope required."""
    get_current_tenant()
    meta = Message._meta
    for message in messages:
        message.claim_for_current_tenant()
    db = router.db_for_write(Message)
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    rows = Message.objects._insert(messages, fields=fields, returning_fields=[meta.pk], using=db)
    for message, (pk,) in zip(messages, rows, strict=True):
        message.pk = pk
        message._state.adding, message._state.db = False, db
    return messages


def turn_settle(*, tenant: Tenant, setup: TurnSetup, outcome: TurnOutcome) -> None:
    """Write the assistant message's final state, its trace and the usage, then queue the memory
    refresh. Tenant scope required. Called once per turn, also when the visitor stopped it.

    One round trip: the four writes (message, trace, usage counter, the conversation's
    last_active) are one statement of data-modifying CTEs, each compiled by the ORM from the
    tenant-scoped managers, so they are atomic without BEGIN/COMMIT (was six round trips and
    ~7 ms of CPU per turn, the largest part of it after the answer). The period's first turn of a
    tenant finds no usage row to update: then usage_record creates it, in a second step.
    """
    from conversations.tasks import memory_refresh_enqueue

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
    fields = ("content", "status", "model", "tokens_in", "tokens_out", "cost", "citations", "latency", "error_code")
    writes = [
        _update_sql(
            Message.objects.filter(pk=message.pk), {name: getattr(message, name) for name in (*fields, "updated")}
        ),
        _insert_sql(
            Trace(
                tenant=tenant,
                message=message,
                retrieved=outcome.retrieved,
                prompt=outcome.prompt,
                attempts=setup.skipped + outcome.attempts,
                guardrail_hits=outcome.guardrail_hits,
            )
        ),
        # Written here rather than in turn_open: nothing before the first token needs it.
        _update_sql(
            Conversation.objects.filter(pk=message.conversation_id), {"last_active": setup.user_message.created}
        ),
    ]
    usage = None
    if outcome.error_code != "quota_exceeded":
        usage = usage_update(messages=1, tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, cost=outcome.cost)
    if usage is not None:
        writes.append(_update_sql(*usage))
    parts, params = [], []
    for i, (statement, statement_params) in enumerate(writes):
        parts.append(f"w{i} AS ({statement} RETURNING 1)")
        params.extend(statement_params)
    counts = ", ".join(f"(SELECT count(*) FROM w{i})" for i in range(len(writes)))  # noqa: S608
    with connection.cursor() as cursor:
        # Only ORM-compiled SQL with its parameters goes into the statement.
        cursor.execute(f"WITH {', '.join(parts)} SELECT {counts}", params)  # noqa: S608
        rows = cursor.fetchone()
    if not rows[0]:
        # As Model.save(update_fields=...) does when the row is gone. (A deleted message fails the
        # whole statement first: the trace's foreign key is checked when the statement commits.)
        raise DatabaseError(f"Message {message.pk} was not settled: it no longer exists.")
    if usage is not None and not rows[-1]:
        usage_record(tenant=tenant, messages=1, tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out,
                     cost=outcome.cost)  # fmt: skip
    conversation_id = message.conversation_id
    transaction.on_commit(
        lambda: memory_refresh_enqueue(tenant_id=tenant.pk, conversation_id=conversation_id),
        robust=True,  # a broker hiccup must not fail a turn that is already answered
    )


def _update_sql(queryset: QuerySet, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE that `queryset.update(**values)` runs (the queryset's filters, so its tenant
    scope, included), as SQL and parameters."""
    query = queryset.query.chain(sql.UpdateQuery)
    query.add_update_values(values)
    return query.get_compiler(queryset.db).as_sql()


def _insert_sql(obj: TenantScopedModel) -> tuple[str, tuple[Any, ...]]:
    """The INSERT that `obj.save()` runs for a new row with a database-generated key, after the
    same tenant check."""
    get_current_tenant()  # tenant scope required, as for the statement's other writes
    obj.claim_for_current_tenant()
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    query = sql.InsertQuery(meta.model)
    query.insert_values(fields, [obj])
    [(statement, params)] = query.get_compiler(router.db_for_write(meta.model)).as_sql()
    return statement, params
