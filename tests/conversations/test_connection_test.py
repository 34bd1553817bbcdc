"""The bot editor's Test connection button: one tiny request through conversations.llm to the
fake OpenAI server, reported as latency or as an error in plain words; admins only, per tenant,
rate limited."""

from __future__ import annotations

import socket

import pytest
from django.urls import reverse

from tests.bots.factories import BotFactory, ProviderCredentialFactory
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def bot_a(world):
    return BotFactory(tenant=world.tenant_a, name="Support")


def test_url(bot, slug: str = "acme") -> str:
    return reverse("bot_test_connection", args=[slug, bot.pk])


test_url.__test__ = False  # a helper, not a test


def row_post(row: int, *rows: dict) -> dict:
    data = {"chain-TOTAL_FORMS": str(len(rows)), "chain-INITIAL_FORMS": str(len(rows)), "row": str(row)}
    for index, values in enumerate(rows):
        full = {"model": "", "model_name": "", "base_url": "", "ORDER": str(index + 1), **values}
        data.update({f"chain-{index}-{name}": value for name, value in full.items()})
    return data


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_reachable_openai_compatible_server_answers_with_its_latency(world, bot_a, settings):
    settings.TENANT_URL_ALLOWLIST = ["127.0.0.1"]  # the fake runs on loopback
    with FakeOpenAI(api_key="not-needed") as server:
        posted = row_post(
            1,
            {"provider": "offline"},
            {"provider": "openai_compatible", "model_name": "llama3", "base_url": server.base_url},
        )
        response = world.client_for(world.alice).post(test_url(bot_a), posted, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        page = response.content.decode()
        assert "Connected" in page and " ms" in page
        assert server.requests[0].body["model"] == "llama3" and server.requests[0].body["max_tokens"] == 1


def test_a_refused_key_is_said_in_plain_words(world, bot_a, settings):
    with FakeOpenAI() as server:
        settings.OPENAI_BASE_URL = server.base_url
        ProviderCredentialFactory(tenant=world.tenant_a, provider="openai")  # sk-test-key-0000: not the fake's key
        posted = row_post(0, {"provider": "openai", "model": "gpt-4o-mini"})
        response = world.client_for(world.alice).post(test_url(bot_a), posted, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "The API key was refused (401)" in response.content.decode()


def test_an_unreachable_host_is_said_in_plain_words(world, bot_a, settings):
    settings.TENANT_URL_ALLOWLIST = ["127.0.0.1"]
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    posted = row_post(0, {"provider": "openai_compatible", "model_name": "llama3", "base_url": base_url})
    response = world.client_for(world.alice).post(test_url(bot_a), posted)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Could not reach {base_url}: connection refused." in page
    assert "Back to the model chain" in page  # without JavaScript: a small page of its own


def test_a_row_with_errors_is_not_called(world, bot_a, settings):
    settings.TENANT_URL_ALLOWLIST = []
    posted = row_post(0, {"provider": "openai_compatible", "model_name": "x", "base_url": "http://10.0.0.7/v1"})
    response = world.client_for(world.alice).post(test_url(bot_a), posted, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "Fix this row first." in response.content.decode() and "is refused" in response.content.decode()


def test_another_tenants_bot_is_a_404(world, bot_a):
    posted = row_post(0, {"provider": "offline"})
    assert world.client_for(world.charlie).post(test_url(bot_a, "bravo"), posted).status_code == 404


def test_a_member_gets_403(world, bot_a):
    posted = row_post(0, {"provider": "offline"})
    assert world.client_for(world.bob).post(test_url(bot_a), posted).status_code == 403


def test_the_eleventh_test_in_a_minute_is_refused(world, bot_a):
    client = world.client_for(world.alice)
    posted = row_post(0, {"provider": "offline"})
    for _ in range(10):
        assert client.post(test_url(bot_a), posted, HTTP_HX_REQUEST="true").status_code == 200
    response = client.post(test_url(bot_a), posted, HTTP_HX_REQUEST="true")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "You have tested connections too often" in response.content.decode()
