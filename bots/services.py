"""Writes for bots, prompt versions and provider credentials.

Every service runs inside the caller's tenant context (the scoped managers raise TenantNotSet
otherwise) and validates with bots.validation, so a view, the admin, a command and the shell
refuse the same bad input with the same field errors.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.quotas import PlanFeatureRequired, feature_check, quota_check
from tenants.context import tenant_context
from tenants.models import Tenant

from . import validation
from .crypto import encrypt
from .models import (
    WIDGET_BRANDING_KEYS,
    Bot,
    HandoffSettings,
    PromptPublication,
    PromptVersion,
    ProviderCredential,
    WidgetOrigin,
)

# Fields bot_update may change, with the check each needs.
EDITABLE_FIELDS = {
    "name",
    "status",
    "welcome_message",
    "fallback_message",
    "no_answer_message",
    "fallback_contact",
    "answer_policy",
    "max_answer_tokens",
    "temperature",
    "model_chain",
    "widget",
    "allowed_origins",
    "allow_any_origin",
    "blocked_topics",
    "redact_output",
    "redact_input",
    "retrieval_k",
    "min_passage_score",
    "eval_margin",
}
WIDGET_KEYS = validation.WIDGET_KEYS


def default_model_chain() -> list[dict[str, Any]]:
    """The platform's chain for new bots: configured providers first, the offline answerer last."""
    chain: list[dict[str, Any]] = []
    if settings.OPENAI_API_KEY:
        chain.append({"provider": "openai", "model": "gpt-4o-mini", "params": {}})
    if settings.ANTHROPIC_API_KEY:
        chain.append({"provider": "anthropic", "model": "claude-haiku-4-5", "params": {}})
    chain.append({"provider": "offline", "model": "extractive", "params": {}})
    return chain


def _branding_error(*, tenant: Tenant, widget: Any, current: dict[str, Any]) -> ValidationError | None:
    """plan_feature_required when the widget sets a new branding value on a plan without
    custom_branding. Values already saved are let through, so a downgraded workspace can still
    save its other settings; the widget stops showing them (bots.selectors.bot_widget_look)."""
    if not isinstance(widget, dict):
        return None
    if not any(widget.get(k) and widget.get(k) != current.get(k) for k in WIDGET_BRANDING_KEYS):
        return None
    try:
        feature_check(tenant=tenant, feature="custom_branding")
    except PlanFeatureRequired as exc:
        return ValidationError(f"{exc.message} Keep the “Powered by” line instead.", code=exc.code)
    return None


