"""The bots dashboard: owners edit, members look, other tenants get 404."""

from __future__ import annotations

import pytest

from bots.models import Bot, PromptPublication, PromptVersion, ProviderCredential
from tenants.context import tenant_context
from tests.bots.factories import BotFactory, PromptVersionFactory, ProviderCredentialFactory


@pytest.fixture
def bot_a(world):
    return BotFactory(tenant=world.tenant_a, name="Support")


def url(name: str, *args: object) -> str:
    from django.urls import reverse

    return reverse(name, args=args)


def test_an_owner_creates_a_bot_with_its_first_prompt(world):
    client = world.client_for(world.alice)
    response = client.post(url("bot_list", "acme"), {"name": "Sales", "system_prompt": "Sell politely."})
    assert response.status_code == 302
    with tenant_context(world.tenant_a):
        bot = Bot.objects.get(name="Sales")
        assert PromptVersion.objects.get(bot=bot, is_published=True).text == "Sell politely."
    assert client.get(url("bot_list", "acme")).content.decode().count("Sales") >= 1


def test_creating_a_bot_without_a_prompt_shows_a_field_error(world):
    response = world.client_for(world.alice).post(url("bot_list", "acme"), {"name": "Sales", "system_prompt": " "})
    assert response.status_code == 400
    with tenant_context(world.tenant_a):
        assert not Bot.objects.filter(name="Sales").exists()


def test_members_can_look_but_not_change_a_bot(world, bot_a):
    client = world.client_for(world.bob)
    assert client.get(url("bot_detail", "acme", bot_a.pk)).status_code == 200
    assert client.post(url("bot_detail", "acme", bot_a.pk), {"name": "Hijacked"}).status_code == 403
    version = PromptVersionFactory(tenant=world.tenant_a, bot=bot_a, number=2)
    assert client.post(url("prompt_publish", "acme", bot_a.pk, version.pk)).status_code == 403
    bot_a.refresh_from_db()
    assert bot_a.name == "Support"


def test_prompt_versions_show_a_diff_and_publishing_an_older_one_is_a_rollback(world, bot_a):
    client = world.client_for(world.alice)
    response = client.post(
        url("prompt_list", "acme", bot_a.pk), {"text": "Be brief.\nAlways cite.", "note": "v2", "publish": "on"}
    )
    assert response.status_code == 302
    with tenant_context(world.tenant_a):
        v1 = PromptVersion.objects.get(bot=bot_a, number=1)
        v2 = PromptVersion.objects.get(bot=bot_a, number=2)
    assert v2.is_published
    page = client.get(url("prompt_detail", "acme", bot_a.pk, v2.pk) + "?against=1").content.decode()
    assert "+ Always cite." in page and "- You are the helpful assistant" in page
    assert client.post(url("prompt_publish", "acme", bot_a.pk, v1.pk)).status_code == 302
    with tenant_context(world.tenant_a):
        assert PromptVersion.objects.get(bot=bot_a, is_published=True) == v1
        assert PromptPublication.objects.filter(bot=bot_a).first().action == "rollback"


def test_a_version_of_another_bot_is_a_404_under_this_bot(world, bot_a):
    other = PromptVersionFactory(tenant=world.tenant_a)
    client = world.client_for(world.alice)
    assert client.get(url("prompt_detail", "acme", bot_a.pk, other.pk)).status_code == 404
    assert client.post(url("prompt_publish", "acme", bot_a.pk, other.pk)).status_code == 404


def test_owners_manage_provider_keys_and_never_see_them_again(world):
    client = world.client_for(world.alice)
    response = client.post(url("credential_list", "acme"), {"provider": "openai", "api_key": "sk-abcdef-9876"})
    assert response.status_code == 302
    page = client.get(url("credential_list", "acme")).content.decode()
    assert "…9876" in page and "sk-abcdef" not in page
    with tenant_context(world.tenant_a):
        credential = ProviderCredential.objects.get()
    assert client.post(url("credential_delete", "acme", credential.pk)).status_code == 302
    assert world.client_for(world.bob).get(url("credential_list", "acme")).status_code == 403


def test_it_checks_ownership(world, bot_a):
    version = PromptVersionFactory(tenant=world.tenant_a, bot=bot_a, number=2)
    credential = ProviderCredentialFactory(tenant=world.tenant_a)
    charlie = world.client_for(world.charlie)
    for path in (
        url("bot_detail", "bravo", bot_a.pk),
        url("prompt_list", "bravo", bot_a.pk),
        url("prompt_detail", "bravo", bot_a.pk, version.pk),
    ):
        assert charlie.get(path).status_code == 404
    assert charlie.post(url("prompt_publish", "bravo", bot_a.pk, version.pk)).status_code == 404
    assert charlie.post(url("credential_delete", "bravo", credential.pk)).status_code == 404
    assert charlie.get(url("bot_list", "acme")).status_code == 404
