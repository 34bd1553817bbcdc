"""Admin actions that need input (comp a plan, re-index): render a small form, then run on `apply`.

Here, in the lowest app, so every app's admin can use it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse


def action_form(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    form_class: type[forms.Form],
    action: str,
    title: str,
    submit_label: str,
) -> tuple[forms.Form | None, TemplateResponse | None]:
    """(valid form, None) when the operator submitted it; (None, page) to show (again, with errors)."""
    applying = "apply" in request.POST
    form = form_class(request.POST if applying else None)
    if applying and form.is_valid():
        return form, None
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "objects": list(queryset),
        "form": form,
        "action": action,
        "submit_label": submit_label,
        "opts": model_admin.model._meta,
    }
    return None, TemplateResponse(request, "admin/operator/action_form.html", context)
