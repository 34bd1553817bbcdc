"""Dashboard views for the workspace itself: switcher, team, settings, API keys (the home page,
which reads other apps for its checklist, is chatbot_saas.home).

Every object is fetched through the tenant scope (`Model.objects`), so another tenant's id
is a 404 exactly like a missing one.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from chatbot_saas.errors import AppError

from . import services
from .decorators import require_role
from .forms import ApiKeyForm, InvitationForm, RoleForm, WorkspaceForm
from .http import TenantRequest
from .middleware import SESSION_TENANT_KEY
from .models import ApiKey, Invitation, Membership, Role
from .selectors import can_leave, invitations_pending, memberships_for_user, team_members


@login_required
def dashboard_redirect(request: HttpRequest) -> HttpResponse:
    """/dashboard/ goes to the selected workspace, or the first one the user belongs to."""
    memberships = list(memberships_for_user(user=request.user))
    if not memberships:
        return render(request, "tenants/no_workspace.html")
    selected = request.session.get(SESSION_TENANT_KEY)
    chosen = next((m for m in memberships if m.tenant.slug == selected), memberships[0])
    return redirect("tenant_home", tenant_slug=chosen.tenant.slug)


def _forbidden(request: TenantRequest, needed: str = "Admin") -> HttpResponse:
    return render(request, "tenants/forbidden.html", {"needed_role": needed}, status=403)


@require_http_methods(["GET", "POST"])
@require_role(Role.MEMBER)
def member_list(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    """Everyone sees the team; admins also invite, change roles, remove, and withdraw invitations."""
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        if form.is_valid():
            try:
                services.invitation_create(
                    tenant=request.tenant,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                )
            except AppError as exc:
                # The two refusals about this address belong beside the address.
                form.add_error("email" if exc.code in ("already_member", "already_invited") else None, exc.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("member_list", tenant_slug=tenant_slug)
    is_admin, is_owner = request.membership.has_role(Role.ADMIN), request.membership.has_role(Role.OWNER)
    members = list(team_members())
    # Which rows get role and remove controls: not your own, and an owner's only for an owner.
    manageable = {
        m.pk for m in members if is_admin and m.pk != request.membership.pk and (is_owner or m.role != Role.OWNER)
    }
    context = {
        "members": members,
        "manageable": manageable,
        "invitations": invitations_pending() if is_admin else [],
        "form": form,
        "role_choices": Role.choices if is_owner else _ADMIN_GRANTABLE,
        "is_admin": is_admin,
    }
    return render(request, "tenants/members.html", context, status=400 if form.errors else 200)


_ADMIN_GRANTABLE = [(Role.ADMIN.value, Role.ADMIN.label), (Role.MEMBER.value, Role.MEMBER.label)]


@require_POST
@require_role(Role.ADMIN)
def member_role(request: TenantRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return redirect("member_list", tenant_slug=tenant_slug)
    try:
        services.membership_role_change(membership=membership, role=form.cleaned_data["role"], by=request.membership)
    except AppError as exc:
        if exc.status == 403:
            return _forbidden(request, "Owner")
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("member_list", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.ADMIN)
def member_agent(request: TenantRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
    """Give or take the agent permission (answering visitors in the inbox)."""
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
    is_agent = request.POST.get("is_agent") == "1"
    services.membership_agent_set(membership=membership, is_agent=is_agent, by=request.membership)
    who = membership.user.email or membership.user
    messages.success(request, f"{who} {'can now' if is_agent else 'can no longer'} answer visitors in the inbox.")
    return redirect("member_list", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.ADMIN)
def member_remove(request: TenantRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
    try:
        services.membership_remove(membership=membership, by=request.membership)
    except AppError as exc:
        if exc.status == 403:
            return _forbidden(request, "Owner")
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email or membership.user} was removed.")
    return redirect("member_list", tenant_slug=tenant_slug)


@require_http_methods(["GET", "POST"])
@require_role(Role.MEMBER)
def workspace_settings(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    """The workspace's name (admins edit it), its fixed slug, and the danger zone."""
    initial = {"name": request.tenant.name, "conversation_retention_days": request.tenant.conversation_retention_days}
    form = WorkspaceForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return _forbidden(request)
        if form.is_valid():
            try:
                services.tenant_rename(tenant=request.tenant, name=form.cleaned_data["name"])
                days = form.cleaned_data["conversation_retention_days"]
                changed = services.tenant_retention_set(tenant=request.tenant, days=days)
            except AppError as exc:
                form.add_error("name" if exc.code == "invalid_name" else "conversation_retention_days", exc.message)
            else:
                messages.success(request, f"The workspace is now called “{request.tenant.name}”.")
                if changed:
                    kept = f"for {days} days" if days else "forever"
                    messages.success(request, f"Conversations are now kept {kept}.")
                return redirect("workspace_settings", tenant_slug=tenant_slug)
    context = {"form": form, "can_leave": can_leave(membership=request.membership)}
    return render(request, "tenants/settings.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.MEMBER)
def workspace_leave(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    try:
        services.membership_leave(membership=request.membership)
    except AppError as exc:
        messages.error(request, exc.message)
        return redirect("workspace_settings", tenant_slug=tenant_slug)
    request.session.pop(SESSION_TENANT_KEY, None)
    messages.success(request, f"You left {request.tenant.name}.")
    return redirect("dashboard")


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
    services.api_key_revoke(api_key=key, by=request.user)
    messages.success(request, f"The key {key.name} was revoked.")
    return redirect("api_key_list", tenant_slug=tenant_slug)
