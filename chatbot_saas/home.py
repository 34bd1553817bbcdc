"""The workspace home, t/<tenant_slug>/: the onboarding checklist, then the insights overview
(conversations.insights). It lives here rather than in tenants because it reads the apps above
tenants (chatbot_saas.onboarding, conversations.insights)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from conversations.insights.charts import overview_charts
from conversations.insights.forms import OverviewFilter
from conversations.insights.selectors import overview_for
from tenants.context import get_current_tenant
from tenants.decorators import require_role
from tenants.models import Membership, Role
from tenants.selectors import memberships_for_user

from .onboarding import onboarding_checklist


@require_role(Role.MEMBER)
def tenant_home(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = get_current_tenant()
    context = {
        "member_count": Membership.objects.count(),
        # require_role let only a signed-in member of the workspace in context through.
        "memberships": memberships_for_user(user=cast(AbstractBaseUser, request.user)),
        "onboarding": onboarding_checklist(tenant=tenant),
    }
    # ?range=7|30|90 and ?bot=<id>: a bad value is answered 400 with the error beside its field.
    overview_filter = OverviewFilter(request.GET or None)
    status = 200
    if not request.GET or overview_filter.is_valid():
        data = overview_filter.cleaned_data if request.GET else {}
        overview = overview_for(tenant=tenant, days=data.get("range") or 30, bot=data.get("bot"))
        context |= {"overview": overview, "charts": overview_charts(overview.points)}
    else:
        status = 400
    context["overview_filter"] = overview_filter
    return render(request, "tenants/home.html", context, status=status)
