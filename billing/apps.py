from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from tenants.models import Tenant


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.limits import register_member_limit

        # Plans cap members; tenants asks through tenants.limits because it imports no app.
        register_member_limit("billing.members_quota", _members_quota_check)


def _members_quota_check(*, tenant: Tenant, amount: int) -> None:
    from .quotas import quota_check

    quota_check(tenant=tenant, kind="members", amount=amount)
