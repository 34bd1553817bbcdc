"""Dashboard views for the workspace itself: switcher, members, API keys (the home page, which
reads other apps for its checklist, is chatbot_saas.home).

Every object is fetched through the tenant scope (`Model.objects`), so another tenant's id
is a 404 exactly like a missing one.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from chatbot_saas.errors import AppError

from . import services
from .decorators import require_role
from .forms import ApiKeyForm, InvitationForm
from .middleware import SESSION_TENANT_KEY
from .models import ApiKey, Invitation, Membership, Role
from .selectors import memberships_for_user


@login_required
def dashboard_redirect(request: HttpRequest) -> HttpResponse:
    """/dashboard/ goes to the selected workspace, or the first one the user belongs to."""
    memberships = list(memberships_for_user(user=request.user))
    if not memberships:
        return render(request, "tenants/no_workspace.html")
    selected = request.session.get(SESSION_TENANT_KEY)
    chosen = next((m for m in memberships if m.tenant.slug == selected), memberships[0])
    return redirect("tenant_home", tenant_slug=chosen.tenant.slug)


@require_role(Role.MEMBER)
def member_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return render(request, "tenants/forbidden.html", {"needed_role": "Admin"}, status=403)
        if form.is_valid():
            try:
                services.invitation_create(
                    tenant=request.tenant,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                )
            except AppError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("member_list", tenant_slug=tenant_slug)
    context = {
        "members": Membership.objects.select_related("user").order_by("created"),
        "invitations": [i for i in Invitation.objects.order_by("-created")[:50] if i.is_pending],
        "form": form,
    }
    return render(request, "tenants/members.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def member_remove(request: HttpRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects, pk=membership_id)
    try:
        services.membership_remove(membership=membership, by=request.membership)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user} was removed.")
    return redirect("member_list", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.ADMIN)
def invitation_revoke(request: HttpRequest, tenant_slug: str, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects, pk=invitation_id)
    services.invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation for {invitation.email} was withdrawn.")
    return redirect("member_list", tenant_slug=tenant_slug)


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "tenants/invitation_accept.html", {"token": token})
    try:
        membership = services.invitation_accept(token=token, user=request.user)
    except AppError as exc:
        return render(request, "tenants/invitation_error.html", {"error": exc}, status=exc.status)
    request.session[SESSION_TENANT_KEY] = membership.tenant.slug
    messages.success(request, f"Welcome to {membership.tenant.name}.")
    return redirect("tenant_home", tenant_slug=membership.tenant.slug)


@require_role(Role.ADMIN)
def api_key_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = ApiKeyForm(request.POST if request.method == "POST" else None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_key = services.api_key_create(
                tenant=request.tenant,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                created_by=request.user,
            )
        except AppError as exc:
            form.add_error(None, exc.message)
        else:
            form = ApiKeyForm()
    context = {"keys": ApiKey.objects.all(), "form": form, "new_key": new_key}
    return render(request, "tenants/api_keys.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def api_key_revoke(request: HttpRequest, tenant_slug: str, apikey_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects, pk=apikey_id)
    services.api_key_revoke(api_key=key)
    messages.success(request, f"The key {key.name} was revoked.")
    return redirect("api_key_list", tenant_slug=tenant_slug)
