"""The bot editor, one URL per section under t/<tenant_slug>/bots/<bot_id>/: basics, knowledge,
model chain (with the workspace's provider keys) and answer policy. Prompt versions and the
evaluation have their own views (bots.views, bots.eval_views); all share templates/bots/_tabs.html.

Each section is a plain form that saves on its own and shows its errors in place, so it works
without JavaScript. Members see every section read-only and get 403 on POST; another tenant's
bot is a 404 (fetched through the tenant scope).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants.decorators import require_role
from tenants.models import Role

from . import selectors, services
from .editor_forms import (
    BasicsForm,
    KnowledgeForm,
    PolicyForm,
    chain_formset,
    chain_formset_from_rows,
    chain_rows_from_post,
    model_choices,
)
from .evaluation import gate
from .forms import CredentialForm
from .models import Bot, ProviderCredential


def _bot(bot_id: int) -> Bot:
    return get_object_or_404(Bot.objects, pk=bot_id)


def can_edit(request: HttpRequest) -> bool:
    """Admins and owners change bots; members look. request.membership is set by the tenant middleware."""
    return request.membership.has_role(Role.ADMIN)  # type: ignore[attr-defined]


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/forbidden.html", {"needed_role": "Admin"}, status=403)


def _add_errors(form: Any, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _section(
    request: HttpRequest, template: str, bot: Bot, tab: str, *, invalid: bool = False, **context: Any
) -> HttpResponse:
    """Render a section; 400 when the form posted was refused (its errors are shown in place)."""
    context.update(bot=bot, tab=tab, can_edit=can_edit(request))
    return render(request, template, context, status=400 if invalid else 200)


@require_role(Role.MEMBER)
def bot_detail(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Basics: name, status, welcome message, the widget's suggested questions."""
    bot = _bot(bot_id)
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        form = BasicsForm(request.POST)
        if form.is_valid():
            try:
                services.bot_update(bot=bot, **form.service_fields(bot))
            except ValidationError as exc:
                _add_errors(form, exc)
                bot.refresh_from_db()
            else:
                messages.success(request, "Basics saved.")
                return redirect("bot_detail", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = BasicsForm(initial=BasicsForm.initial_for(bot))
    published = selectors.prompt_published(bot=bot)
    return _section(
        request, "bots/editor_basics.html", bot, "basics", invalid=bool(form.errors), form=form, published=published
    )


@require_role(Role.MEMBER)
def bot_knowledge(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Knowledge: attach and detach bases; a change goes through the evaluation gate."""
    bot = _bot(bot_id)
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        form = KnowledgeForm(request.POST)
        if form.is_valid():
            try:
                with transaction.atomic():
                    outcome = gate.gate_change_knowledge(
                        bot=bot,
                        knowledge_base_ids=[kb.pk for kb in form.cleaned_data["knowledge_bases"]],
                        by=request.user,
                    )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                if outcome.run is not None:
                    messages.info(request, "The new knowledge bases apply once the bot's evaluation set passes.")
                    return redirect(
                        "eval_run_detail", tenant_slug=tenant_slug, bot_id=bot.pk, evalrun_id=outcome.run.pk
                    )
                messages.success(request, "Knowledge bases saved.")
                return redirect("bot_knowledge", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = KnowledgeForm(initial={"knowledge_bases": [kb.pk for kb in bot.knowledge_bases.all()]})
    readiness = {row.pk: row for row in selectors.knowledge_base_readiness()}
    rows = [(choice, readiness.get(choice.data["value"].value)) for choice in form["knowledge_bases"]]
    return _section(
        request, "bots/editor_knowledge.html", bot, "knowledge", invalid=bool(form.errors), form=form, rows=rows
    )


def _chain_action(request: HttpRequest) -> tuple[str, int]:
    """The submit button pressed: ("save", -1), ("add", -1), ("up"|"down"|"remove", row)."""
    kind, _, index = request.POST.get("action", "save").partition(":")
    return kind, int(index) if index.isdigit() else -1


def _rearranged(request: HttpRequest, kind: str, index: int) -> Any:
    rows = chain_rows_from_post(request.POST)
    if kind == "add":
        rows.append({"provider": "offline", "model": "", "model_name": "", "base_url": ""})
    elif kind == "remove" and 0 <= index < len(rows):
        rows.pop(index)
    elif kind in ("up", "down"):
        other = index - 1 if kind == "up" else index + 1
        if 0 <= index < len(rows) and 0 <= other < len(rows):
            rows[index], rows[other] = rows[other], rows[index]
    return chain_formset_from_rows(rows)


@require_role(Role.MEMBER)
def bot_models(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Model chain: one row per entry. Add, move and remove re-show the editor without saving
    (no JavaScript needed); Save validates every row and stores the chain."""
    bot = _bot(bot_id)
    chain_errors: list[str] = []
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        kind, index = _chain_action(request)
        if kind != "save":
            formset = _rearranged(request, kind, index)
        else:
            formset = chain_formset(request.POST)
            if formset.is_valid():
                try:
                    services.bot_update(bot=bot, model_chain=formset.entries())
                except ValidationError as exc:
                    # The rows passed; what the service refuses concerns the chain as a whole.
                    chain_errors = sum(exc.message_dict.values(), [])
                else:
                    messages.success(request, "Model chain saved.")
                    return redirect("bot_models", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        formset = chain_formset(chain=bot.model_chain)
    return _models_page(request, bot, formset=formset, chain_errors=chain_errors, key_form=CredentialForm())


def _models_page(request: HttpRequest, bot: Bot, **context: Any) -> HttpResponse:
    context.setdefault("chain_errors", [])
    formset, key_form = context["formset"], context["key_form"]
    invalid = bool(context["chain_errors"] or key_form.errors or (formset.is_bound and not formset.is_valid()))
    return _section(
        request,
        "bots/editor_models.html",
        bot,
        "models",
        invalid=invalid,
        catalog=model_choices(),
        credentials=ProviderCredential.objects.all(),
        **context,
    )


@require_POST
@require_role(Role.ADMIN)
def bot_key_add(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Add or replace a provider key from the model chain section."""
    bot = _bot(bot_id)
    form = CredentialForm(request.POST)
    if form.is_valid():
        try:
            services.provider_credential_set(tenant=bot.tenant, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"The {form.cleaned_data['provider']} key was saved, encrypted.")
            return redirect("bot_models", tenant_slug=tenant_slug, bot_id=bot.pk)
    return _models_page(request, bot, formset=chain_formset(chain=bot.model_chain), key_form=form)


@require_POST
@require_role(Role.ADMIN)
def bot_key_delete(request: HttpRequest, tenant_slug: str, bot_id: int, providercredential_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    credential = get_object_or_404(ProviderCredential.objects, pk=providercredential_id)
    services.provider_credential_delete(credential=credential)
    messages.success(request, f"The {credential.provider} key was deleted.")
    return redirect("bot_models", tenant_slug=tenant_slug, bot_id=bot.pk)


@require_role(Role.MEMBER)
def bot_policy(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Answer policy and guardrails."""
    bot = _bot(bot_id)
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        form = PolicyForm(request.POST)
        if form.is_valid():
            try:
                services.bot_update(bot=bot, **form.service_fields())
            except ValidationError as exc:
                _add_errors(form, exc)
                bot.refresh_from_db()
            else:
                messages.success(request, "Answer policy saved.")
                return redirect("bot_policy", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = PolicyForm(initial=PolicyForm.initial_for(bot))
    return _section(request, "bots/editor_policy.html", bot, "policy", invalid=bool(form.errors), form=form)
