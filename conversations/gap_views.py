"""The knowledge-gaps page, and "fix this answer": writing a correction from a failed answer or
from a gap group. Members read the gaps; admins and owners dismiss groups and write corrections
(403 otherwise). Another tenant's message or group is a 404: everything is fetched through the
tenant scope. The correction itself is saved by bots.correction_services, like on the bot's
Corrections tab.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from bots.correction_forms import CorrectionForm
from bots.correction_services import correction_create
from bots.models import Bot
from tenants.decorators import require_role
from tenants.models import Role

from .gap_selectors import gap_group_get, gap_list
from .gaps import gap_group_answered, gap_group_dismiss
from .models import Message


@require_role(Role.MEMBER)
def knowledge_gaps(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The gap groups, latest first; ?bot=<id> for one bot, ?show=dismissed for the hidden ones."""
    bots = list(Bot.objects.order_by("name").values_list("pk", "name"))
    raw = request.GET.get("bot", "")
    bot_id = int(raw) if raw.isdigit() and any(pk == int(raw) for pk, _ in bots) else None
    dismissed = request.GET.get("show") == "dismissed"
    context = {
        "rows": gap_list(bot_id=bot_id, dismissed=dismissed),
        "bots": bots,
        "bot_id": bot_id,
        "dismissed": dismissed,
    }
    return render(request, "conversations/knowledge_gaps.html", context)


@require_POST
@require_role(Role.ADMIN)
def gap_dismiss(request: HttpRequest, tenant_slug: str, gapgroup_id: int) -> HttpResponse:
    """Dismiss a group (or bring a dismissed one back): its questions keep joining it, hidden."""
    group = gap_group_get(group_id=gapgroup_id)
    if group is None:
        raise Http404("No such knowledge gap.")
    gap_group_dismiss(group=group, dismissed=not group.dismissed)
    messages.success(request, "Gap dismissed." if group.dismissed else "Gap shown again.")
    return redirect("knowledge_gaps", tenant_slug)


def _write(
    request: HttpRequest, *, bot: Bot, initial: dict[str, str], context: dict
) -> tuple[HttpResponse | None, int | None]:
    """Show or save the correction form; (response, None) to render, (None, correction id) when saved."""
    if request.method != "POST":
        form = CorrectionForm(initial=initial)
    else:
        form = CorrectionForm(request.POST)
        if form.is_valid():
            try:
                correction = correction_create(bot=bot, author=request.user, **form.cleaned_data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, "Correction saved: the bot answers this question with it from now on.")
                return None, correction.pk
    status = 400 if request.method == "POST" else 200
    return render(
        request, "conversations/correction_new.html", {**context, "form": form, "bot": bot}, status=status
    ), None


@require_role(Role.ADMIN)
def gap_correct(request: HttpRequest, tenant_slug: str, gapgroup_id: int) -> HttpResponse:
    """ "Write the answer" for a gap group: a correction on the group's bot, its question prefilled."""
    group = gap_group_get(group_id=gapgroup_id)
    if group is None:
        raise Http404("No such knowledge gap.")
    question = group.representative.question if group.representative else ""
    response, correction_id = _write(request, bot=group.bot, initial={"question": question}, context={"group": group})
    if correction_id is None:
        assert response is not None
        return response
    gap_group_answered(group=group, correction_id=correction_id)
    return redirect("correction_edit", tenant_slug, group.bot_id, correction_id)


@require_role(Role.ADMIN)
def message_correct(request: HttpRequest, tenant_slug: str, conversation_id: int, message_id: int) -> HttpResponse:
    """ "Fix this answer": a correction from one answer, with the visitor's question and the
    answer they got prefilled."""
    answer = (
        Message.objects.select_related("conversation__bot")
        .filter(pk=message_id, conversation_id=conversation_id, role=Message.Role.ASSISTANT)
        .first()
    )
    if answer is None:
        raise Http404("No such answer.")
    question = (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.USER, id__lt=answer.pk)
        .order_by("-id")
        .values_list("content", flat=True)
        .first()
    )
    initial = {"question": (question or "")[:1000], "answer": answer.content}
    response, correction_id = _write(request, bot=answer.conversation.bot, initial=initial, context={"answer": answer})
    if correction_id is None:
        assert response is not None
        return response
    return redirect("correction_edit", tenant_slug, answer.conversation.bot_id, correction_id)
