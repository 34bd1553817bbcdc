"""Settings → Privacy: export or erase one visitor (owners and admins).

The visitor id travels in POST bodies and in the look-up's query string only; every read and
write goes through the tenant scope (privacy_selectors / privacy_services), so another
workspace's visitor is "nothing found" exactly like an unknown one.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from tenants.decorators import require_role
from tenants.models import Role

from .models import Message
from .privacy_selectors import visitor_conversations, visitor_export, visitor_leads
from .privacy_services import visitor_erase

NOTHING_FOUND = "Nothing found for that visitor."


class VisitorForm(forms.Form):
    visitor = forms.CharField(
        max_length=200,
        label="Visitor id or signed identity",
        help_text="The widget's visitor id (shown in each conversation) or the user id your site signed "
        "for an identified visitor.",
    )


def _found(visitor: str) -> dict[str, int] | None:
    ids = list(visitor_conversations(visitor=visitor).values_list("pk", flat=True))
    leads = visitor_leads(visitor=visitor).count()
    if not ids and not leads:
        return None
    return {
        "conversations": len(ids),
        "messages": Message.objects.filter(conversation_id__in=ids).count(),
        "leads": leads,
    }


def _page(request: HttpRequest, form: VisitorForm, found: dict[str, int] | None, *, status: int = 200) -> HttpResponse:
    visitor = form.cleaned_data["visitor"] if form.is_bound and form.is_valid() else ""
    context = {"form": form, "visitor": visitor, "found": found, "nothing_found": NOTHING_FOUND}
    return render(request, "conversations/privacy.html", context, status=status)


@require_GET
@require_role(Role.ADMIN)
def privacy_page(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The look-up form; with ?visitor=, what is stored about that visitor and the two actions."""
    if "visitor" not in request.GET:
        return _page(request, VisitorForm(), None)
    form = VisitorForm(request.GET)
    if not form.is_valid():
        return _page(request, form, None, status=400)
    return _page(request, form, _found(form.cleaned_data["visitor"]))


@require_POST
@require_role(Role.ADMIN)
def privacy_visitor_export(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = VisitorForm(request.POST)
    if not form.is_valid():
        return _page(request, form, None, status=400)
    data = visitor_export(visitor=form.cleaned_data["visitor"])
    if data is None:
        return _page(request, form, None)
    body = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    name = slugify(form.cleaned_data["visitor"])[:60] or "visitor"
    response["Content-Disposition"] = f'attachment; filename="visitor-{name}.json"'
    return response


@require_POST
@require_role(Role.ADMIN)
def privacy_visitor_erase(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = VisitorForm(request.POST)
    if not form.is_valid():
        return _page(request, form, None, status=400)
    result = visitor_erase(visitor=form.cleaned_data["visitor"])
    if result.empty:
        return _page(request, form, None)
    messages.success(
        request,
        f"Erased the visitor: {result.conversations} conversations, {result.messages} messages "
        f"and {result.leads} leads are gone.",
    )
    return redirect("privacy", tenant_slug=tenant_slug)
