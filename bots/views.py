"""Dashboard pages for bots, under t/<tenant_slug>/bots/: settings, prompt versions with diff,
publish and rollback, and the workspace's own provider keys.

Objects are fetched through the tenant scope, so another tenant's id is a 404 exactly like a
missing one. Members may look; admins change settings, prompts and keys.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing.quotas import QuotaExceeded
from tenants.decorators import require_role
from tenants.models import Role

from . import selectors, services
from .evaluation import gate
from .forms import BotCreateForm, BotSettingsForm, CredentialForm, PromptVersionForm
from .models import Bot, PromptVersion, ProviderCredential

SETTINGS_FORM_LOOK_KEYS = ("title", "primary_color", "position", "avatar_url", "hide_powered_by")


def _bot(bot_id: int) -> Bot:
    return get_object_or_404(Bot.objects, pk=bot_id)


def _version(bot: Bot, promptversion_id: int) -> PromptVersion:
    return get_object_or_404(PromptVersion.objects, pk=promptversion_id, bot=bot)


def _add_errors(form: object, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)  # type: ignore[attr-defined]


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/forbidden.html", {"needed_role": "Admin"}, status=403)


@require_role(Role.MEMBER)
def bot_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = BotCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        if form.is_valid():
            try:
                with transaction.atomic():
                    bot = services.bot_create(
                        tenant=request.tenant,
                        name=form.cleaned_data["name"],
                        system_prompt=form.cleaned_data["system_prompt"],
                        author=request.user,
                    )
                    services.bot_attach_knowledge_bases(
                        bot=bot, knowledge_base_ids=[kb.pk for kb in form.cleaned_data["knowledge_bases"]]
                    )
            except QuotaExceeded as exc:
                form.add_error(None, exc.message)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"Bot “{bot.name}” created.")
                return redirect("bot_detail", tenant_slug=tenant_slug, bot_id=bot.pk)
    context = {"bots": selectors.bot_list(), "form": form}
    return render(request, "bots/bot_list.html", context, status=400 if form.errors else 200)


@require_role(Role.MEMBER)
def bot_detail(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        form = BotSettingsForm(request.POST)
        if form.is_valid():
            try:
                with transaction.atomic():
                    fields = form.service_fields()
                    # Look keys this form has no field for (set in the widget designer) are kept.
                    kept = {k: v for k, v in (bot.widget or {}).items() if k not in SETTINGS_FORM_LOOK_KEYS}
                    fields["widget"] = {**kept, **fields["widget"]}
                    services.bot_update(bot=bot, **fields)
                    # A change of knowledge bases goes through the evaluation gate; the rest saves now.
                    outcome = gate.gate_change_knowledge(
                        bot=bot,
                        knowledge_base_ids=[kb.pk for kb in form.cleaned_data["knowledge_bases"]],
                        by=request.user,
                    )
            except ValidationError as exc:
                _add_errors(form, exc)
                bot.refresh_from_db()
            else:
                if outcome.run is not None:
                    messages.info(
                        request,
                        "Settings saved. The new knowledge bases apply once the bot's evaluation set passes.",
                    )
                    return _after_gate(outcome, tenant_slug, bot, "bot_detail")
                messages.success(request, "Settings saved.")
                return redirect("bot_detail", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = BotSettingsForm(initial=BotSettingsForm.initial_for(bot))
    context = {"bot": bot, "form": form, "published": selectors.prompt_published(bot=bot)}
    return render(request, "bots/bot_detail.html", context, status=400 if form.errors else 200)


@require_role(Role.MEMBER)
def prompt_list(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    published = selectors.prompt_published(bot=bot)
    form = PromptVersionForm(
        request.POST if request.method == "POST" else None, initial={"text": published.text if published else ""}
    )
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        if form.is_valid():
            try:
                version = services.prompt_version_create(
                    bot=bot, text=form.cleaned_data["text"], note=form.cleaned_data["note"], author=request.user
                )
            except ValidationError as exc:
                form.add_error("text", " ".join(sum(exc.message_dict.values(), [])))
            else:
                if not form.cleaned_data["publish"]:
                    messages.success(request, f"Version {version.number} saved.")
                    return redirect("prompt_list", tenant_slug=tenant_slug, bot_id=bot.pk)
                outcome = gate.gate_publish_prompt(bot=bot, version=version, by=request.user)
                _gate_message(request, outcome, f"Version {version.number} saved and published.")
                return _after_gate(outcome, tenant_slug, bot, "prompt_list")
    context = {
        "bot": bot,
        "versions": selectors.prompt_versions(bot=bot),
        "published": published,
        "publications": selectors.prompt_publications(bot=bot),
        "form": form,
    }
    return render(request, "bots/prompt_list.html", context, status=400 if form.errors else 200)


@require_role(Role.MEMBER)
def prompt_detail(request: HttpRequest, tenant_slug: str, bot_id: int, promptversion_id: int) -> HttpResponse:
    """One version, with its diff against another (?against=<number>, default: the published one)."""
    bot = _bot(bot_id)
    version = _version(bot, promptversion_id)
    against_number = request.GET.get("against", "")
    if against_number.isdigit():
        against = PromptVersion.objects.filter(bot=bot, number=int(against_number)).first()
    else:
        against = selectors.prompt_published(bot=bot)
    diff = selectors.prompt_diff(old=against, new=version) if against and against.pk != version.pk else []
    context = {
        "bot": bot,
        "version": version,
        "against": against,
        "diff": diff,
        "versions": selectors.prompt_versions(bot=bot),
    }
    return render(request, "bots/prompt_detail.html", context)


def _gate_message(request: HttpRequest, outcome: gate.GateOutcome, applied: str) -> None:
    if outcome.run is not None:
        messages.info(request, "The bot's evaluation set is running first; the change applies when it passes.")
    elif outcome.publication is not None and outcome.publication.note:
        messages.success(request, f"{applied} {outcome.publication.note}")
    else:
        messages.success(request, applied)


def _after_gate(outcome: gate.GateOutcome, tenant_slug: str, bot: Bot, fallback: str) -> HttpResponse:
    if outcome.run is not None:
        return redirect("eval_run_detail", tenant_slug=tenant_slug, bot_id=bot.pk, evalrun_id=outcome.run.pk)
    return redirect(fallback, tenant_slug=tenant_slug, bot_id=bot.pk)


@require_POST
@require_role(Role.ADMIN)
def prompt_publish(request: HttpRequest, tenant_slug: str, bot_id: int, promptversion_id: int) -> HttpResponse:
    """Publish a version through the evaluation gate (bots.evaluation.gate): with cases, their
    run decides, and the admin follows it on the run's page. Publishing one older than the live
    version is recorded as a rollback."""
    bot = _bot(bot_id)
    version = _version(bot, promptversion_id)
    outcome = gate.gate_publish_prompt(bot=bot, version=version, by=request.user)
    _gate_message(request, outcome, f"Version {version.number} is live.")
    return _after_gate(outcome, tenant_slug, bot, "prompt_list")


@require_role(Role.ADMIN)
def credential_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = CredentialForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.provider_credential_set(tenant=request.tenant, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"The {form.cleaned_data['provider']} key was saved, encrypted.")
            return redirect("credential_list", tenant_slug=tenant_slug)
    context = {"credentials": ProviderCredential.objects.all(), "form": form}
    return render(request, "bots/credentials.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def credential_delete(request: HttpRequest, tenant_slug: str, providercredential_id: int) -> HttpResponse:
    credential = get_object_or_404(ProviderCredential.objects, pk=providercredential_id)
    services.provider_credential_delete(credential=credential)
    messages.success(request, f"The {credential.provider} key was deleted.")
    return redirect("credential_list", tenant_slug=tenant_slug)
