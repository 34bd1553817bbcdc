from __future__ import annotations

from django.contrib.auth import get_user_model

from tenants.models import Tenant


def _operator_client(client):
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")
    client.force_login(operator)
    return client


def test_operator_sees_every_tenant_and_scoped_model(client, world):
    client = _operator_client(client)
    for url in [
        "/admin/tenants/tenant/",
        "/admin/tenants/membership/",
        "/admin/tenants/apikey/",
        "/admin/tenants/invitation/",
        "/admin/billing/subscription/",
        "/admin/billing/usagecounter/",
    ]:
        assert client.get(url).status_code == 200, url
    page = client.get("/admin/tenants/membership/").content.decode()
    assert "alice" in page and "charlie" in page
    assert client.get("/admin/tenants/tenant/?q=acm").status_code == 200
    assert client.get("/admin/tenants/tenant/?status__exact=active").status_code == 200


def test_operator_suspends_and_reactivates_tenants(client, world):
    client = _operator_client(client)
    url = "/admin/tenants/tenant/"
    client.post(url, {"action": "suspend", "_selected_action": [world.tenant_a.pk]})
    assert Tenant.objects.get(pk=world.tenant_a.pk).status == "suspended"
    client.post(url, {"action": "reactivate", "_selected_action": [world.tenant_a.pk]})
    assert Tenant.objects.get(pk=world.tenant_a.pk).status == "active"


def test_tenant_owner_is_not_an_operator(world):
    assert world.client_for(world.alice).get("/admin/tenants/tenant/").status_code == 302
