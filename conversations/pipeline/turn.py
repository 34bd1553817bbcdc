"""The database side of one turn: open it (store messages, load what the pipeline needs) and
settle it (final status, trace, usage, memory refresh). Sync functions, run in a thread with
the tenant context set, because the ORM is synchronous."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, router, transaction
from django.db.models import Model, OuterRef, QuerySet, Subquery, sql
from django.utils import timezone

from billing.quotas import QuotaExceeded, effective_plan, quota_check
from billing.services import usage_record, usage_update
from bots.models import Bot, PromptVersion
from bots.selectors import ProviderKey, provider_keys
from conversations.llm.base import ChatMessage
from conversations.models import Conversation, Message, Trace
from tenants.context import get_current_tenant, tenant_context
from tenants.models import Tenant
from tenants.scoping import CrossTenantWrite

from .memory import memory_window

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
class TurnPrelude:
    tenant: Tenant
    knowledge_bases: list[tuple[int, str]]  # (id, embedding model) of the bot's knowledge bases


def turn_prelude(*, bot: Bot) -> TurnPrelude:
    """The bot's tenant, read fresh (a suspension applies to the next message), and, when it is
    active, the bot's knowledge bases with their embedding models, so that the caller can embed
    the query while turn_open runs. Needs no tenant context."""
    tenant = Tenant.objects.get(pk=bot.tenant_id)
    knowledge_bases: list[tuple[int, str]] = []
    if tenant.is_active:
        with tenant_context(tenant):
            knowledge_bases = list(bot.knowledge_bases.order_by("id").values_list("id", "embedding_model"))
    return TurnPrelude(tenant, knowledge_bases)


def _allowed(entry: dict[str, Any], allowed: list[str]) -> bool:
    if not allowed or entry["provider"] == "offline":
        return True
    return entry["model"] in allowed or f"{entry['provider']}:{entry['model']}" in allowed


def turn_open(*, tenant: Tenant, bot: Bot, conversation: Conversation, text: str) -> TurnSetup:
    """Load the turn's inputs, then store the visitor's message and a `streaming` assistant message.

    Tenant scope required. Five queries whatever the history (six on a plan with a message limit):
    the plan, the conversation's memory with the published prompt, the provider keys, the memory
    window, and one INSERT for both messages. That INSERT comes last and commits on its own, so a
    failed read stores nothing, and when this returns the visitor's message is committed (before
    any model is called). The quota is checked here too; an exceeded quota is returned (not
    raised) so the caller can settle the turn and report it. `last_active` is written by
    turn_settle, after the answer.
    """
    plan = effective_plan(tenant=tenant)
    quota_error = None
    try:
        quota_check(tenant=tenant, kind="messages", amount=1, plan=plan)
    except QuotaExceeded as exc:
        quota_error = exc
    # Memory and the published prompt in one query; the prompt is a subquery through the scope.
    published = PromptVersion.objects.filter(bot_id=OuterRef("bot_id"), is_published=True)
    fresh = (
        Conversation.objects.filter(pk=conversation.pk)
        .annotate(
            prompt_text=Subquery(published.values("text")[:1]), prompt_number=Subquery(published.values("number")[:1])
        )
        .values("summary", "visitor_facts", "prompt_text", "prompt_number")
        .first()
    ) or {}
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
        provider_keys(providers=[e["provider"] for e in chain if e["provider"] != "offline"])
    )
    # Read before the INSERT below, so the window is the history without this turn's messages.
    window = memory_window(conversation=conversation, size=settings.BOT_MEMORY_WINDOW_MESSAGES)
    now = timezone.now()
    user_message, assistant = Message.objects.bulk_create(
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
    return TurnSetup(
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


def _insert_sql(obj: Model) -> tuple[str, tuple[Any, ...]]:
    """The INSERT that `obj.save()` runs for a new row with a database-generated key."""
    current = get_current_tenant()
    if getattr(obj, "tenant_id", current.pk) != current.pk:
        raise CrossTenantWrite(f"{type(obj).__name__} belongs to tenant {obj.tenant_id}, not {current.pk}.")
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    query = sql.InsertQuery(meta.model)
    query.insert_values(fields, [obj])
    [(statement, params)] = query.get_compiler(router.db_for_write(meta.model)).as_sql()
    return statement, params
