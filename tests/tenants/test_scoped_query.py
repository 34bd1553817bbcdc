"""ScopedQuery: a tenant-scoped queryset compiled once per process and re-run with new values.
The compiled SQL is shared by every tenant, so each run must still filter by the tenant in
context, refuse to run without one, and refuse a queryset that is not tenant-scoped at all."""

from __future__ import annotations

from datetime import date

import pytest
from django.db.models import Subquery

from billing.models import UsageCounter
from tenants.context import TenantNotSet, tenant_context
from tenants.models import Membership, Tenant
from tenants.scoping import NotTenantScoped, ScopedQuery

ROLES = ScopedQuery(
    lambda *, username: Membership.objects.filter(user__username=username).order_by("pk").values("role", "tenant_id"),
    username=str,
)


def test_a_cached_query_returns_the_rows_of_the_tenant_in_context_only(world):
    with tenant_context(world.tenant_a):
        assert ROLES.fetch(username="alice") == [{"role": "owner", "tenant_id": world.tenant_a.pk}]
        assert ROLES.fetch(username="charlie") == []  # charlie is a member of tenant B only
    with tenant_context(world.tenant_b):  # the same compiled SQL, now for tenant B
        assert ROLES.fetch(username="charlie") == [{"role": "owner", "tenant_id": world.tenant_b.pk}]
        assert ROLES.fetch(username="alice") == []


def test_a_cached_query_refuses_to_run_without_a_tenant(world):
    with tenant_context(world.tenant_a):
        ROLES.fetch(username="alice")  # compiled
    with pytest.raises(TenantNotSet):
        ROLES.fetch(username="alice")
    with pytest.raises(TenantNotSet):
        ROLES.statement(username="alice")


def test_every_scoped_subquery_gets_the_tenant_in_context(world):
    """A subquery on another scoped model is filtered by the same tenant: tenant B's counter is
    never read for a tenant A row, though both rows exist for the period."""
    period = date(2026, 11, 1)
    UsageCounter.objects.unscoped().create(tenant=world.tenant_a, period=period, messages=3)
    UsageCounter.objects.unscoped().create(tenant=world.tenant_b, period=period, messages=40)

    def build(*, username: str, period: date):
        used = UsageCounter.objects.filter(period=period).values("messages")[:1]
        return Membership.objects.filter(user__username=username).annotate(used=Subquery(used)).values("used")

    query = ScopedQuery(build, username=str, period=date)
    with tenant_context(world.tenant_a):
        assert query.fetch(username="alice", period=period) == [{"used": 3}]
        assert query.fetch(username="alice", period=date(2026, 10, 1)) == [{"used": None}]
    with tenant_context(world.tenant_b):
        assert query.fetch(username="charlie", period=period) == [{"used": 40}]


def test_a_query_that_is_not_tenant_scoped_is_refused(world):
    unscoped = ScopedQuery(lambda: Membership.objects.unscoped().values("role"))
    not_a_tenant_model = ScopedQuery(lambda *, slug: Tenant.objects.filter(slug=slug).values("pk"), slug=str)
    with tenant_context(world.tenant_a):
        with pytest.raises(NotTenantScoped):
            unscoped.fetch()
        with pytest.raises(NotTenantScoped):
            not_a_tenant_model.fetch(slug="acme")


def test_values_are_checked_and_shapes_compile_separately(world):
    by_roles = ScopedQuery(
        lambda *, roles: Membership.objects.filter(role__in=roles).order_by("user__username").values("user__username")
    )
    with tenant_context(world.tenant_a):
        with pytest.raises(TypeError):
            ROLES.fetch(name="alice")  # not its parameter
        owners = by_roles.fetch(shape={"roles": ("owner",)})
        everyone = by_roles.fetch(shape={"roles": ("member", "owner")})
    assert [r["user__username"] for r in owners] == ["alice"]
    assert [r["user__username"] for r in everyone] == ["alice", "bob"]
