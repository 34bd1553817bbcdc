"""Every error the API answers, Ninja's own included, uses the one shape
{"error": {"code", "message"}}; the OpenAI-compatible routes use OpenAI's, which adds `type`."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from billing.services import subscription_comp
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.bots.factories import BotFactory


@pytest.fixture
def raw_key(world) -> str:
    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    with tenant_context(world.tenant_a):
        return api_key_create(tenant=world.tenant_a, name="errors", scopes=["chat", "bots:read"])[1]


def _error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    return error


def test_a_csrf_failure_on_the_api_answers_the_one_error_shape(world):
    bot = BotFactory(tenant=world.tenant_a)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world.alice)
    response = browser.post(
        "/api/v1/conversations", data=json.dumps({"bot_id": bot.pk}), content_type="application/json"
    )
    error = _error_of(response, 403)
    assert error["code"] == "csrf_failed" and "X-CSRFToken" in error["message"]
    assert "detail" not in response.json()


def test_validation_errors_unknown_routes_and_objects_and_wrong_methods_answer_the_one_error_shape(world, raw_key):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    invalid = api.post("/api/v1/conversations", data=json.dumps({"bot_id": "one"}), content_type="application/json")
    assert _error_of(invalid, 422)["code"] == "validation_error"
    assert _error_of(api.get("/api/v1/no-such-route"), 404)["code"] == "not_found"
    assert _error_of(api.get("/api/v1/bots/987654"), 404)["code"] == "not_found"
    wrong_method = api.delete("/api/v1/bots")
    assert _error_of(wrong_method, 405)["code"] == "method_not_allowed" and wrong_method["Allow"] == "GET"
    assert _error_of(Client().get("/api/v1/bots"), 401)["code"] == "invalid_api_key"
    assert _error_of(Client(HTTP_AUTHORIZATION="Basic abc").get("/api/v1/bots"), 401)["code"] == "invalid_api_key"


def test_the_openai_routes_answer_wrong_methods_and_bad_keys_in_the_openai_shape(db):
    for response, status in [
        (Client().get("/v1/chat/completions"), 405),
        (Client().post("/v1/chat/completions", data="{}", content_type="application/json"), 401),
        (Client(HTTP_AUTHORIZATION="Bearer nope").get("/v1/models"), 401),
    ]:
        assert _error_of(response, status)["type"]


def test_a_429_names_the_api_key_when_the_key_is_over_its_limit(world, raw_key, settings):
    settings.RATE_LIMIT_API_KEY = "2/60"
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    responses = [api.get("/api/v1/bots") for _ in range(3)]
    error = _error_of(responses[-1], 429)
    assert error["code"] == "rate_limited" and error["scope"] == "api_key"
    assert error["message"].startswith("This API key has made too many requests. Please wait")
    assert "messages" not in error["message"] and int(responses[-1]["Retry-After"]) >= 1


def test_a_429_names_the_workspace_when_the_workspace_is_over_its_limit(world, raw_key, settings):
    settings.RATE_LIMIT_TENANT = "2/60"
    with tenant_context(world.tenant_a):
        second_key = api_key_create(tenant=world.tenant_a, name="other", scopes=["bots:read"])[1]
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/api/v1/bots").status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Bearer {second_key}").get("/api/v1/bots").status_code == 200
    error = _error_of(Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/api/v1/bots"), 429)
    assert error["scope"] == "tenant" and error["message"].startswith("This workspace has made too many requests.")


def test_a_member_behind_a_proxys_basic_auth_still_uses_the_api_with_the_session(world):
    BotFactory(tenant=world.tenant_a, name="Ours")
    browser = world.client_for(world.alice)
    response = browser.get("/api/v1/bots", HTTP_AUTHORIZATION="Basic c3RhZ2luZzpzdGFnaW5n")
    assert response.status_code == 200 and [b["name"] for b in response.json()] == ["Ours"]
