"""Failover across real SDKs and fake provider servers, before and after the first token."""

from __future__ import annotations

import pytest

from conversations.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain

OPENAI_THEN_ANTHROPIC = chain("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")


@pytest.fixture
def bot(conversation_a):
    bot = conversation_a.bot
    bot.model_chain = OPENAI_THEN_ANTHROPIC
    bot.save()
    return bot


def stored(turn) -> Message:
    return Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id)


def outcomes(message: Message) -> list[tuple[str, str]]:
    return [(a["provider"], a.get("code") or a["outcome"]) for a in message.trace.attempts]


def test_openai_alone_streams_a_complete_answer_with_usage_and_cost(bot, conversation_a, fake_openai):
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="Hello there, visitor."))
    turn = ask(bot, conversation_a, "Hi!")
    assert turn.kinds[0] == "Start" and turn.kinds[-1] == "Done"
    assert turn.text == "Hello there, visitor." == turn.done.content
    assert turn.done.model == "openai:gpt-4o-mini" and turn.done.tokens_out == 3 and turn.done.cost > 0
    request = fake_openai.requests[0]
    assert request.body["stream"] is True and request.body["messages"][0]["role"] == "system"
    assert request.headers["x-stainless-retry-count"] == "0"
    message = stored(turn)
    assert message.status == "complete" and message.tokens_out == 3
    assert outcomes(message) == [("openai", "ok")]


def test_anthropic_alone_streams_a_complete_answer(bot, conversation_a, fake_anthropic):
    bot.model_chain = chain("anthropic:claude-haiku-4-5")
    bot.save()
    fake_anthropic.then(Behaviour(text="Bonjour from Claude."))
    turn = ask(bot, conversation_a, "Hello")
    assert turn.text == "Bonjour from Claude.", stored(turn).trace.attempts
    assert turn.done.tokens_out == 3 and turn.done.tokens_in > 0
    assert fake_anthropic.requests[0].body["system"].startswith("You are the helpful assistant")


def test_a_500_before_the_first_token_fails_over_without_a_reset(bot, conversation_a, fake_openai, fake_anthropic):
    fake_openai.then(Behaviour(fault="500"))
    fake_anthropic.then(Behaviour(text="Answer from the backup."))
    turn = ask(bot, conversation_a, "Question?")
    assert "Reset" not in turn.kinds
    assert turn.text == "Answer from the backup."
    assert turn.done.model == "anthropic:claude-haiku-4-5"
    assert outcomes(stored(turn)) == [("openai", "server_error"), ("anthropic", "ok")]


def test_a_drop_after_the_first_tokens_resets_and_stores_the_backup_answer(
    bot, conversation_a, fake_openai, fake_anthropic
):
    fake_openai.then(Behaviour(text="This answer will be cut off midway", fault="drop", fault_after_tokens=3))
    fake_anthropic.then(Behaviour(text="The complete answer."))
    turn = ask(bot, conversation_a, "Question?")
    reset_at = turn.kinds.index("Reset")
    shown_before = "".join(e.text for e in turn.events[:reset_at] if type(e).__name__ == "Delta")
    assert shown_before.startswith("This answer")
    assert turn.text == "The complete answer."
    message = stored(turn)
    assert message.content == "The complete answer." and message.status == "complete"
    first = message.trace.attempts[0]
    assert first["code"] == "connection" and first["after_first_token"] is True and first["retryable"] is True


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_error_event_after_a_200_fails_over(conversation_a, fake_openai, fake_anthropic, provider):
    bot = conversation_a.bot
    first, second = (fake_openai, fake_anthropic) if provider == "openai" else (fake_anthropic, fake_openai)
    bot.model_chain = OPENAI_THEN_ANTHROPIC if provider == "openai" else list(reversed(OPENAI_THEN_ANTHROPIC))
    bot.save()
    first.then(Behaviour(text="Starting to answer and then", fault="error_event", fault_after_tokens=2))
    second.then(Behaviour(text="Recovered answer."))
    turn = ask(bot, conversation_a, "Question?")
    assert "Reset" in turn.kinds and turn.text == "Recovered answer."
    assert stored(turn).trace.attempts[0]["code"] == "stream_error"


