"""Dashboard pages for a bot's evaluation set, under t/<tenant_slug>/bots/<bot_id>/evaluation/:
the cases (add, edit, delete, import, export, starter cases), runs with their scores per case,
and the publishing gate's decision (confirm or cancel a change whose score dropped).

Objects are fetched through the tenant scope and the bot, so another tenant's id is a 404 like a
missing one. Members may look; admins change cases, start runs (they spend message quota) and
decide gates, as they publish prompts.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants.decorators import require_role
from tenants.models import Role

from .evaluation import cases, gate
from .evaluation import selectors as eval_selectors
from .forms import EvalCaseForm, EvalImportForm
from .models import Bot, EvalCase, EvalRun
from .views import _add_errors, _forbidden

MAX_IMPORT_BYTES = 1_000_000


def _bot(bot_id: int) -> Bot:
    return get_object_or_404(Bot.objects, pk=bot_id)


def _case(bot: Bot, evalcase_id: int) -> EvalCase:
    return get_object_or_404(EvalCase.objects, pk=evalcase_id, bot=bot)


def _run(bot: Bot, evalrun_id: int) -> EvalRun:
    return get_object_or_404(EvalRun.objects.select_related("prompt_version", "baseline"), pk=evalrun_id, bot=bot)


@require_role(Role.MEMBER)
def eval_page(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """The bot's cases and run history; admins add a case here."""
    bot = _bot(bot_id)
    form = EvalCaseForm(request.POST if request.method == "POST" else None, bot=bot)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        if form.is_valid():
            try:
                cases.eval_case_create(bot=bot, **form.service_fields())
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, "Case added.")
                return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)
    context = {
        "bot": bot,
        "cases": eval_selectors.eval_cases_with_flags(bot=bot),
        "runs": eval_selectors.eval_runs(bot=bot),
        "pending": eval_selectors.eval_run_pending_gate(bot=bot),
        "form": form,
        "import_form": EvalImportForm(),
    }
    return render(request, "bots/eval_page.html", context, status=400 if form.errors else 200)


