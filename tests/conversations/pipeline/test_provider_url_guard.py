"""A model server URL a tenant set is checked again at every call: a chain (or provider key) that
reached the database without the save-time check, or whose name now resolves elsewhere, makes no
connection; the attempt is traced as provider_url_refused and the next chain entry answers."""

from __future__ import annotations

import pytest

from bots.crypto import encrypt
from bots.models import Bot, ProviderCredential
from conversations.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask
from tests.support.tenant_urls import PUBLIC_LOOKING_NAME, loopback_listener, point_name_at, refused_urls

OFFLINE = {"provider": "offline", "model": "extractive", "params": {}}


@pytest.fixture(autouse=True)
def _strict_guard(settings, monkeypatch, fast_timeouts):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    settings.TENANT_URL_ALLOWLIST = []
    point_name_at(monkeypatch, PUBLIC_LOOKING_NAME, "127.0.0.1")


def _write_chain_unchecked(bot: Bot, chain: list[dict]) -> None:
    # As a chain saved before the check existed: straight to the table, no validation.
    Bot.objects.unscoped().filter(pk=bot.pk).update(model_chain=chain)
    bot.refresh_from_db()


def _attempts(turn) -> list[dict]:
    message = Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id)
    return message.trace.attempts


def test_a_stored_chain_pointing_at_loopback_in_any_form_makes_no_connection_and_fails_over(conversation_a):
    bot = conversation_a.bot
    with loopback_listener() as listener:
        for name, base_url in refused_urls(listener.port).items():
            _write_chain_unchecked(
                bot, [{"provider": "openai_compatible", "model": "x", "params": {"base_url": base_url}}, OFFLINE]
            )
            turn = ask(bot, conversation_a, f"What about {name}?")
            assert turn.done.model == "offline:extractive", name
            first = _attempts(turn)[0]
            assert (first["provider"], first["code"], first["retryable"]) == (
                "openai_compatible",
                "provider_url_refused",
                False,
            ), name
            assert "was refused and not called" in first["error"], name
            if PUBLIC_LOOKING_NAME in base_url:  # the trace never tells what an internal name resolves to
                assert "127.0.0.1" not in first["error"]
        assert listener.connections == 0


def test_a_stored_provider_key_base_url_pointing_at_loopback_makes_no_connection(world, conversation_a, fake_openai):
    bot = conversation_a.bot
    with loopback_listener() as listener:
        for provider in ("openai", "anthropic", "openai_compatible"):
            ProviderCredential.objects.unscoped().update_or_create(
                tenant=world.tenant_a,
                provider=provider,
                defaults={"encrypted_key": encrypt("sk-tenant"), "base_url": f"http://127.0.0.1:{listener.port}/v1"},
            )
            _write_chain_unchecked(bot, [{"provider": provider, "model": "m", "params": {}}, OFFLINE])
            turn = ask(bot, conversation_a, "Hello?")
            assert turn.done.model == "offline:extractive"
            assert _attempts(turn)[0]["code"] == "provider_url_refused"
        assert listener.connections == 0
    assert fake_openai.requests == []  # the platform's URL is not used as a fallback either


def test_a_name_that_was_public_at_save_and_resolves_to_loopback_now_is_refused(world, conversation_a, monkeypatch):
    from bots import services
    from tenants.context import tenant_context

    bot = conversation_a.bot
    with loopback_listener() as listener:
        point_name_at(monkeypatch, "llm.example.com", "93.184.216.34")
        with tenant_context(world.tenant_a):
            chain = [
                {
                    "provider": "openai_compatible",
                    "model": "x",
                    "params": {"base_url": f"http://llm.example.com:{listener.port}/v1"},
                },
                OFFLINE,
            ]
            services.bot_update(bot=bot, model_chain=chain)
        point_name_at(monkeypatch, "llm.example.com", "127.0.0.1")  # the DNS answer changes
        turn = ask(bot, conversation_a, "Hello?")
        assert _attempts(turn)[0]["code"] == "provider_url_refused"
        assert turn.done.model == "offline:extractive"
    assert listener.connections == 0


def test_an_allowlisted_server_is_called_at_the_address_the_guard_checked_under_its_own_name(
    conversation_a, fake_openai, settings, monkeypatch
):
    # The name exists only in the guard's resolver: the SDK's own lookup would fail, so an answer
    # proves the request went to the checked address, and the Host header keeps the name.
    point_name_at(monkeypatch, "ollama.lan", "127.0.0.1")
    settings.TENANT_URL_ALLOWLIST = ["ollama.lan"]
    fake_openai.api_key = "not-needed"
    port = fake_openai.base_url.split(":")[2].split("/")[0]
    bot = conversation_a.bot
    _write_chain_unchecked(
        bot,
        [
            {
                "provider": "openai_compatible",
                "model": "llama3.2",
                "params": {"base_url": f"http://ollama.lan:{port}/v1"},
            }
        ],
    )
    fake_openai.then(Behaviour(text="From the LAN."))
    turn = ask(bot, conversation_a, "Hi")
    assert turn.text == "From the LAN." and turn.done.model == "openai_compatible:llama3.2"
    assert fake_openai.requests[0].headers["host"] == f"ollama.lan:{port}"


def test_the_operators_base_url_is_trusted_without_an_allowlist(conversation_a, fake_openai, settings):
    settings.OPENAI_COMPATIBLE_BASE_URL, settings.OPENAI_COMPATIBLE_API_KEY = fake_openai.base_url, fake_openai.api_key
    bot = conversation_a.bot
    _write_chain_unchecked(bot, [{"provider": "openai_compatible", "model": "llama3.2", "params": {}}])
    fake_openai.then(Behaviour(text="Operator's server."))
    assert ask(bot, conversation_a, "Hi").text == "Operator's server."


def test_the_memory_refresh_a_worker_runs_makes_no_connection_to_a_stored_loopback_url(world, settings):
    from conversations.pipeline.memory import conversation_memory_refresh
    from tenants.context import tenant_context
    from tests.conversations.factories import ConversationFactory, MessageFactory

    settings.BOT_MEMORY_WINDOW_MESSAGES = 2
    conversation = ConversationFactory(tenant=world.tenant_a)
    for role, content in [
        ("user", "Hi, my name is Ana."),
        ("assistant", "Hello Ana."),
        ("user", "Refunds?"),
        ("assistant", "30 days."),
    ]:
        MessageFactory(tenant=world.tenant_a, conversation=conversation, role=role, content=content)
    with loopback_listener() as listener:
        for base_url in refused_urls(listener.port).values():
            entry = {"provider": "openai_compatible", "model": "x", "params": {"base_url": base_url}}
            _write_chain_unchecked(conversation.bot, [entry])
            with tenant_context(world.tenant_a):
                conversation_memory_refresh(conversation_id=conversation.pk)
        assert listener.connections == 0
    conversation.refresh_from_db()
    assert "Visitor asked: Hi, my name is Ana." in conversation.summary  # the extractive fallback


def test_the_operators_key_is_never_sent_to_a_base_url_a_tenant_chose(conversation_a, fake_openai, settings):
    settings.TENANT_URL_ALLOWLIST = ["127.0.0.1"]
    settings.OPENAI_COMPATIBLE_API_KEY = "sk-operator-secret"
    bot = conversation_a.bot
    _write_chain_unchecked(
        bot, [{"provider": "openai_compatible", "model": "m", "params": {"base_url": fake_openai.base_url}}, OFFLINE]
    )
    ask(bot, conversation_a, "Hi")
    assert fake_openai.requests and all(
        "sk-operator-secret" not in r.headers.get("authorization", "") for r in fake_openai.requests
    )
