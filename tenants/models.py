"""Tenants, members, invitations and API keys.

`Tenant` is the root of scoping and is not itself scoped. The other three are tenant-owned
and inherit `TenantScopedModel`; the few authentication look-ups that must cross tenants
(membership for a user, an invitation by token, an API key by prefix) live in
`selectors.py` and say `.unscoped()` there.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .scoping import TenantScopedModel


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created = models.DateTimeField(default=timezone.now)
    # Conversations last active longer ago than this are deleted nightly (conversations.privacy_services);
    # None keeps them forever.
    conversation_retention_days = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


class Membership(TenantScopedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # May answer visitors in the inbox (human handoff). Owners and admins always may: see is_agent_capable.
    is_agent = models.BooleanField(default=False)
    # The agent said they are answering now: "a visitor is waiting" emails go to on-duty agents
    # (to every agent when nobody is on duty).
    on_duty = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_membership")]
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id} as {self.role}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def is_agent_capable(self) -> bool:
        """The `agent` permission: a flag for members, implied for owners and admins."""
        return self.is_agent or self.has_role(Role.ADMIN)


class Invitation(TenantScopedModel):
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=[(Role.ADMIN, "Admin"), (Role.MEMBER, "Member")])
    # Only the SHA-256 of the token is stored; the token itself goes out in the email.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    accepted = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Invitation for {self.email}"

    @property
    def is_pending(self) -> bool:
        return self.accepted is None and self.revoked is None and self.expires > timezone.now()


class ApiKey(TenantScopedModel):
    class Scope(models.TextChoices):
        CHAT = "chat", "Chat (send messages, read conversations)"
        KNOWLEDGE_READ = "knowledge:read", "Read knowledge bases"
        KNOWLEDGE_WRITE = "knowledge:write", "Upload documents"
        BOTS_READ = "bots:read", "List bots"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class AuditEvent(models.Model):
    """Who did what to which row, and when: operators' admin actions now, tenants' own security
    events (sign-ins, role changes, API keys) as well.

    Not a TenantScopedModel: an operator's action on a plan or a Stripe event belongs to no tenant,
    so `tenant` is nullable. Tenant-visible reads filter by `tenant` in selectors. Rows are
    written once by `services.audit_record` and never changed (admin is read-only).
    """

    created = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the row must still say who it was after the user is deleted.
    actor_label = models.CharField(max_length=254, blank=True)
    is_operator = models.BooleanField(default=False, help_text="Done by staff from the admin, not by a member")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=300, blank=True)
    # Operator actions survive the tenant's deletion (SET_NULL); the label still names it.
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["tenant", "-created"], name="audit_tenant_created")]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor_label or 'system'} {self.action} {self.target_label}"
