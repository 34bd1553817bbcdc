"""Registering webhook endpoints on the dashboard: the secret shown once, URLs refused at save,
roles, the plan gate and other workspaces' ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.context import tenant_context
from tests.webhooks.factories import EndpointFactory
from webhooks import services
from webhooks.models import Endpoint

LIST = "/t/acme/settings/webhooks/"


def _form(url: str, events=("lead.created", "message.completed")) -> dict:
    return {"url": url, "description": "CRM", "events": list(events)}


def _endpoints(tenant) -> list[Endpoint]:
    return list(Endpoint.objects.unscoped().filter(tenant=tenant))


def test_an_owner_adds_an_endpoint_and_sees_its_secret_only_once(world, pro_a, loopback):
    client = world.client_for(world.alice)
    response = client.post(LIST, _form("http://127.0.0.1:9/hook"))
    assert response.status_code == 200
    [endpoint] = _endpoints(pro_a)
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    assert endpoint.events == ["message.completed", "lead.created"]  # the catalog's order
    assert secret not in endpoint.secret_encrypted  # stored encrypted
    detail = client.get(f"{LIST}{endpoint.pk}/").content.decode()
    assert secret not in detail and f"{secret[:12]}…" in detail
    assert secret not in client.get(LIST).content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8000/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
    ],
)
def test_a_private_or_local_address_is_refused_when_saving(world, pro_a, url):
    response = world.client_for(world.alice).post(LIST, _form(url))
    assert response.status_code == 400
    errors = response.context["form"].errors["url"]
    assert any("public" in error for error in errors), errors
    assert _endpoints(pro_a) == []


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/hook", "http://exa mple.com/hook", "https://"])
def test_a_malformed_url_is_refused_in_place(world, pro_a, url):
    response = world.client_for(world.alice).post(LIST, _form(url))
    assert response.status_code == 400
    assert response.context["form"].errors["url"]
    assert _endpoints(pro_a) == []


def test_an_endpoint_needs_at_least_one_event(world, pro_a, loopback):
    response = world.client_for(world.alice).post(LIST, _form("http://127.0.0.1:9/hook", events=()))
    assert response.status_code == 400
    assert response.context["form"].errors["events"] == ["Choose at least one event."]


def test_a_member_cannot_see_or_add_webhooks(world, pro_a, loopback):
    client = world.client_for(world.bob)
    assert client.get(LIST).status_code == 403
    assert client.post(LIST, _form("http://127.0.0.1:9/hook")).status_code == 403
    endpoint = EndpointFactory(tenant=pro_a)
    assert client.post(f"{LIST}{endpoint.pk}/test/").status_code == 403
    assert _endpoints(pro_a) == [endpoint]


def test_the_free_plan_explains_the_upgrade_and_refuses_an_endpoint(world, loopback):
    client = world.client_for(world.alice)
    page = client.get(LIST)
    assert page.status_code == 200
    assert "Webhooks are a Pro feature" in page.content.decode()
    assert 'name="url"' not in page.content.decode()
    refused = client.post(LIST, _form("http://127.0.0.1:9/hook"))
    assert refused.status_code == 402
    assert _endpoints(world.tenant_a) == []


def test_the_free_plan_service_refuses_with_a_stable_code(world, loopback):
    from billing.quotas import PlanFeatureRequired

    with tenant_context(world.tenant_a), pytest.raises(PlanFeatureRequired) as refused:
        services.endpoint_create(
            tenant=world.tenant_a, url="http://127.0.0.1:9/hook", description="", events=["lead.created"]
        )
    assert refused.value.as_dict()["error"]["code"] == "plan_feature_required"
    assert "Upgrade to Pro" in refused.value.message


def test_another_workspaces_endpoint_and_deliveries_are_not_found(world, pro_a):
    from tests.webhooks.factories import DeliveryFactory

    delivery = DeliveryFactory(tenant=pro_a)
    endpoint = delivery.endpoint
    client = world.client_for(world.charlie)  # owner of Bravo
    base = f"/t/bravo/settings/webhooks/{endpoint.pk}"
    assert client.get(f"{base}/").status_code == 404
    for action in ("test", "rotate", "enable", "disable", "delete"):
        assert client.post(f"{base}/{action}/").status_code == 404
    assert client.post(f"/t/bravo/settings/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 404
    assert client.get(f"{LIST}{endpoint.pk}/").status_code == 404  # Acme's own URL: not a member
    assert Endpoint.objects.unscoped().filter(pk=endpoint.pk, enabled=True).exists()


def test_rotating_shows_a_new_secret_and_keeps_the_old_one_signing_for_a_day(world, pro_a, settings):
    endpoint = EndpointFactory(tenant=pro_a)
    response = world.client_for(world.alice).post(f"{LIST}{endpoint.pk}/rotate/")
    assert response.status_code == 200
    new_secret = response.context["secret"]
    assert new_secret in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.secret_prefix == new_secret[:12]
    from tests.webhooks.factories import SECRET

    assert services.endpoint_secrets(endpoint) == [new_secret, SECRET]
    endpoint.previous_secret_expires = timezone.now() - timedelta(seconds=1)
    assert services.endpoint_secrets(endpoint) == [new_secret]


def test_editing_an_endpoint_checks_the_new_url_too(world, pro_a):
    endpoint = EndpointFactory(tenant=pro_a)
    response = world.client_for(world.alice).post(f"{LIST}{endpoint.pk}/", _form("http://10.1.2.3/hook"))
    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/receive"
