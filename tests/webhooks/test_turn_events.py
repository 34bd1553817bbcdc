"""message.completed and conversation.started come from the answer pipeline's settle, and cost a
turn nothing when no endpoint wants them: the subscribed events ride in the turn configuration."""

from __future__ import annotations

import pytest

from chatbot_saas import runtime
from tenants.context import tenant_context
from tests.conversations.pipeline.test_pipeline_context import COLD_CONFIG_QUERIES, EXPECTED_TURN_QUERIES
from tests.fakes.fixtures import ask, conversation_a  # noqa: F401
from webhooks import services
from webhooks.models import Delivery


def _subscribe(tenant, url: str) -> str:
    with tenant_context(tenant):
        _, secret = services.endpoint_create(
            tenant=tenant, url=url, description="", events=["conversation.started", "message.completed"]
        )
    return secret


@pytest.mark.usefixtures("eager_celery")
def test_the_first_answer_sends_conversation_started_and_every_answer_message_completed(
    conversation_a,  # noqa: F811
    pro_a,
    hook,
    django_capture_on_commit_callbacks,
):
    secret = _subscribe(pro_a, hook.url)
    bot = conversation_a.bot
    for question in ("When are you open?", "And on Sundays?"):
        with django_capture_on_commit_callbacks(execute=True):
            ask(bot, conversation_a, question)
    assert [r.event["type"] for r in hook.received] == [
        "conversation.started",
        "message.completed",
        "message.completed",
    ]
    assert all(r.verified_with(secret) for r in hook.received)
    started = hook.received[0].event["data"]
    assert started["conversation_id"] == conversation_a.pk and started["first_message"] == "When are you open?"
    completed = hook.events("message.completed")[1].event["data"]
    assert completed["question"] == "And on Sundays?" and completed["answer"]
    assert completed["bot_id"] == bot.pk and completed["status"] == "complete"


def test_a_turn_of_a_workspace_without_endpoints_spends_no_query_on_webhooks(
    conversation_a,  # noqa: F811
    pro_a,
    django_assert_num_queries,
    monkeypatch,
):
    monkeypatch.setattr(runtime, "TURN_CONFIG_TTL", 3600)  # however loaded the machine running the test
    bot = conversation_a.bot
    ask(bot, conversation_a, "warm-up question")
    with django_assert_num_queries(EXPECTED_TURN_QUERIES):
        ask(bot, conversation_a, "How long do refunds take?")
    # Reading the configuration afresh: one query more than on plans without webhooks.
    runtime.forget_turn_configs(bot.tenant_id)
    with django_assert_num_queries(EXPECTED_TURN_QUERIES + COLD_CONFIG_QUERIES + 1):
        ask(bot, conversation_a, "And for a gift?")
    assert not Delivery.objects.unscoped().exists()


def test_a_turn_of_a_workspace_with_an_endpoint_settles_with_the_same_queries(
    conversation_a,  # noqa: F811
    pro_a,
    loopback,
    django_assert_num_queries,
    monkeypatch,
):
    # The deliveries are made after the settle commits (never inside the turn's transaction).
    monkeypatch.setattr(runtime, "TURN_CONFIG_TTL", 3600)
    _subscribe(pro_a, "http://127.0.0.1:9/hook")
    bot = conversation_a.bot
    ask(bot, conversation_a, "warm-up question")
    with django_assert_num_queries(EXPECTED_TURN_QUERIES):
        ask(bot, conversation_a, "How long do refunds take?")


def test_saving_an_endpoint_is_seen_by_the_next_turn(conversation_a, pro_a, loopback, monkeypatch):  # noqa: F811
    from conversations.pipeline.config import turn_config

    monkeypatch.setattr(runtime, "TURN_CONFIG_TTL", 3600)
    bot = conversation_a.bot
    with tenant_context(pro_a):
        assert turn_config(bot=bot).webhook_events == frozenset()
        _subscribe(pro_a, "http://127.0.0.1:9/hook")
        assert turn_config(bot=bot).webhook_events == {"conversation.started", "message.completed"}
