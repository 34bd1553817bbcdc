"""A bot's turn configuration: what every turn of the bot reads and what rarely changes (the
tenant's effective plan, the bot's published prompt and knowledge bases, the tenant's provider
credentials), remembered per process for a short while instead of read in four queries per turn.

Freshness, which the tests pin (tests/conversations/pipeline/test_pipeline_config.py):
- A change saved in this process (a service, a form, the admin: any save(), delete() or change to
  a bot's knowledge bases) is seen by the next turn: the receivers below forget the tenant's
  entries when the row is written and again when its transaction commits.
- A change made by another process (another web server, a Celery worker, a Stripe webhook) or
  written without signals (QuerySet.update(), raw SQL) is seen within
  runtime.TURN_CONFIG_TTL seconds (2 s): the entry is read afresh after that.
- Not remembered, so always exact: the tenant's status (a suspension refuses the next message),
  the bot row (its caller's), the period's message count for the quota, the conversation's memory.
- Evaluation turns (a candidate set, conversations.pipeline.candidate) always read afresh: an
  evaluation run judges exactly the configuration it names.

Receivers rather than calls in each service: every write path (services, dashboard forms, the
admin, the shell, billing's webhook handlers) saves through the ORM, so none can forget to clear
the cache. This is cache upkeep, not business logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from billing.models import Plan, Subscription
from billing.quotas import plan_of
from bots.models import Bot, Correction, PromptVersion, ProviderCredential
from chatbot_saas import runtime
from knowledge.models import KnowledgeBase
from webhooks.models import Endpoint
from webhooks.selectors import subscribed_events

from . import candidate


@dataclass(frozen=True)
class TurnConfig:
    plan: Plan  # the tenant's effective plan when read (a lapsed subscription's is the free plan)
    prompt: tuple[str, int | None] | None  # the published prompt version's text and number
    knowledge_bases: tuple[tuple[int, str], ...]  # (id, embedding model), by id
    credentials: tuple[ProviderCredential, ...]  # the tenant's, one per provider at most
    # Whether the bot has an enabled correction: read here, not off the caller's bot row, which a
    # widget socket holds for its whole connection (a correction written meanwhile must apply).
    has_corrections: bool = False
    # The webhook events the tenant's enabled endpoints want (empty when the plan has no
    # webhooks): the settle emits message.completed / conversation.started only when wanted, so
    # a turn of a tenant without endpoints spends nothing on webhooks.
    webhook_events: frozenset[str] = frozenset()


def turn_config(*, bot: Bot) -> TurnConfig:
    """The bot's turn configuration: remembered, or read afresh in five small queries (six with webhooks) (see the
    module docstring for how fresh it is). Tenant scope required (the bot's tenant)."""
    if candidate.active():
        return _read(bot)
    config, generation = runtime.turn_config(bot.tenant_id, bot.pk)
    if config is None:
        config = _read(bot)
        runtime.remember_turn_config(bot.tenant_id, bot.pk, config, generation)
    return config


def _read(bot: Bot) -> TurnConfig:
    # One subscription per tenant (one_subscription_per_tenant): no ordering needed.
    subscription = next(iter(Subscription.objects.select_related("plan", "comp_plan")), None)
    # One published version per bot (one_published_prompt_per_bot): no ordering needed.
    published = PromptVersion.objects.filter(bot_id=bot.pk, is_published=True).values_list("text", "number")
    bases = KnowledgeBase.objects.filter(bots=bot.pk).order_by("id").values_list("id", "embedding_model")
    plan = plan_of(subscription)
    # All of the tenant's credentials (a handful at most), so a change of the bot's chain needs none.
    return TurnConfig(
        plan=plan,
        prompt=next(iter(published), None),
        knowledge_bases=tuple(bases),
        credentials=tuple(ProviderCredential.objects.all()),
        has_corrections=Correction.objects.filter(bot_id=bot.pk, enabled=True).exists(),
        # A sixth query, for plans with webhooks only.
        webhook_events=subscribed_events() if plan.webhooks else frozenset(),
    )


def _forget_tenant(tenant_id: int, using: str | None) -> None:
    runtime.forget_turn_configs(tenant_id)

    def forget_again() -> None:
        runtime.forget_turn_configs(tenant_id)

    # Marked, so a test that counts the work a write queues for after commit can leave it out.
    forget_again.cache_upkeep = True  # type: ignore[attr-defined]
    # Again once the change commits: a turn that read the rows before then read the old ones.
    transaction.on_commit(forget_again, using=using)


def _row_changed(sender: type, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    _forget_tenant(instance.tenant_id, using)


def _bases_changed(sender: type, instance: Any, action: str, using: str | None = None, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _forget_tenant(instance.tenant_id, using)  # a Bot or a KnowledgeBase, whichever side changed


def _plan_changed(sender: type, instance: Plan, using: str | None = None, **kwargs: Any) -> None:
    # Plans are shared by tenants (and the default one by every lapsed tenant): forget them all.
    runtime.forget_turn_configs()
    transaction.on_commit(runtime.forget_turn_configs, using=using)


def connect_signals() -> None:
    """Called once, from ConversationsConfig.ready()."""
    for model in (Subscription, PromptVersion, KnowledgeBase, ProviderCredential, Correction, Endpoint):
        post_save.connect(_row_changed, sender=model, dispatch_uid=f"turn_config_{model.__name__}_saved")
        post_delete.connect(_row_changed, sender=model, dispatch_uid=f"turn_config_{model.__name__}_deleted")
    m2m_changed.connect(_bases_changed, sender=Bot.knowledge_bases.through, dispatch_uid="turn_config_bases")
    post_save.connect(_plan_changed, sender=Plan, dispatch_uid="turn_config_plan_saved")
    post_delete.connect(_plan_changed, sender=Plan, dispatch_uid="turn_config_plan_deleted")
