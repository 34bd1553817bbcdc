from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import ApiKey
from tenants.selectors import api_key_authenticate
from tenants.services import api_key_create, api_key_revoke, tenant_suspend


def _key(world, **kwargs):
    with tenant_context(world.tenant_a):
        return api_key_create(tenant=world.tenant_a, name="ci", **kwargs)


def test_only_a_hash_and_prefix_are_stored(world):
    key, raw = _key(world)
    assert raw.startswith(f"cbk_{key.prefix}_")
    assert raw not in key.key_hash and len(key.key_hash) == 64
    assert api_key_authenticate(raw_key=raw).pk == key.pk


@pytest.mark.parametrize("raw", ["", "Bearer", "cbk_", "cbk_deadbeef_wrong", "sk-openai-style", "cbk_" + "x" * 5000])
def test_malformed_or_unknown_keys_are_refused(world, raw):
    _key(world)
    with pytest.raises(AppError) as excinfo:
        api_key_authenticate(raw_key=raw)
    assert excinfo.value.code == "invalid_api_key"


def test_right_prefix_wrong_secret_is_refused(world):
    key, raw = _key(world)
    with pytest.raises(AppError):
        api_key_authenticate(raw_key=raw[:-2] + "zz")


def test_revoked_key_is_refused(world):
    key, raw = _key(world)
    with tenant_context(world.tenant_a):
        api_key_revoke(api_key=key)
    with pytest.raises(AppError) as excinfo:
        api_key_authenticate(raw_key=raw)
    assert excinfo.value.code == "api_key_revoked"


def test_suspended_tenants_keys_are_refused(world):
    _, raw = _key(world)
    tenant_suspend(tenant=world.tenant_a)
    with pytest.raises(AppError) as excinfo:
        api_key_authenticate(raw_key=raw)
    assert excinfo.value.code == "tenant_suspended"


def test_unknown_scope_is_refused(world):
    with pytest.raises(AppError) as excinfo:
        _key(world, scopes=["admin:everything"])
    assert excinfo.value.code == "invalid_scope"


def test_admin_creates_a_key_in_the_dashboard_and_sees_it_once(world):
    alice = world.client_for(world.alice)
    response = alice.post("/t/acme/api-keys/", {"name": "zapier", "scopes": ["chat"]})
    assert response.status_code == 200
    assert b"cbk_" in response.content and b"not be shown again" in response.content
    again = alice.get("/t/acme/api-keys/")
    key = ApiKey.objects.unscoped().get(name="zapier")
    assert f"cbk_{key.prefix}_".encode() in again.content
    assert b"not be shown again" not in again.content


def test_revoking_another_tenants_key_is_404(world):
    key, _ = _key(world)
    response = world.client_for(world.charlie).post(f"/t/bravo/api-keys/{key.pk}/revoke/")
    assert response.status_code == 404
    assert ApiKey.objects.unscoped().get(pk=key.pk).revoked is None


def test_apikey_create_command_prints_the_key_once(world, capsys):
    call_command("apikey_create", "--tenant", "acme", "--name", "script", "--scopes", "chat", "knowledge:read")
    output = json.loads(capsys.readouterr().out)
    assert output["tenant"] == "acme" and output["scopes"] == ["chat", "knowledge:read"]
    assert api_key_authenticate(raw_key=output["key"]).name == "script"


def test_apikey_create_command_refuses_unknown_tenant(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No tenant"):
        call_command("apikey_create", "--tenant", "ghost", "--name", "x")
