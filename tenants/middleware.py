"""Sets the current tenant for dashboard requests.

A view under `t/<tenant_slug>/` runs only for a member of that tenant; anyone else gets the
same 404 as for a tenant that does not exist, so slugs cannot be probed. The context
variable is reset after every request, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .context import reset_current_tenant, set_current_tenant
from .selectors import membership_for

SESSION_TENANT_KEY = "tenant_slug"


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tenant = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        token = set_current_tenant(None)
        try:
            return self.get_response(request)
        finally:
            reset_current_tenant(token)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        slug = view_kwargs.get("tenant_slug")
        if slug is None:
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = membership_for(user=request.user, tenant_slug=slug)
        if membership is None:
            raise Http404("No such workspace.")
        if not membership.tenant.is_active:
            return render(request, "tenants/suspended.html", {"tenant": membership.tenant}, status=403)
        request.tenant = membership.tenant  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        set_current_tenant(membership.tenant)
        if request.session.get(SESSION_TENANT_KEY) != slug:
            request.session[SESSION_TENANT_KEY] = slug
        return None
