"""The workspace home, t/<tenant_slug>/. It lives here rather than in tenants because its
onboarding checklist reads the apps above tenants (chatbot_saas.onboarding)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.context import get_current_tenant
from tenants.decorators import require_role
from tenants.models import Membership, Role
from tenants.selectors import memberships_for_user

from .onboarding import onboarding_checklist


@require_role(Role.MEMBER)
def tenant_home(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    context = {
        "member_count": Membership.objects.count(),
        # require_role let only a signed-in member of the workspace in context through.
        "memberships": memberships_for_user(user=cast(AbstractBaseUser, request.user)),
        "onboarding": onboarding_checklist(tenant=get_current_tenant()),
    }
    return render(request, "tenants/home.html", context)