@require_role(Role.ADMIN)
def eval_case_edit(request: HttpRequest, tenant_slug: str, bot_id: int, evalcase_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    case = _case(bot, evalcase_id)
    initial = {
        "question": case.question,
        "expected_documents": [d["id"] for d in case.expected_documents],
        "expected_keywords": ", ".join(case.expected_keywords),
        "should_refuse": case.should_refuse,
    }
    form = EvalCaseForm(request.POST if request.method == "POST" else None, bot=bot, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            cases.eval_case_update(case=case, **form.service_fields())
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Case saved.")
            return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)
    context = {"bot": bot, "case": case, "form": form}
    return render(request, "bots/eval_case.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def eval_case_delete(request: HttpRequest, tenant_slug: str, bot_id: int, evalcase_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    cases.eval_case_delete(case=_case(bot, evalcase_id))
    messages.success(request, "Case deleted.")
    return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)


@require_role(Role.ADMIN)
def eval_starters(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Starter cases from the bot's documents, one per section, for the admin to review, edit or
    untick before saving. Nothing is saved until the form is posted."""
    bot = _bot(bot_id)
    starters = eval_selectors.eval_starter_cases(bot=bot)
    errors: list[str] = []
    if request.method == "POST":
        picked: list[cases.CaseInput] = []
        for i in range(int(request.POST.get("count", "0") or 0)):
            if not request.POST.get(f"keep_{i}"):
                continue
            document_id = request.POST.get(f"document_{i}", "")
            try:
                picked.append(
                    cases.check_case(
                        bot=bot,
                        question=request.POST.get(f"question_{i}", ""),
                        document_ids=[int(document_id)] if document_id.isdigit() else [],
                        keywords=[k for k in request.POST.get(f"keywords_{i}", "").split(",") if k.strip()],
                        should_refuse=False,
                    )
                )
            except ValidationError as exc:
                errors.append(f"Suggestion {i + 1}: {' '.join(sum(exc.message_dict.values(), []))}")
        if not errors:
            try:
                saved = cases.eval_cases_create_many(bot=bot, cases=picked)
            except ValidationError as exc:
                errors.extend(sum(exc.message_dict.values(), []))
            else:
                messages.success(request, f"{len(saved)} starter case(s) saved.")
                return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)
    context = {"bot": bot, "starters": starters, "errors": errors}
    return render(request, "bots/eval_starters.html", context, status=400 if errors else 200)


@require_POST
@require_role(Role.ADMIN)
def eval_import(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    form = EvalImportForm(request.POST, request.FILES)
    errors: list[str] = []
    if not form.is_valid():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
    elif form.cleaned_data["file"].size > MAX_IMPORT_BYTES:
        errors = [f"The file is larger than {MAX_IMPORT_BYTES // 1_000_000} MB; split it."]
    else:
        try:
            text = form.cleaned_data["file"].read().decode("utf-8-sig")
        except UnicodeDecodeError:
            errors = ["Line 1: the file is not UTF-8 text."]
        else:
            try:
                saved = cases.eval_cases_import(bot=bot, text=text, fmt=form.cleaned_data["format"])
            except cases.ImportErrors as exc:
                errors = exc.lines
            else:
                messages.success(request, f"{len(saved)} case(s) imported.")
                return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)
    context = {
        "bot": bot,
        "cases": eval_selectors.eval_cases_with_flags(bot=bot),
        "runs": eval_selectors.eval_runs(bot=bot),
        "pending": eval_selectors.eval_run_pending_gate(bot=bot),
        "form": EvalCaseForm(bot=bot),
        "import_form": form,
        "import_errors": errors,
    }
    return render(request, "bots/eval_page.html", context, status=400)


@require_role(Role.MEMBER)
def eval_export(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """?format=csv (default) or json; a file eval_import reads back."""
    bot = _bot(bot_id)
    fmt = "json" if request.GET.get("format") == "json" else "csv"
    content_type = "application/json" if fmt == "json" else "text/csv"
    response = HttpResponse(cases.eval_cases_export(bot=bot, fmt=fmt), content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="evaluation-bot-{bot.pk}.{fmt}"'
    return response


@require_POST
@require_role(Role.ADMIN)
def eval_run_start(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    try:
        run = gate.eval_run_create(bot=bot, by=request.user)
    except gate.EvalNoCases as exc:
        messages.error(request, exc.message)
        return redirect("eval_page", tenant_slug=tenant_slug, bot_id=bot.pk)
    messages.success(request, "Evaluation started.")
    return redirect("eval_run_detail", tenant_slug=tenant_slug, bot_id=bot.pk, evalrun_id=run.pk)


@require_role(Role.MEMBER)
def eval_run_detail(request: HttpRequest, tenant_slug: str, bot_id: int, evalrun_id: int) -> HttpResponse:
    """A run's scores per case; while it runs the page reloads itself (a plain meta refresh)."""
    bot = _bot(bot_id)
    run = _run(bot, evalrun_id)
    context = {"bot": bot, "run": run, "results": eval_selectors.eval_results(run=run)}
    return render(request, "bots/eval_run.html", context)


@require_POST
@require_role(Role.ADMIN)
def eval_run_confirm(request: HttpRequest, tenant_slug: str, bot_id: int, evalrun_id: int) -> HttpResponse:
    """The admin's explicit go-ahead for a change whose evaluation score dropped past the margin."""
    bot = _bot(bot_id)
    run = _run(bot, evalrun_id)
    try:
        gate.gate_confirm(run=run, by=request.user)
    except gate.EvalGateClosed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Change applied; the score drop is recorded in the publishing history.")
    return redirect("eval_run_detail", tenant_slug=tenant_slug, bot_id=bot.pk, evalrun_id=run.pk)


@require_POST
@require_role(Role.ADMIN)
def eval_run_cancel(request: HttpRequest, tenant_slug: str, bot_id: int, evalrun_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    run = _run(bot, evalrun_id)
    try:
        gate.gate_cancel(run=run)
    except gate.EvalGateClosed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Change cancelled; nothing was published.")
    return redirect("eval_run_detail", tenant_slug=tenant_slug, bot_id=bot.pk, evalrun_id=run.pk)
