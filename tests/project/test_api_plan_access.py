"""API access is a plan feature: a Free workspace's key is refused on the REST API and on the
OpenAI-compatible API, with the plan to upgrade to; a Starter key is let through."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from billing.services import subscription_comp
from conversations.models import Conversation
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.bots.factories import BotFactory

SCOPES = ["chat", "bots:read", "knowledge:read", "knowledge:write"]


def _key_on(tenant, plan_slug: str) -> str:
    subscription_comp(tenant=tenant, plan_slug=plan_slug)
    with tenant_context(tenant):
        return api_key_create(tenant=tenant, name="plan", scopes=SCOPES)[1]


def _client(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _post(client: Client, url: str, body: object):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def _chat(client: Client, bot) -> object:
    return _post(
        client, "/v1/chat/completions", {"model": bot.public_id, "messages": [{"role": "user", "content": "Hello?"}]}
    )


def test_a_free_workspaces_key_is_refused_on_the_rest_api_with_the_plan_to_upgrade_to(world):
    bot = BotFactory(tenant=world.tenant_a)
    client = _client(_key_on(world.tenant_a, "free"))
    for response in (client.get("/api/v1/bots"), _post(client, "/api/v1/conversations", {"bot_id": bot.pk})):
        assert response.status_code == 402
        error = response.json()["error"]
        assert error["code"] == "plan_feature_required" and error["feature"] == "api_access"
        assert "Free plan does not include API access. Upgrade to Starter" in error["message"]
    with tenant_context(world.tenant_a):
        assert not Conversation.objects.filter(bot=bot).exists()


def test_a_free_workspaces_key_is_refused_on_the_openai_api_in_the_openai_error_shape(world):
    bot = BotFactory(tenant=world.tenant_a)
    client = _client(_key_on(world.tenant_a, "free"))
    for response in (_chat(client, bot), client.get("/v1/models")):
        assert response.status_code == 402
        error = response.json()["error"]
        assert error["code"] == "plan_feature_required" and error["type"] == "permission_error"
        assert "Upgrade to Starter" in error["message"]


def test_a_starter_workspaces_key_is_accepted_on_both_apis(world):
    bot = BotFactory(tenant=world.tenant_a, name="Help")
    client = _client(_key_on(world.tenant_a, "starter"))
    assert [b["name"] for b in client.get("/api/v1/bots").json()] == ["Help"]
    created = _post(client, "/api/v1/conversations", {"bot_id": bot.pk})
    assert created.status_code == 201 and created.json()["bot_id"] == bot.pk
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [bot.public_id]
    completion = _chat(client, bot)
    assert completion.status_code == 200, completion.content
    assert completion.json()["object"] == "chat.completion"


def test_a_refused_plan_spends_none_of_the_workspaces_rate_limit(world, settings):
    settings.RATE_LIMIT_TENANT = "2/60"
    free = _client(_key_on(world.tenant_a, "free"))
    assert {free.get("/api/v1/bots").status_code for _ in range(4)} == {402}
    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    assert [free.get("/api/v1/bots").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("plan_slug", ["free", "starter"])
def test_a_member_uses_the_api_from_the_dashboard_whatever_the_plan(world, plan_slug):
    subscription_comp(tenant=world.tenant_a, plan_slug=plan_slug)
    BotFactory(tenant=world.tenant_a, name="Ours")
    response = world.client_for(world.alice).get("/api/v1/bots")
    assert response.status_code == 200 and [b["name"] for b in response.json()] == ["Ours"]
