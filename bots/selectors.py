"""Reads for bots: lists, the published prompt, version diffs, provider keys."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from billing.quotas import feature_enabled
from tenants.context import tenant_context
from tenants.models import Tenant

from .crypto import decrypt
from .models import WIDGET_BRANDING_KEYS, Bot, PromptPublication, PromptVersion, ProviderCredential, WidgetOrigin


def bot_list() -> QuerySet[Bot]:
    """The tenant's bots with `knowledge_base_count`, in one query (the bot list page)."""
    return Bot.objects.annotate(knowledge_base_count=Count("knowledge_bases")).order_by("name")


def knowledge_base_readiness() -> QuerySet[Any]:
    """The tenant's knowledge bases with their documents counted by readiness (ready, processing,
    failed), in one query: the bot editor's knowledge section shows them beside each checkbox."""
    from knowledge.models import Document, KnowledgeBase

    return KnowledgeBase.objects.annotate(
        document_count=Count("documents"),
        ready_count=Count("documents", filter=Q(documents__status=Document.Status.READY)),
        failed_count=Count("documents", filter=Q(documents__status=Document.Status.FAILED)),
        processing_count=Count("documents", filter=~Q(documents__status__in=Document.FINAL_STATUSES)),
    ).order_by("name")


def bot_count_for_tenant(*, tenant: Tenant) -> int:
    """The tenant's bots: billing's `bots` quota counts these."""
    with tenant_context(tenant):
        return Bot.objects.count()


def bot_by_name_or_public_id(*, ref: str) -> Bot | None:
    """A bot of the tenant in context named `ref`, else the one whose public id is `ref` (the
    operators' commands take either)."""
    return Bot.objects.filter(name=ref).first() or Bot.objects.filter(public_id=ref).first()


def bot_get(*, bot_id: int) -> Bot | None:
    """A bot of the tenant in context, or None (another tenant's id included)."""
    return Bot.objects.filter(pk=bot_id).first()


def bot_widget_look(*, bot: Bot) -> dict[str, Any]:
    """The widget settings a visitor's widget may show: the branding keys (hiding the "Powered by"
    line) only while the tenant's plan includes custom_branding. One plan read; no tenant context needed."""
    look = dict(bot.widget or {})
    if any(look.get(k) for k in WIDGET_BRANDING_KEYS) and not feature_enabled(
        tenant=bot.tenant, feature="custom_branding"
    ):
        for key in WIDGET_BRANDING_KEYS:
            look.pop(key, None)
    return look


def prompt_published(*, bot: Bot) -> PromptVersion | None:
    return PromptVersion.objects.filter(bot=bot, is_published=True).first()


def prompt_versions(*, bot: Bot) -> QuerySet[PromptVersion]:
    """Newest first, each with `was_published` (live once, so not a draft), in one query."""
    ever = PromptPublication.objects.filter(version=OuterRef("pk"))
    return (
        PromptVersion.objects.filter(bot=bot)
        .select_related("author")
        .annotate(was_published=Exists(ever))
        .order_by("-number")
    )


def prompt_publications(*, bot: Bot, limit: int = 20) -> list[PromptPublication]:
    return list(
        PromptPublication.objects.filter(bot=bot)
        .select_related("version", "previous", "by")
        .order_by("-created")[:limit]
    )


