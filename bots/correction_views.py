"""The bot editor's Corrections tab: the curated answers the support team wrote for a bot, under
t/<tenant_slug>/bots/<bot_id>/corrections/. Members look; admins and owners write, edit,
disable, delete and import. Another tenant's bot or correction is a 404 (fetched through the
tenant scope). Corrections written from an answer or a knowledge gap start in the
conversations app (conversations/gap_views.py) and are saved by the same service.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants.decorators import require_role
from tenants.models import Role

from .correction_forms import CorrectionForm, CorrectionImportForm
from .correction_selectors import correction_list_for_bot
from .correction_services import (
    correction_create,
    correction_delete,
    correction_set_enabled,
    correction_update,
    corrections_import_csv,
)
from .editor_views import _add_errors, _bot, _forbidden, can_edit
from .models import Bot, Correction


def _correction(bot: Bot, correction_id: int) -> Correction:
    return get_object_or_404(Correction.objects.select_related("bot"), pk=correction_id, bot_id=bot.pk)


def _list(
    request: HttpRequest,
    bot: Bot,
    *,
    form: CorrectionForm | None = None,
    import_errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "bot": bot,
        "tab": "corrections",
        "can_edit": can_edit(request),
        "corrections": correction_list_for_bot(bot=bot),
        "form": form or CorrectionForm(),
        "import_form": CorrectionImportForm(),
        "import_errors": import_errors or [],
    }
    return render(request, "bots/corrections.html", context, status=status)


@require_role(Role.MEMBER)
def correction_list(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """The bot's corrections with their use counts; admins add one with the form below the list."""
    bot = _bot(bot_id)
    if request.method != "POST":
        return _list(request, bot)
    if not can_edit(request):
        return _forbidden(request)
    form = CorrectionForm(request.POST)
    if form.is_valid():
        try:
            correction_create(bot=bot, author=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Correction saved: the bot answers this question with it from now on.")
            return redirect("correction_list", tenant_slug, bot.pk)
    return _list(request, bot, form=form, status=400)


@require_role(Role.MEMBER)
def correction_edit(request: HttpRequest, tenant_slug: str, bot_id: int, correction_id: int) -> HttpResponse:
    """One correction: its live version in a form (saving adds a version) and its history."""
    bot = _bot(bot_id)
    correction = _correction(bot, correction_id)
    status = 200
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        form = CorrectionForm(request.POST)
        if form.is_valid():
            try:
                correction = correction_update(correction=correction, author=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"Saved as version {correction.version}.")
                return redirect("correction_edit", tenant_slug, bot.pk, correction.pk)
        status = 400
    else:
        form = CorrectionForm(
            initial={"question": correction.question, "answer": correction.answer, "source_url": correction.source_url}
        )
    context = {
        "bot": bot,
        "tab": "corrections",
        "can_edit": can_edit(request),
        "correction": correction,
        "versions": correction.versions.select_related("author"),
        "form": form,
    }
    return render(request, "bots/correction_edit.html", context, status=status)


@require_POST
@require_role(Role.ADMIN)
def correction_toggle(request: HttpRequest, tenant_slug: str, bot_id: int, correction_id: int) -> HttpResponse:
    correction = _correction(_bot(bot_id), correction_id)
    correction_set_enabled(correction=correction, enabled=not correction.enabled)
    messages.success(
        request, "Correction enabled." if correction.enabled else "Correction disabled: it is kept, and no longer used."
    )
    return redirect("correction_list", tenant_slug, bot_id)


@require_POST
@require_role(Role.ADMIN)
def correction_remove(request: HttpRequest, tenant_slug: str, bot_id: int, correction_id: int) -> HttpResponse:
    correction_delete(correction=_correction(_bot(bot_id), correction_id))
    messages.success(request, "Correction deleted.")
    return redirect("correction_list", tenant_slug, bot_id)


@require_POST
@require_role(Role.ADMIN)
def correction_import(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Import an FAQ from CSV, all or nothing; refused lines are listed by number."""
    bot = _bot(bot_id)
    form = CorrectionImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _list(request, bot, import_errors=["Choose a CSV file to import."], status=400)
    result = corrections_import_csv(bot=bot, data=form.cleaned_data["file"].read(), author=request.user)
    if result.errors:
        return _list(request, bot, import_errors=result.errors, status=400)
    messages.success(request, f"Imported {result.created} corrections.")
    return redirect("correction_list", tenant_slug, bot.pk)
