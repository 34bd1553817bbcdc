from __future__ import annotations

from django.test import Client

from tenants.services import tenant_suspend


def test_it_checks_ownership_of_the_workspace(world):
    response = world.client_for(world.charlie).get("/t/acme/")
    assert response.status_code == 404


def test_unknown_tenant_slug_is_404(world):
    assert world.client_for(world.alice).get("/t/no-such-tenant/").status_code == 404


def test_anonymous_user_is_sent_to_login(world):
    response = Client().get("/t/acme/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_member_sees_the_dashboard_but_not_api_keys(world):
    bob = world.client_for(world.bob)
    assert bob.get("/t/acme/").status_code == 200
    assert bob.get("/t/acme/api-keys/").status_code == 403


def test_user_in_two_workspaces_can_switch(world):
    bob = world.client_for(world.bob)
    assert bob.get("/t/cobalt/").status_code == 200
    assert bob.get("/dashboard/").url == "/t/cobalt/"
    bob.get("/t/acme/")
    assert bob.get("/dashboard/").url == "/t/acme/"


def test_suspended_tenant_gets_a_clear_page(world):
    tenant_suspend(tenant=world.tenant_a)
    response = world.client_for(world.alice).get("/t/acme/")
    assert response.status_code == 403
    assert b"suspended" in response.content


def test_user_without_workspace_sees_an_explanation(db):
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    response = client.get("/dashboard/")
    assert response.status_code == 200 and b"No workspace" in response.content