def _check_bot_fields(
    values: dict[str, Any], *, tenant: Tenant, current_widget: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate the fields being set; raise one ValidationError holding every field's error."""
    errors: dict[str, list[Any]] = {}
    checks = {
        "model_chain": validation.check_model_chain,
        "blocked_topics": validation.check_blocked_topics,
        "allowed_origins": validation.check_origins,
    }
    clean = dict(values)
    for field, check in checks.items():
        if field in values:
            try:
                clean[field] = check(values[field])
            except ValidationError as exc:
                errors.update(exc.message_dict)
    if "max_answer_tokens" in values or "temperature" in values:
        try:
            validation.check_generation(
                max_answer_tokens=values.get("max_answer_tokens", 512), temperature=values.get("temperature", 0.2)
            )
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "widget" in values:
        try:
            clean["widget"] = validation.check_widget_look(values["widget"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
        else:
            if branding := _branding_error(tenant=tenant, widget=clean["widget"], current=current_widget or {}):
                errors["widget"] = [branding]
    if "name" in values and (not isinstance(values["name"], str) or not values["name"].strip()):
        errors["name"] = ["A bot needs a name."]
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def bot_create(*, tenant: Tenant, name: str, system_prompt: str, author: Any = None, **fields: Any) -> Bot:
    """Create a bot with version 1 of its prompt, published. Checks the plan's bot quota first.

    Raises QuotaExceeded, or ValidationError with field errors (no bot is created then).
    """
    quota_check(tenant=tenant, kind="bots", amount=1)
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be set." for field in unknown})
    fields.setdefault("model_chain", default_model_chain())
    values = _check_bot_fields({"name": name, **fields}, tenant=tenant)
    text = validation.check_prompt_text(system_prompt)
    if Bot.objects.filter(name=values["name"].strip()).exists():
        raise ValidationError({"name": "A bot with this name already exists in this workspace."})
    bot = Bot(tenant=tenant, **{**values, "name": values["name"].strip()})
    bot.save()
    version = PromptVersion.objects.create(tenant=tenant, bot=bot, number=1, text=text, note="Initial", author=author)
    bot_publish_prompt(bot=bot, version=version, by=author)
    return bot


@transaction.atomic
def bot_update(*, bot: Bot, **fields: Any) -> Bot:
    """Change a bot's settings; raises ValidationError with field errors and saves nothing then."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in unknown})
    values = _check_bot_fields(fields, tenant=bot.tenant, current_widget=bot.widget or {})
    if "name" in values:
        values["name"] = values["name"].strip()
        if Bot.objects.filter(name=values["name"]).exclude(pk=bot.pk).exists():
            raise ValidationError({"name": "A bot with this name already exists in this workspace."})
    for field, value in values.items():
        setattr(bot, field, value)
    bot.save(update_fields=list(values))
    return bot


@transaction.atomic
def bot_attach_knowledge_bases(*, bot: Bot, knowledge_base_ids: list[int]) -> None:
    """Replace the bot's knowledge bases; ids of other tenants' bases are refused, not ignored."""
    from knowledge.models import KnowledgeBase

    bases = list(KnowledgeBase.objects.filter(pk__in=knowledge_base_ids))
    if len(bases) != len(set(knowledge_base_ids)):
        raise ValidationError({"knowledge_bases": "Unknown knowledge base."})
    bot.knowledge_bases.set(bases)


@transaction.atomic
def prompt_version_create(
    *, bot: Bot, text: str, author: Any = None, note: str = "", publish: bool = False
) -> PromptVersion:
    """Add the next version of the bot's prompt (numbers never repeat); publish it when asked.

    Locks the bot row so two editors saving at once get consecutive numbers. `publish` publishes
    without the evaluation gate (for bot_create-like callers); user-facing publishing goes through
    bots.evaluation.gate.gate_publish_prompt.
    """
    clean = validation.check_prompt_text(text)
    Bot.objects.select_for_update().filter(pk=bot.pk).first()
    last = PromptVersion.objects.filter(bot=bot).order_by("-number").values_list("number", flat=True).first()
    version = PromptVersion.objects.create(bot=bot, number=(last or 0) + 1, text=clean, note=note[:200], author=author)
    if publish:
        bot_publish_prompt(bot=bot, version=version, by=author)
    return version


@transaction.atomic
def bot_publish_prompt(
    *,
    bot: Bot,
    version: PromptVersion,
    by: Any = None,
    action: str = PromptPublication.Action.PUBLISH,
    eval_run: Any = None,
    score_drop: float | None = None,
    confirmed_drop: bool = False,
    note: str = "",
) -> PromptPublication:
    """Make `version` the one published prompt of `bot`, and record who did it.

    This is the write only; the evaluation gate in front of it (bots.evaluation.gate_*) decides
    whether it may run. `eval_run`, `score_drop`, `confirmed_drop` and `note` go to the log.

    Holds a row lock on the bot, so concurrent publishes serialise; the partial unique index
    guarantees at most one published version even if another path forgets the lock.
    """
    if version.bot_id != bot.pk:
        raise ValidationError({"version": "This version belongs to another bot."})
    Bot.objects.select_for_update().filter(pk=bot.pk).first()
    previous = PromptVersion.objects.filter(bot=bot, is_published=True).first()
    if previous and previous.pk != version.pk:
        previous.is_published = False
        previous.save(update_fields=["is_published"])
    if not version.is_published:
        version.is_published = True
        try:
            with transaction.atomic():
                version.save(update_fields=["is_published"])
        except IntegrityError:
            raise ValidationError({"version": "Another version was published at the same time; try again."}) from None
    return PromptPublication.objects.create(
        bot=bot,
        version=version,
        previous=previous,
        action=action,
        by=by,
        created=timezone.now(),
        eval_run=eval_run,
        score_drop=score_drop,
        confirmed_drop=confirmed_drop,
        note=note[:300],
    )


def bot_rollback_prompt(*, bot: Bot, version: PromptVersion, by: Any = None) -> PromptPublication:
    """Publish an earlier version again; recorded as a rollback."""
    return bot_publish_prompt(bot=bot, version=version, by=by, action=PromptPublication.Action.ROLLBACK)


@transaction.atomic
def provider_credential_set(*, tenant: Tenant, provider: str, api_key: str, base_url: str = "") -> ProviderCredential:
    """Store (or replace) the tenant's own key for `provider`, encrypted. Idempotent per provider."""
    if provider not in ProviderCredential.Provider.values:
        raise ValidationError({"provider": "Unknown provider."})
    api_key = (api_key or "").strip()
    if not api_key or len(api_key) > 400 or any(c.isspace() for c in api_key):
        raise ValidationError({"api_key": "Paste the provider's API key (no spaces, at most 400 characters)."})
    if base_url:
        base_url = validation.check_base_url(base_url)
    credential, _ = ProviderCredential.objects.update_or_create(
        provider=provider,
        defaults={
            "tenant": tenant,
            "encrypted_key": encrypt(api_key),
            "key_hint": api_key[-4:],
            "base_url": base_url,
            "updated": timezone.now(),
        },
    )
    return credential


def provider_credential_delete(*, credential: ProviderCredential) -> None:
    credential.delete()


# Enough for every site a real tenant embeds a bot on; a flood of forged Origin headers stops here.
MAX_WIDGET_ORIGINS_PER_BOT = 50


def widget_origin_record(*, bot: Bot, origin: str, allowed: bool) -> bool:
    """Note that the bot's widget asked for a session from `origin` (normalised), now; False when
    not recorded.

    Idempotent upsert on (bot, origin); keeps first_seen. A new origin beyond
    MAX_WIDGET_ORIGINS_PER_BOT is not recorded. The session endpoint has no tenant in context, so
    this enters the bot's own."""
    now = timezone.now()
    with tenant_context(bot.tenant):
        if WidgetOrigin.objects.filter(bot=bot, origin=origin).update(last_seen=now, allowed=allowed):
            return True
        if WidgetOrigin.objects.filter(bot=bot).count() >= MAX_WIDGET_ORIGINS_PER_BOT:
            return False
        WidgetOrigin.objects.get_or_create(
            bot=bot, origin=origin, defaults={"allowed": allowed, "first_seen": now, "last_seen": now}
        )
    return True


def handoff_settings_save(*, bot: Bot, form: Any) -> HandoffSettings:
    """Store the bot's handoff settings from a valid HandoffForm (creates the row the first time).
    Requires the bot's tenant in context."""
    settings = form.save(commit=False)
    settings.bot = bot
    settings.save()
    return settings
