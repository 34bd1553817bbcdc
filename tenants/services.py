"""Writes for tenants, members, invitations and API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from chatbot_saas.errors import AppError, PermissionDenied

from .context import tenant_context
from .limits import member_limits_check
from .models import ApiKey, Invitation, Membership, Role, Tenant

API_KEY_PREFIX = "cbk_"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "workspace"
    slug = base
    while Tenant.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def tenant_create_with_owner(*, name: str, owner: AbstractBaseUser, slug: str | None = None) -> Tenant:
    """Create a tenant and make `owner` its owner.

    Tenants only: signup and the demo bootstrap go through chatbot_saas.signup.workspace_signup,
    which also starts the free plan.
    """
    name = name.strip()[:120] or "My workspace"
    tenant = Tenant.objects.create(name=name, slug=slug or _unique_slug(name))
    with tenant_context(tenant):
        Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    return tenant


def tenant_suspend(*, tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    tenant.status = Tenant.Status.SUSPENDED


def tenant_reactivate(*, tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
    tenant.status = Tenant.Status.ACTIVE


def invitation_create(*, tenant: Tenant, email: str, role: str, invited_by: AbstractBaseUser) -> tuple[Invitation, str]:
    """Create a single-use invitation and email its link. Returns (invitation, token).

    Requires the tenant in context. Refuses an email that is already a member, and an invitation
    that a registered member limit refuses (billing's plan quota, see tenants/limits.py).
    """
    email = email.strip().lower()
    if role not in (Role.ADMIN, Role.MEMBER):
        raise AppError("Invitations can be for admins or members only.", code="invalid_role")
    if Membership.objects.filter(user__email__iexact=email).exists():
        raise AppError(f"{email} is already a member of this workspace.", code="already_member")
    member_limits_check(tenant=tenant, amount=1)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_sha256(token),
        invited_by=invited_by,
        expires=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    link = settings.SITE_URL + reverse("invitation_accept", args=[token])
    send_mail(
        subject=f"You're invited to {tenant.name}",
        message=f"{invited_by} invited you to join {tenant.name} as {role}.\n\nAccept: {link}\n\n"
        f"The link works once and expires in {settings.INVITATION_TTL_HOURS} hours.",
        from_email=None,
        recipient_list=[email],
    )
    return invitation, token


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.revoked = timezone.now()
    invitation.save(update_fields=["revoked"])


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    """Accept an invitation by its token. Single use: a second call fails.

    Locks the invitation row so two concurrent accepts cannot both succeed.
    """
    invitation = (
        Invitation.objects.unscoped()
        .select_for_update()
        .select_related("tenant")
        .filter(token_hash=_sha256(token))
        .first()
    )
    if invitation is None:
        raise AppError("This invitation link is not valid. Ask for a new one.", code="invitation_invalid", status=404)
    if invitation.accepted is not None:
        raise AppError("This invitation was already used. Ask for a new one.", code="invitation_used", status=410)
    if invitation.revoked is not None:
        raise AppError("This invitation was withdrawn. Ask for a new one.", code="invitation_revoked", status=410)
    if invitation.expires <= timezone.now():
        raise AppError("This invitation has expired. Ask for a new one.", code="invitation_expired", status=410)
    if not invitation.tenant.is_active:
        raise AppError("This workspace is suspended.", code="tenant_suspended", status=403)
    with tenant_context(invitation.tenant):
        try:
            with transaction.atomic():
                membership = Membership.objects.create(tenant=invitation.tenant, user=user, role=invitation.role)
        except IntegrityError:
            raise AppError("You are already a member of this workspace.", code="already_member", status=409) from None
        invitation.accepted = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted", "accepted_by"])
    return membership


def membership_remove(*, membership: Membership, by: Membership) -> None:
    """Remove a member. The last owner cannot be removed (the tenant would be orphaned)."""
    if membership.role == Role.OWNER and not by.has_role(Role.OWNER):
        raise PermissionDenied("Only an owner can remove another owner.")
    if membership.role == Role.OWNER and Membership.objects.filter(role=Role.OWNER).count() <= 1:
        raise AppError("A workspace needs at least one owner.", code="last_owner")
    membership.delete()


def api_key_create(
    *, tenant: Tenant, name: str, scopes: list[str] | None = None, created_by: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    """Create an API key and return (key, raw secret). The secret is shown once, never stored."""
    valid = {choice.value for choice in ApiKey.Scope}
    scopes = list(scopes) if scopes else [ApiKey.Scope.CHAT, ApiKey.Scope.BOTS_READ]
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise AppError(
            f"Unknown scope(s): {', '.join(unknown)}. Valid: {', '.join(sorted(valid))}.", code="invalid_scope"
        )
    name = name.strip()
    if not name or len(name) > 100:
        raise AppError("An API key needs a name of 1 to 100 characters.", code="invalid_name")
    prefix = secrets.token_hex(4)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, key_hash=_sha256(raw), scopes=scopes, created_by=created_by
    )
    return key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    if api_key.revoked is None:
        api_key.revoked = timezone.now()
        api_key.save(update_fields=["revoked"])
