"""Model server URLs a tenant sets are refused at save time unless they reach the public internet
(or a host the operator allowlisted): in the services, the dashboard forms and the admin."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from bots import services
from bots.admin import BotAdminForm
from bots.models import Bot, ProviderCredential
from tenants.context import tenant_context
from tests.bots.factories import BotFactory
from tests.bots.test_dashboard import url
from tests.bots.test_editor import chain_post, row
from tests.support.tenant_urls import PUBLIC_LOOKING_NAME, point_name_at, refused_urls

REFUSED = refused_urls(8000)


@pytest.fixture(autouse=True)
def _strict_guard(settings, monkeypatch):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    settings.TENANT_URL_ALLOWLIST = []
    point_name_at(monkeypatch, PUBLIC_LOOKING_NAME, "127.0.0.1")


def _chain(base_url: str) -> list[dict]:
    return [{"provider": "openai_compatible", "model": "x", "params": {"base_url": base_url}}]


@pytest.mark.parametrize("base_url", REFUSED.values(), ids=REFUSED.keys())
def test_a_chain_base_url_that_is_not_public_is_a_field_error_in_the_service(world, in_tenant_a, base_url):
    bot = BotFactory(tenant=world.tenant_a)
    with pytest.raises(ValidationError) as exc:
        services.bot_update(bot=bot, model_chain=_chain(base_url))
    errors = " ".join(exc.value.message_dict["model_chain"])
    assert "is refused" in errors
    if PUBLIC_LOOKING_NAME in base_url:  # what an internal name resolves to is not revealed
        assert "127.0.0.1" not in errors
    bot.refresh_from_db()
    assert "base_url" not in json.dumps(bot.model_chain)


@pytest.mark.parametrize("base_url", REFUSED.values(), ids=REFUSED.keys())
def test_a_provider_key_base_url_that_is_not_public_is_a_field_error_in_the_service(world, in_tenant_a, base_url):
    with pytest.raises(ValidationError) as exc:
        services.provider_credential_set(
            tenant=world.tenant_a, provider="openai_compatible", api_key="sk-x", base_url=base_url
        )
    assert "TENANT_URL_ALLOWLIST" in " ".join(exc.value.message_dict["base_url"])
    assert not ProviderCredential.objects.exists()


@pytest.mark.parametrize("base_url", REFUSED.values(), ids=REFUSED.keys())
def test_the_model_chain_editor_shows_a_refused_base_url_in_place(world, base_url):
    bot = BotFactory(tenant=world.tenant_a, name="Support")
    client = world.client_for(world.alice)
    response = client.post(
        url("bot_models", "acme", bot.pk), chain_post(row("openai_compatible", "x", base_url=base_url))
    )
    assert response.status_code == 400 and "is refused" in response.content.decode()
    bot.refresh_from_db()
    assert "base_url" not in json.dumps(bot.model_chain)


@pytest.mark.parametrize("base_url", REFUSED.values(), ids=REFUSED.keys())
def test_the_provider_key_form_refuses_a_base_url_that_is_not_public(world, base_url):
    client = world.client_for(world.alice)
    data = {"provider": "openai_compatible", "api_key": "sk-x", "base_url": base_url}
    assert client.post(url("credential_list", "acme"), data).status_code == 400
    with tenant_context(world.tenant_a):
        assert not ProviderCredential.objects.exists()


@pytest.mark.parametrize("base_url", REFUSED.values(), ids=REFUSED.keys())
def test_the_admin_refuses_a_chain_base_url_that_is_not_public(world, base_url):
    bot = Bot.objects.unscoped().get(pk=BotFactory(tenant=world.tenant_a).pk)
    form = BotAdminForm(data={"model_chain": json.dumps(_chain(base_url))}, instance=bot)
    with tenant_context(world.tenant_a):  # the model's own unique checks read through the scope
        assert not form.is_valid()
    assert "is refused" in " ".join(form.errors["model_chain"])


def test_the_admin_accepts_a_public_base_url(world, monkeypatch):
    point_name_at(monkeypatch, "models.example.com", "93.184.216.34")
    bot = Bot.objects.unscoped().get(pk=BotFactory(tenant=world.tenant_a).pk)
    form = BotAdminForm(data={"model_chain": json.dumps(_chain("https://models.example.com/v1"))}, instance=bot)
    with tenant_context(world.tenant_a):
        form.is_valid()
    assert "model_chain" not in form.errors


def test_a_public_base_url_is_saved(world, in_tenant_a, monkeypatch):
    point_name_at(monkeypatch, "models.example.com", "93.184.216.34")
    bot = services.bot_update(
        bot=BotFactory(tenant=world.tenant_a), model_chain=_chain("https://models.example.com/v1")
    )
    assert bot.model_chain[0]["params"]["base_url"] == "https://models.example.com/v1"
    key = services.provider_credential_set(
        tenant=world.tenant_a, provider="openai_compatible", api_key="sk-x", base_url="https://models.example.com/v1"
    )
    assert key.base_url == "https://models.example.com/v1"


@pytest.mark.parametrize("entry", ["10.1.2.3", "10.1.0.0/16", "ollama.lan"])
def test_an_operator_allowlisted_private_server_is_accepted(world, in_tenant_a, settings, monkeypatch, entry):
    point_name_at(monkeypatch, "ollama.lan", "10.1.2.3")
    settings.TENANT_URL_ALLOWLIST = [entry]
    target = "http://ollama.lan:11434/v1" if entry == "ollama.lan" else "http://10.1.2.3:11434/v1"
    bot = services.bot_update(bot=BotFactory(tenant=world.tenant_a), model_chain=_chain(target))
    assert bot.model_chain[0]["params"]["base_url"] == target
    # The allowlist opens what it names, nothing else.
    with pytest.raises(ValidationError):
        services.bot_update(bot=bot, model_chain=_chain("http://10.9.9.9:11434/v1"))
