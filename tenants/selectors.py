"""Reads for tenants. The unscoped look-ups here are the authentication boundary:
they find which tenant a user, token or key belongs to, before any tenant is in context."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from chatbot_saas.errors import AppError, TenantSuspended

from .models import ApiKey, AuditEvent, Invitation, Membership, Role, Tenant

API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def memberships_for_user(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    """Every tenant the user belongs to (cross-tenant by design: the tenant switcher)."""
    return Membership.objects.unscoped().filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_for(*, user: AbstractBaseUser, tenant_slug: str) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.unscoped().select_related("tenant").filter(user=user, tenant__slug=tenant_slug).first()


class ApiKeyError(AppError):
    status = 401


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """Resolve a raw `cbk_<prefix>_<secret>` key to its ApiKey, or raise with a clear code.

    Compares hashes in constant time; refuses revoked keys and suspended tenants.
    """
    raw_key = (raw_key or "").strip()
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "cbk" or not parts[1]:
        raise ApiKeyError(
            "The API key is missing or malformed. Send 'Authorization: Bearer cbk_...'.", code="invalid_api_key"
        )
    key = ApiKey.objects.unscoped().select_related("tenant").filter(prefix=parts[1]).first()
    digest = hashlib.sha256(raw_key.encode()).hexdigest()
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        raise ApiKeyError("The API key is not valid.", code="invalid_api_key")
    if key.revoked is not None:
        raise ApiKeyError("This API key was revoked. Create a new one in the dashboard.", code="api_key_revoked")
    if not key.tenant.is_active:
        raise TenantSuspended("This workspace is suspended. Contact support to reactivate it.")
    now = timezone.now()
    # Throttle the write: one UPDATE a minute per key, not one per request.
    if key.last_used is None or now - key.last_used > API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.unscoped().filter(pk=key.pk).update(last_used=now)
        key.last_used = now
    return key


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def team_members() -> QuerySet[Membership]:
    """The current tenant's members with their users, oldest first (tenant context required)."""
    return Membership.objects.select_related("user").order_by("created", "pk")


def invitations_pending() -> list[Invitation]:
    """The current tenant's invitations still waiting for an answer, newest first (one query)."""
    open_ones = Invitation.objects.filter(accepted=None, revoked=None, expires__gt=timezone.now())
    return list(open_ones.select_related("invited_by").order_by("-created")[:100])


def can_leave(*, membership: Membership) -> bool:
    """Whether the member may leave: anyone but the workspace's last owner."""
    if membership.role != Role.OWNER:
        return True
    return Membership.objects.filter(role=Role.OWNER).exclude(pk=membership.pk).exists()


def audit_events_for_tenant(*, tenant: Tenant, limit: int = 100) -> list[AuditEvent]:
    """The tenant's own audit log, newest first, operators' actions on it included. AuditEvent is
    not tenant-scoped (an operator's row may have no tenant), so the filter is stated here."""
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("-created", "-id")[:limit])
