from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from tenants.context import TenantNotSet, get_current_tenant_or_none, tenant_context, tenant_task
from tenants.models import Membership
from tenants.scoping import CrossTenantWrite
from tests.factories import MembershipFactory


def test_scoped_query_without_a_tenant_raises(world):
    with pytest.raises(TenantNotSet):
        list(Membership.objects.all())


def test_scoped_query_only_sees_the_current_tenant(world):
    with tenant_context(world.tenant_a):
        assert {m.user.username for m in Membership.objects.select_related("user")} == {"alice", "bob"}
    with tenant_context(world.tenant_b):
        assert {m.user.username for m in Membership.objects.select_related("user")} == {"charlie"}


def test_unscoped_is_explicit_and_sees_everything(world):
    assert Membership.objects.unscoped().count() == 4


def test_saving_a_row_of_another_tenant_inside_a_tenant_context_fails(world):
    with tenant_context(world.tenant_a):
        with pytest.raises(CrossTenantWrite):
            MembershipFactory.build(tenant=world.tenant_b, user=world.alice).save()


def test_save_fills_in_the_current_tenant(world):
    from tests.factories import UserFactory

    with tenant_context(world.tenant_b):
        membership = Membership(user=UserFactory())
        membership.save()
    assert membership.tenant_id == world.tenant_b.pk


def test_context_is_reset_after_the_block(world):
    with tenant_context(world.tenant_a):
        pass
    assert get_current_tenant_or_none() is None


def test_tenant_task_decorator_sets_the_tenant_for_the_body(world):
    @tenant_task
    def count_members(*, tenant_id: int) -> int:
        return Membership.objects.count()

    assert count_members(tenant_id=world.tenant_a.pk) == 2
    assert count_members(tenant_id=world.tenant_b.pk) == 1
    assert count_members(tenant_id=999_999) is None
    assert get_current_tenant_or_none() is None


@pytest.mark.django_db(transaction=True)
def test_context_does_not_leak_between_concurrent_async_tasks(world):
    async def count_in(tenant):
        with tenant_context(tenant):
            await asyncio.sleep(0.01)
            return await database_sync_to_async(Membership.objects.count)()

    async def main():
        return await asyncio.gather(count_in(world.tenant_a), count_in(world.tenant_b))

    assert asyncio.run(main()) == [2, 1]
