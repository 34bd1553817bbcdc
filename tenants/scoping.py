"""The abstract base every tenant-owned model inherits, and its scoped manager."""

from __future__ import annotations

from typing import Any

from django.db import models

from .context import get_current_tenant, get_current_tenant_or_none


class CrossTenantWrite(RuntimeError):
    """A row was saved under a different tenant than the one in context."""


class TenantScopedQuerySet(models.QuerySet):
    pass


class TenantScopedManager(models.Manager):
    """Filters every query by the tenant in context; raises TenantNotSet without one.

    Not used in migrations (historical models get a plain manager), and operators say
    `.unscoped()` explicitly.
    """

    use_in_migrations = False

    def get_queryset(self) -> TenantScopedQuerySet:
        tenant = get_current_tenant()
        return TenantScopedQuerySet(self.model, using=self._db).filter(tenant_id=tenant.pk)

    def unscoped(self) -> TenantScopedQuerySet:
        """Every tenant's rows. For operators, admin, migrations and auth look-ups only."""
        return TenantScopedQuerySet(self.model, using=self._db)


class TenantScopedModel(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()

    class Meta:
        abstract = True

    # Forward relations (chunk.document) use Django's plain base manager: the row holding
    # the foreign key was itself fetched through the scope. bulk_create skips save(), so
    # callers pass tenant explicitly there.

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.claim_for_current_tenant()
        super().save(*args, **kwargs)

    def claim_for_current_tenant(self) -> None:
        """The write check of save(): take the tenant in context, refuse a row of another tenant."""
        current = get_current_tenant_or_none()
        if self.tenant_id is None and current is not None:
            self.tenant = current
        if current is not None and self.tenant_id != current.pk:
            raise CrossTenantWrite(
                f"{type(self).__name__} belongs to tenant {self.tenant_id}, but the current tenant is {current.pk}."
            )