def test_anthropic_529_overloaded_fails_over(conversation_a, fake_openai, fake_anthropic):
    bot = conversation_a.bot
    bot.model_chain = list(reversed(OPENAI_THEN_ANTHROPIC))
    bot.save()
    fake_anthropic.then(Behaviour(fault="529"))
    turn = ask(bot, conversation_a, "Question?")
    assert turn.done.model == "openai:gpt-4o-mini"
    attempt = stored(turn).trace.attempts[0]
    assert attempt["code"] == "overloaded" and attempt["status"] == 529 and attempt["retryable"] is True


def test_a_429_with_a_short_retry_after_is_retried_once_on_the_same_provider(
    bot, conversation_a, fake_openai, fake_anthropic
):
    fake_openai.then(Behaviour(fault="429", retry_after="0"), Behaviour(text="Second try worked."))
    turn = ask(bot, conversation_a, "Question?")
    assert turn.text == "Second try worked." and len(fake_openai.requests) == 2
    assert fake_anthropic.requests == []
    assert outcomes(stored(turn)) == [("openai", "rate_limited"), ("openai", "ok")]


def test_a_429_with_a_long_retry_after_fails_over_and_holds_the_provider_off(
    bot, conversation_a, fake_openai, fake_anthropic
):
    fake_openai.then(Behaviour(fault="429", retry_after="120"))
    turn = ask(bot, conversation_a, "Question?")
    assert turn.done.model == "anthropic:claude-haiku-4-5" and len(fake_openai.requests) == 1
    assert stored(turn).trace.attempts[0]["breaker"] == "open"
    second = ask(bot, conversation_a, "Again?")
    assert len(fake_openai.requests) == 1, "the provider is skipped until Retry-After has passed"
    assert stored(second).trace.attempts[0]["outcome"] == "skipped_open_breaker"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_quota_exhaustion_is_never_retried_and_does_not_trip_the_breaker(
    conversation_a, fake_openai, fake_anthropic, provider
):
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini") if provider == "openai" else chain("anthropic:claude-haiku-4-5")
    bot.save()
    server = fake_openai if provider == "openai" else fake_anthropic
    server.default = Behaviour(fault="quota")
    for _ in range(3):
        turn = ask(bot, conversation_a, "Question?")
        attempt = stored(turn).trace.attempts[0]
        assert attempt["code"] == "quota" and attempt["retryable"] is False and attempt["breaker"] == "closed"
    assert len(server.requests) == 3, "one request per turn: no retry, and the breaker never opened"
    assert turn.error.code == "all_providers_failed"


def test_a_wrong_key_gets_an_actionable_trace_entry_and_fails_over(
    bot, conversation_a, fake_openai, fake_anthropic, settings
):
    settings.OPENAI_API_KEY = "sk-wrong"
    turn = ask(bot, conversation_a, "Question?")
    assert turn.done.model == "anthropic:claude-haiku-4-5"
    attempt = stored(turn).trace.attempts[0]
    assert attempt["code"] == "auth" and attempt["status"] == 401
    assert "API key" in attempt["error"] and "OPENAI_API_KEY" in attempt["error"]


