"""Bring-your-own-key: keys are encrypted at rest and preferred over the platform's."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError

from bots import crypto, selectors, services
from bots.models import ProviderCredential
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain


def test_a_tenant_key_is_stored_encrypted_and_only_its_hint_is_readable(world, in_tenant_a):
    services.provider_credential_set(tenant=world.tenant_a, provider="openai", api_key="sk-live-secret-1234")
    row = ProviderCredential.objects.get()
    assert "sk-live" not in row.encrypted_key and row.key_hint == "1234"
    assert selectors.provider_key(provider="openai").api_key == "sk-live-secret-1234"
    assert selectors.provider_key(provider="openai").source == "tenant"


def test_a_configured_field_encryption_key_is_used_and_a_bad_one_fails_loudly(settings):
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    token = crypto.encrypt("secret")
    assert Fernet(settings.FIELD_ENCRYPTION_KEY.encode()).decrypt(token.encode()) == b"secret"
    settings.FIELD_ENCRYPTION_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEY"):
        crypto.encrypt("secret")


def test_a_key_that_can_no_longer_be_decrypted_is_reported_not_crashed(world, in_tenant_a, settings):
    services.provider_credential_set(tenant=world.tenant_a, provider="anthropic", api_key="sk-ant-abc")
    settings.SECRET_KEY = "rotated"
    key = selectors.provider_key(provider="anthropic")
    assert key.api_key is None and "enter it again" in key.problem


@pytest.mark.parametrize("bad", ["", "has space", "x" * 401])
def test_malformed_keys_are_refused(world, in_tenant_a, bad):
    with pytest.raises(ValidationError):
        services.provider_credential_set(tenant=world.tenant_a, provider="openai", api_key=bad)


def test_tenant_keys_never_serve_another_tenant(world):
    from tenants.context import tenant_context

    with tenant_context(world.tenant_a):
        services.provider_credential_set(tenant=world.tenant_a, provider="openai", api_key="sk-tenant-a-key")
    with tenant_context(world.tenant_b):
        assert selectors.provider_key(provider="openai").api_key != "sk-tenant-a-key"


def test_the_pipeline_calls_the_provider_with_the_tenants_own_key(world, conversation_a, fake_openai, settings):
    from tenants.context import tenant_context

    settings.OPENAI_API_KEY = "sk-platform"
    fake_openai.api_key = "sk-tenant-own"
    with tenant_context(world.tenant_a):
        services.provider_credential_set(tenant=world.tenant_a, provider="openai", api_key="sk-tenant-own", base_url="")
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="Paid by the tenant."))
    assert ask(bot, conversation_a, "Hi").text == "Paid by the tenant."
    assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-tenant-own"
