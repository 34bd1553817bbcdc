"""Settings → Danger zone, for owners: download the whole workspace as a zip, delete the workspace.

Owners only (require_role): an admin or member gets the 403 page, another workspace's member the
middleware's 404.
"""

from __future__ import annotations

import tempfile

from django import forms
from django.contrib import messages
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from chatbot_saas.errors import AppError
from tenants.decorators import require_role
from tenants.http import TenantRequest
from tenants.models import Role

from .tenant_erasure import tenant_delete
from .tenant_export import tenant_export_write

# Small workspaces stay in memory; a large one spills to a temporary file, never to var/.
SPOOL_BYTES = 16 * 1024 * 1024


@require_GET
@require_role(Role.OWNER)
def workspace_export(request: TenantRequest, tenant_slug: str) -> FileResponse:
    """The zip is built while the owner waits (tenant_export.py says what is in it)."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # FileResponse closes it
    tenant_export_write(out=out)
    out.seek(0)
    name = f"{request.tenant.slug}-{timezone.now():%Y-%m-%d}.zip"
    return FileResponse(out, as_attachment=True, filename=name, content_type="application/zip")


class DeleteForm(forms.Form):
    confirm_name = forms.CharField(max_length=120, label="Type the workspace's name to confirm")


@require_http_methods(["GET", "POST"])
@require_role(Role.OWNER)
def workspace_delete(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    form = DeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        name = request.tenant.name
        try:
            tenant_delete(tenant=request.tenant, confirm_name=form.cleaned_data["confirm_name"], by=request.user)
        except AppError as exc:
            form.add_error("confirm_name" if exc.code == "confirmation_mismatch" else None, exc.message)
        else:
            messages.success(request, f"The workspace “{name}” and all of its data were deleted.")
            return redirect("dashboard")
    status = 400 if form.errors else 200
    return render(request, "tenants/workspace_delete.html", {"form": form}, status=status)
