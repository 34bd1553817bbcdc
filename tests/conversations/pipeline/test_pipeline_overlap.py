"""The turn's database work runs on a pool of threads with their own connections
(ANSWER_DB_THREADS, the production default). These tests use transactional_db, so the pool
threads use their own connections and the fake provider's thread sees exactly what the pipeline
committed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from chatbot_saas import runtime
from conversations.models import Message
from conversations.pipeline.events import Delta, Start
from conversations.pipeline.service import answer_stream
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory
from tests.fakes.base import Behaviour, Received
from tests.fakes.fixtures import ask, chain


@pytest.fixture
def pooled() -> Iterator[None]:
    yield
    runtime.reset()  # closes the pool threads' connections before the tables are flushed


@pytest.fixture
def pooled_conversation(transactional_db, world):
    # No knowledge base here: ingesting a file under transactional_db after the other pipeline
    # tests hit a stale MEDIA_ROOT (see the report); the query-vector path is covered by
    # test_pipeline_knowledge.py (same code, thread-sensitive mode) and tests/knowledge.
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a, bot__name="Support", bot__answer_policy="general")
        conversation.bot.model_chain = chain("openai:gpt-4o-mini")
        conversation.bot.save()
    return conversation


def _committed_at_request_time(fake_openai, conversation) -> dict:
    """What the database held, committed, when the provider received the request."""
    seen: dict = {}

    def look(_received: Received) -> None:
        try:
            seen["messages"] = list(
                Message.objects.unscoped()
                .filter(conversation_id=conversation.pk)
                .order_by("id")
                .values_list("role", "status", "content")
            )
        finally:
            connection.close()  # this is the fake server's thread

    fake_openai.on_request = look
    return seen


def test_the_question_is_committed_before_the_provider_is_called(pooled, pooled_conversation, fake_openai):
    conversation = pooled_conversation
    seen = _committed_at_request_time(fake_openai, conversation)
    fake_openai.then(Behaviour(text="Click Forgot password [1]."))

    turn = ask(conversation.bot, conversation, "How do I reset my password?")

    assert turn.done.content == "Click Forgot password [1]."
    assert seen["messages"] == [
        ("user", "complete", "How do I reset my password?"),
        ("assistant", "streaming", ""),
    ]
    assistant = Message.objects.unscoped().select_related("trace").get(pk=turn.done.assistant_message_id)
    assert assistant.status == "complete" and assistant.trace.attempts[0]["outcome"] == "ok"


def test_a_second_turn_sees_the_first_in_its_memory_across_pool_threads(pooled, pooled_conversation, fake_openai):
    conversation = pooled_conversation
    fake_openai.then(Behaviour(text="In Lisbon."), Behaviour(text="On the third floor."))
    ask(conversation.bot, conversation, "Where is the office?")
    ask(conversation.bot, conversation, "And the coffee machine?")
    history = fake_openai.requests[1].body["messages"][1:]
    assert [m["content"] for m in history] == ["Where is the office?", "In Lisbon.", "And the coffee machine?"]


def test_a_stopped_turn_is_settled_partial_with_the_pool(pooled, pooled_conversation, fake_openai):
    conversation = pooled_conversation
    fake_openai.then(Behaviour(text="word " * 200, tokens_per_second=50))

    async def run() -> tuple[int, str]:
        stream = answer_stream(bot=conversation.bot, conversation=conversation, user_message="Tell me everything")
        shown, message_id = "", 0
        async for event in stream:
            if isinstance(event, Start):
                message_id = event.assistant_message_id
            if isinstance(event, Delta):
                shown += event.text
                if shown.count("word") >= 3:
                    break
        await stream.aclose()
        return message_id, shown

    message_id, shown = async_to_sync(run)()
    message = Message.objects.unscoped().get(pk=message_id)
    assert message.status == "partial" and message.error_code == "stopped"
    assert message.content == shown and shown.startswith("word word")