def prompt_diff(*, old: PromptVersion, new: PromptVersion) -> list[tuple[str, str]]:
    """A line diff from `old` to `new` as (kind, line) pairs; kind is ' ', '+', '-' or '@'."""
    lines = difflib.unified_diff(
        old.text.splitlines(), new.text.splitlines(), f"v{old.number}", f"v{new.number}", lineterm="", n=3
    )
    out: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        out.append((line[:1] if line[:1] in "+-@" else " ", line[1:] if line[:1] in "+- " else line))
    return out


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff: the old line on the left, the new on the right.
    kind is "same", "changed", "removed" (left only) or "added" (right only)."""

    kind: str
    old_number: int | None
    old_text: str
    new_number: int | None
    new_text: str


def prompt_diff_side_by_side(*, old: PromptVersion, new: PromptVersion) -> list[DiffRow]:
    """Every line of both versions aligned in two columns (difflib's opcodes), for the compare page."""
    left, right = old.text.splitlines(), new.text.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [
                DiffRow("same", i + 1, left[i], j + 1, right[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        # A replaced block pairs its lines up; the longer side's extra lines stand alone.
        olds, news = list(range(i1, i2)), list(range(j1, j2))
        for k in range(max(len(olds), len(news))):
            i = olds[k] if k < len(olds) else None
            j = news[k] if k < len(news) else None
            kind = "changed" if i is not None and j is not None else ("removed" if j is None else "added")
            rows.append(
                DiffRow(
                    kind,
                    None if i is None else i + 1,
                    "" if i is None else left[i],
                    None if j is None else j + 1,
                    "" if j is None else right[j],
                )
            )
    return rows


@dataclass(frozen=True)
class ProviderKey:
    api_key: str | None
    base_url: str | None
    source: str  # "tenant", "platform" or "none"
    problem: str = ""  # why there is no usable key, for the trace
    # base_url was set by the tenant (not the operator): conversations.llm checks it at every call.
    tenant_base_url: bool = False


def _platform_key(provider: str) -> tuple[str, str]:
    return {
        "openai": (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL),
        "anthropic": (settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL),
        "openai_compatible": (settings.OPENAI_COMPATIBLE_API_KEY, settings.OPENAI_COMPATIBLE_BASE_URL),
    }.get(provider, ("", ""))


def _key_from(provider: str, credential: ProviderCredential | None) -> ProviderKey:
    platform = _platform_key(provider)
    if credential is not None:
        key = decrypt(credential.encrypted_key)
        if key is None:
            return ProviderKey(None, None, "tenant", "The stored key cannot be decrypted; enter it again.")
        # Without its own base URL a tenant key goes where the platform's would (e.g. a proxy).
        if credential.base_url:
            return ProviderKey(key, credential.base_url, "tenant", tenant_base_url=True)
        return ProviderKey(key, platform[1] or None, "tenant")
    if platform[0]:
        return ProviderKey(platform[0], platform[1] or None, "platform")
    return ProviderKey(None, None, "none", f"No {provider} API key is configured for this workspace or the platform.")


def provider_key(*, provider: str) -> ProviderKey:
    """The key to call `provider` with for the current tenant: its own, else the platform's."""
    return _key_from(provider, ProviderCredential.objects.filter(provider=provider).first())


def provider_keys(*, providers: Iterable[str]) -> dict[str, ProviderKey]:
    """provider_key for several providers in one query (the answer pipeline's chain)."""
    wanted = sorted(set(providers))
    if not wanted:
        return {}
    return provider_keys_from(providers=wanted, credentials=ProviderCredential.objects.filter(provider__in=wanted))


def provider_keys_from(
    *, providers: Iterable[str], credentials: Iterable[ProviderCredential]
) -> dict[str, ProviderKey]:
    """provider_keys with the tenant's credentials read already (the answer pipeline reads them
    together with the rest of its turn)."""
    # One credential per tenant and provider (uniq_credential_per_provider).
    by_provider = {c.provider: c for c in credentials}
    return {p: _key_from(p, by_provider.get(p)) for p in sorted(set(providers))}


@dataclass(frozen=True)
class SeenOrigin:
    origin: str
    first_seen: Any
    last_seen: Any
    allowed: bool  # by the bot's list as it is now (it may have changed since the widget loaded)


def widget_origins_seen(*, bot: Bot, limit: int = 20) -> list[SeenOrigin]:
    """The install check: where the bot's widget loaded from, latest first, each flagged by
    today's allowed origins. One query; the bot's tenant must be in context."""
    allowed = {o.rstrip("/").lower() for o in bot.allowed_origins or []}
    return [
        SeenOrigin(r.origin, r.first_seen, r.last_seen, bot.allow_any_origin or r.origin in allowed)
        for r in WidgetOrigin.objects.filter(bot=bot).order_by("-last_seen")[:limit]
    ]
