"""Writes for tenants, members, invitations and API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from chatbot_saas.errors import AppError, PermissionDenied

from .context import tenant_context
from .events import event_emit
from .limits import member_limits_check
from .models import ApiKey, AuditEvent, Invitation, Membership, Role, Tenant

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
    """Suspend the workspace. Emits `tenant.suspended` (the inbox closes its live sockets on it)."""
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    tenant.status = Tenant.Status.SUSPENDED
    transaction.on_commit(lambda: event_emit(name="tenant.suspended", tenant_id=tenant.pk, payload={}))


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
    pending = next((i for i in Invitation.objects.filter(email__iexact=email, accepted=None) if i.is_pending), None)
    if pending is not None:
        # A second link would leave two live tokens for one person; say what to do instead.
        raise AppError(
            f"{email} already has a pending invitation (it expires {pending.expires:%Y-%m-%d %H:%M} UTC). "
            "Withdraw it first to send a new one.",
            code="already_invited",
        )
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


def tenant_rename(*, tenant: Tenant, name: str) -> Tenant:
    """Rename the workspace. The slug (its URLs) never changes. Raises AppError(invalid_name)."""
    name = name.strip()
    if not name or len(name) > 120:
        raise AppError("A workspace needs a name of 1 to 120 characters.", code="invalid_name")
    tenant.name = name
    tenant.save(update_fields=["name"])
    return tenant


def tenant_retention_set(*, tenant: Tenant, days: int | None) -> bool:
    """Set how many days conversations are kept (None: forever); returns whether it changed.
    The nightly conversations.tasks.retention_enforce_task applies it. Raises AppError(invalid_retention)."""
    if days is not None and not 1 <= days <= 3650:
        raise AppError("Keep conversations for 1 to 3650 days, or leave it empty.", code="invalid_retention")
    if tenant.conversation_retention_days == days:
        return False
    tenant.conversation_retention_days = days
    tenant.save(update_fields=["conversation_retention_days"])
    return True


def _other_owners_locked(membership: Membership) -> int:
    """The owners besides `membership`, counted with their rows locked: two owners demoting or
    removing each other at once cannot both succeed and orphan the workspace."""
    owners = list(Membership.objects.select_for_update().filter(role=Role.OWNER).values_list("pk", flat=True))
    return sum(1 for pk in owners if pk != membership.pk)


def _refuse_last_owner(membership: Membership, doing: str) -> None:
    if membership.role == Role.OWNER and _other_owners_locked(membership) == 0:
        who = membership.user.email or membership.user.get_username()
        raise AppError(
            f"{who} is this workspace's only owner and cannot {doing}: a workspace needs "
            "at least one owner. Make another member an owner first.",
            code="last_owner",
        )


@transaction.atomic
def membership_remove(*, membership: Membership, by: Membership) -> None:
    """Remove a member. Only an owner removes an owner; the last owner cannot be removed (the
    workspace would be orphaned). Tenant scope required; locks the owners' rows."""
    if membership.role == Role.OWNER and not by.has_role(Role.OWNER):
        raise PermissionDenied("Only an owner can remove another owner.")
    _refuse_last_owner(membership, "be removed")
    membership.delete()


@transaction.atomic
def membership_role_change(*, membership: Membership, role: str, by: Membership) -> Membership:
    """Give a member another role. Admins move people between member and admin; only an owner
    makes an owner or changes an owner's role; the last owner cannot be demoted.

    Raises AppError(invalid_role, last_owner) or PermissionDenied. Tenant scope required; locks
    the owners' rows. Setting the role a member has already is a no-op.
    """
    if role not in Role.values:
        raise AppError(f"Unknown role {role!r}: choose owner, admin or member.", code="invalid_role")
    if not by.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can change roles.")
    if Role.OWNER in (membership.role, role) and not by.has_role(Role.OWNER):
        raise PermissionDenied("Only an owner can make someone an owner or change an owner's role.")
    if membership.role == role:
        return membership
    if role != Role.OWNER:
        _refuse_last_owner(membership, "be demoted")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        action="member.role_change",
        actor=by.user,
        target=membership,
        details={"user": membership.user.get_username(), "from": previous, "to": role},
    )
    return membership


def membership_agent_set(*, membership: Membership, is_agent: bool, by: Membership) -> Membership:
    """Give or take a member's `agent` permission (answering visitors in the inbox). Owners and
    admins are agents anyway. Raises PermissionDenied unless `by` is an admin. Tenant scope required."""
    if not by.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can choose who answers visitors.")
    membership.is_agent = is_agent
    membership.save(update_fields=["is_agent"])
    return membership


def membership_duty_set(*, membership: Membership, on_duty: bool) -> Membership:
    """An agent marks themself on or off duty: "a visitor is waiting" emails go to the agents on
    duty (to every agent when nobody is). Only agents may: raises PermissionDenied otherwise.
    Idempotent. Tenant scope required."""
    if not membership.is_agent_capable:
        raise PermissionDenied("Only members who answer visitors can go on duty.")
    membership.on_duty = on_duty
    membership.save(update_fields=["on_duty"])
    return membership


@transaction.atomic
def membership_leave(*, membership: Membership) -> None:
    """The member leaves the workspace themselves. The last owner cannot leave (it would be
    orphaned). Tenant scope required; locks the owners' rows."""
    _refuse_last_owner(membership, "leave")
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
    audit_record(action="api_key.create", actor=created_by, target=key, details={"prefix": prefix, "scopes": scopes})
    return key, raw


def api_key_revoke(*, api_key: ApiKey, by: AbstractBaseUser | AnonymousUser | None = None) -> None:
    """Revoke the key at once (its next request is refused). Revoking twice is a no-op."""
    if api_key.revoked is None:
        api_key.revoked = timezone.now()
        api_key.save(update_fields=["revoked"])
        audit_record(action="api_key.revoke", actor=by, target=api_key, details={"prefix": api_key.prefix})


def audit_record(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    target: models.Model | None = None,
    tenant: Tenant | None = None,
    details: dict[str, Any] | None = None,
    is_operator: bool = False,
) -> AuditEvent:
    """Append one row to the audit log. Needs no tenant context; never updates a row.

    `tenant` defaults to the target's own tenant (a Tenant target is its own), so tenant-visible
    events land in that tenant's log; an operator action on a plan has none.
    """
    if tenant is None and target is not None:
        tenant = target if isinstance(target, Tenant) else getattr(target, "tenant", None)
    user = actor if actor is not None and actor.is_authenticated else None
    label = (getattr(user, "email", "") or user.get_username()) if user is not None else ""
    return AuditEvent.objects.create(
        action=action,
        actor_id=user.pk if user is not None else None,
        actor_label=label,
        is_operator=is_operator,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:300] if target is not None else "",
        tenant=tenant,
        details=details or {},
    )
