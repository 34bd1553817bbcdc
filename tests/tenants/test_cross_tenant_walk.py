"""Every route, tenant B against tenant A's ids. New apps are covered by the same test."""

from __future__ import annotations

import pytest

from billing.services import subscription_comp
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.factories import SCOPED_FACTORIES
from tests.support.url_walk import find_cross_tenant_leaks, iter_routes, scoped_models


@pytest.fixture
def objects_a(world):
    return {model: factory(tenant=world.tenant_a) for model, factory in SCOPED_FACTORIES.items()}


@pytest.fixture
def api_key_b(world):
    subscription_comp(tenant=world.tenant_b, plan_slug="starter")  # a plan with API access
    with tenant_context(world.tenant_b):
        _, raw = api_key_create(
            tenant=world.tenant_b, name="walker", scopes=["chat", "bots:read", "knowledge:read", "knowledge:write"]
        )
    return raw


def test_every_tenant_owned_model_has_a_factory_for_the_walk():
    missing = sorted(name for name, model in scoped_models().items() if model not in SCOPED_FACTORIES)
    assert missing == [], f"add factories to tests.factories.SCOPED_FACTORIES for: {missing}"


def test_the_walk_sees_the_dashboard_routes():
    names = {route.name for route in iter_routes()}
    assert {"tenant_home", "member_remove", "api_key_revoke", "invitation_revoke"} <= names


def test_no_route_serves_tenant_a_objects_to_tenant_b(world, objects_a, api_key_b):
    leaks = find_cross_tenant_leaks(
        client_b=world.client_for(world.charlie),
        tenant_a_slug=world.tenant_a.slug,
        tenant_b_slug=world.tenant_b.slug,
        objects_a=objects_a,
        api_key_b=api_key_b,
    )
    assert leaks == []


def test_the_walk_catches_a_deliberately_unscoped_view(world, objects_a, settings):
    settings.ROOT_URLCONF = "tests.tenants.leaky_urls"
    leaks = find_cross_tenant_leaks(
        client_b=world.client_for(world.charlie),
        tenant_a_slug=world.tenant_a.slug,
        tenant_b_slug=world.tenant_b.slug,
        objects_a=objects_a,
    )
    assert len(leaks) == 1
    assert "(leaky)" in leaks[0]
