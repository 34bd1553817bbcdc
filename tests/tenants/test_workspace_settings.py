"""The workspace settings page: name (admins), the fixed slug, and the danger zone's "leave"."""

from __future__ import annotations

from django.urls import reverse

from tenants.models import Membership, Role, Tenant
from tests.factories import MembershipFactory, UserFactory


def test_an_owner_renames_the_workspace_and_the_slug_stays(world):
    client = world.client_for(world.alice)
    page = client.get(reverse("workspace_settings", args=["acme"])).content.decode()
    assert 'value="acme" readonly' in page and "Danger zone" in page
    response = client.post(reverse("workspace_settings", args=["acme"]), {"name": "  Acme Corp  "}, follow=True)
    assert "now called “Acme Corp”" in response.content.decode()
    assert Tenant.objects.values_list("name", "slug").get(pk=world.tenant_a.pk) == ("Acme Corp", "acme")


def test_a_blank_or_long_name_is_refused_in_place(world):
    client = world.client_for(world.alice)
    for name, message in [("   ", "This field is required."), ("x" * 121, "at most 120 characters")]:
        response = client.post(reverse("workspace_settings", args=["acme"]), {"name": name})
        assert response.status_code == 400 and message in response.content.decode()
    assert Tenant.objects.get(pk=world.tenant_a.pk).name == "Acme"


def test_a_member_sees_the_settings_without_the_form_and_gets_403_on_rename(world):
    client = world.client_for(world.bob)
    page = client.get(reverse("workspace_settings", args=["acme"])).content.decode()
    assert "Only admins and owners can rename" in page and 'name="name"' not in page
    assert client.post(reverse("workspace_settings", args=["acme"]), {"name": "Mine"}).status_code == 403
    assert Tenant.objects.get(pk=world.tenant_a.pk).name == "Acme"


def test_a_member_leaves_the_workspace(world):
    client = world.client_for(world.bob)
    response = client.post(reverse("workspace_leave", args=["acme"]))
    assert response.status_code == 302 and response.url == reverse("dashboard")
    assert not Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).exists()
    assert client.get(reverse("tenant_home", args=["acme"])).status_code == 404


def test_the_last_owner_cannot_leave_and_is_told_what_to_do(world):
    client = world.client_for(world.alice)
    page = client.get(reverse("workspace_settings", args=["acme"])).content.decode()
    assert "only owner, so you cannot leave" in page
    response = client.post(reverse("workspace_leave", args=["acme"]), follow=True)
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.alice).exists()


def test_an_owner_leaves_when_another_owner_remains(world):
    MembershipFactory(tenant=world.tenant_a, user=UserFactory(username="dana"), role=Role.OWNER)
    client = world.client_for(world.alice)
    assert "Leave this workspace" in client.get(reverse("workspace_settings", args=["acme"])).content.decode()
    client.post(reverse("workspace_leave", args=["acme"]))
    assert not Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.alice).exists()


def test_the_sidebar_links_to_the_settings(world):
    page = world.client_for(world.bob).get(reverse("tenant_home", args=["acme"])).content.decode()
    assert f'href="{reverse("workspace_settings", args=["acme"])}"' in page
