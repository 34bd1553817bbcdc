"""workspace_signup: the cross-app signup flow above tenants and billing."""

from __future__ import annotations

from billing.models import Subscription
from chatbot_saas.signup import workspace_signup
from tenants.models import Membership, Role
from tenants.services import tenant_create_with_owner
from tests.factories import UserFactory


def test_workspace_signup_makes_the_user_owner_of_a_new_tenant_on_the_free_plan(db):
    user = UserFactory(username="founder")
    tenant = workspace_signup(name="  Founder Co  ", owner=user)
    assert (tenant.name, tenant.slug) == ("Founder Co", "founder-co")
    assert Membership.objects.unscoped().get(tenant=tenant).user == user
    assert Membership.objects.unscoped().get(tenant=tenant).role == Role.OWNER
    subscription = Subscription.objects.unscoped().get(tenant=tenant)
    assert subscription.plan.is_default and subscription.status == Subscription.Status.ACTIVE


def test_tenants_own_service_creates_the_tenant_and_owner_but_leaves_the_plan_to_billing(db):
    tenant = tenant_create_with_owner(name="Bare", owner=UserFactory(username="bare"))
    assert Membership.objects.unscoped().filter(tenant=tenant, role=Role.OWNER).exists()
    assert not Subscription.objects.unscoped().filter(tenant=tenant).exists()