def test_a_provider_that_never_answers_times_out_before_the_first_token(conversation_a, fake_openai, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT_MS = 300
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini", "offline:extractive")
    bot.save()
    fake_openai.then(Behaviour(fault="hang"))
    turn = ask(bot, conversation_a, "Question?")
    assert turn.done.model == "offline:extractive"
    assert stored(turn).trace.attempts[0]["code"] == "first_token_timeout"


def test_a_stall_between_tokens_times_out_and_resets(conversation_a, fake_openai, settings):
    settings.LLM_IDLE_TIMEOUT_MS = 300
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini", "offline:extractive")
    bot.save()
    fake_openai.then(Behaviour(text="one two three four five", fault="stall", fault_after_tokens=3))
    turn = ask(bot, conversation_a, "Question?")
    assert "Reset" in turn.kinds and turn.done.model == "offline:extractive"
    assert stored(turn).trace.attempts[0]["code"] == "idle_timeout"


def test_when_every_provider_fails_the_visitor_gets_the_canned_message(
    bot, conversation_a, fake_openai, fake_anthropic
):
    bot.fallback_message = "We are having trouble; please email help@acme.test."
    bot.save()
    fake_openai.default = Behaviour(fault="500")
    fake_anthropic.default = Behaviour(text="Half an answer that breaks", fault="drop", fault_after_tokens=3)
    turn = ask(bot, conversation_a, "Question?")
    assert turn.kinds[-2:] == ["Reset", "Error"]
    assert turn.error.code == "all_providers_failed"
    assert turn.error.message == "We are having trouble; please email help@acme.test."
    assert "Traceback" not in turn.error.message and "500" not in turn.error.message
    message = stored(turn)
    assert message.status == "failed" and message.error_code == "all_providers_failed"
    assert message.content == bot.fallback_message
    assert [a["outcome"] for a in message.trace.attempts] == ["error", "error"]


def test_an_openai_compatible_server_is_reached_through_its_base_url(conversation_a, fake_openai, settings):
    fake_openai.api_key = "not-needed"  # what is sent when the tenant has no key of its own
    settings.TENANT_URL_ALLOWLIST = ["127.0.0.1"]  # the fake runs on loopback, which tenants cannot reach
    bot = conversation_a.bot
    bot.model_chain = [
        {"provider": "openai_compatible", "model": "llama3.2", "params": {"base_url": fake_openai.base_url}}
    ]
    bot.save()
    fake_openai.then(Behaviour(text="Local model here."))
    turn = ask(bot, conversation_a, "Hi")
    assert turn.text == "Local model here." and turn.done.model == "openai_compatible:llama3.2"
    assert "max_tokens" in fake_openai.requests[0].body


def test_reasoning_models_are_called_without_a_temperature(conversation_a, fake_openai):
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-5-mini")
    bot.save()
    assert ask(bot, conversation_a, "Hi").done.model == "openai:gpt-5-mini"
    body = fake_openai.requests[0].body
    assert "temperature" not in body and body["max_completion_tokens"] == bot.max_answer_tokens


def test_the_openai_request_is_what_the_sdks_create_would_send(conversation_a, fake_openai):
    """The provider posts without create()'s body transform (CPU per message, on the way to the
    first token): the transform must have nothing to change, and the request is the SDK's own."""
    import openai
    from asgiref.sync import async_to_sync
    from openai._utils import async_maybe_transform
    from openai.types.chat import completion_create_params

    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="First answer."), Behaviour(text="Second answer."))
    ask(bot, conversation_a, "Hi!")
    ask(bot, conversation_a, "And then?")
    sent = fake_openai.requests[1]
    assert [m["content"] for m in sent.body["messages"][1:]] == ["Hi!", "First answer.", "And then?"]
    params = completion_create_params.CompletionCreateParamsStreaming
    assert async_to_sync(async_maybe_transform)(sent.body, params) == sent.body

    async def through_create() -> None:
        client = openai.AsyncOpenAI(api_key=fake_openai.api_key, base_url=fake_openai.base_url, max_retries=0)
        async with client.chat.completions.with_streaming_response.create(**sent.body) as raw:
            await raw.http_response.aread()
        await client.close()

    async_to_sync(through_create)()
    via_create = fake_openai.requests[2]
    assert via_create.body == sent.body and via_create.path == sent.path
    assert set(via_create.headers) == set(sent.headers)
