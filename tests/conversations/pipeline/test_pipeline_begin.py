"""turn_begin: the turn's one database hop before its prompt (tenant, plan, memory, prompt,
window, knowledge bases, the INSERT), and retrieval in that same hop when the query vectors are
ready in time; the knowledge-base models the query embedding starts under before they are read."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from billing.models import Subscription
from bots.services import bot_attach_knowledge_bases
from chatbot_saas import runtime
from conversations.models import Conversation, Message
from conversations.pipeline import turn
from conversations.pipeline.memory import memory_window
from conversations.pipeline.retrieval import decision_for
from conversations.pipeline.turn import turn_begin
from knowledge.embeddings import embed_query_by_model
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory, conversation_with_document
from tests.fakes.fixtures import ask

HANDBOOK = """# Handbook

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""
QUESTION = "How do I reset my password?"


@pytest.fixture
def knowledge(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return conversation_with_document(world.tenant_a, text=HANDBOOK, name="Support", answer_policy="general")


def _ids(passages) -> list[tuple[int, float]]:
    return [(p.chunk_id, round(p.score, 6)) for p in passages]


def test_the_window_read_with_the_turn_is_the_memory_window(world, settings):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a)
        rows = [
            ("user", "complete", "one"),
            ("assistant", "complete", "two"),
            ("user", "complete", "three"),
            ("assistant", "failed", "broken"),
            ("assistant", "partial", "four"),
            ("user", "complete", ""),
            ("assistant", "streaming", "in flight"),
            ("user", "complete", "five"),
        ]
        for role, status, content in rows:
            Message.objects.create(
                tenant=world.tenant_a, conversation=conversation, role=role, status=status, content=content
            )
        assert [m.content for m in memory_window(conversation=conversation, size=3)] == ["three", "four", "five"]
        expected = memory_window(conversation=conversation, size=settings.BOT_MEMORY_WINDOW_MESSAGES)
    begin = turn_begin(bot=conversation.bot, conversation=conversation, text="six")
    assert [(m.role, m.content) for m in begin.setup.window] == [(m.role, m.content) for m in expected]
    assert [m.content for m in begin.setup.window] == ["one", "two", "three", "four", "five"]


def test_the_summary_and_facts_read_with_the_turn_are_fresh_on_the_first_turn_and_later(world):
    """The caller may hold its conversation for many turns while the refresh task rewrites the
    summary and facts: the turn reads them fresh, joined to the window or, with no window yet,
    on their own."""
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a)
        Conversation.objects.filter(pk=conversation.pk).update(
            summary="Asked about refunds.", visitor_facts={"name": "Ana"}
        )
    first = turn_begin(bot=conversation.bot, conversation=conversation, text="hello").setup
    assert (first.window, first.summary, first.facts) == ([], "Asked about refunds.", {"name": "Ana"})
    with tenant_context(world.tenant_a):
        Message.objects.filter(pk=first.assistant_message.pk).update(status="complete", content="hi")
        Conversation.objects.filter(pk=conversation.pk).update(summary="Asked twice.", visitor_facts={"plan": "pro"})
    later = turn_begin(bot=conversation.bot, conversation=conversation, text="again").setup
    assert [m.content for m in later.window] == ["hello", "hi"]
    assert (later.summary, later.facts) == ("Asked twice.", {"plan": "pro"})


def test_a_tenant_without_a_subscription_row_answers_on_the_default_plan_and_can_be_suspended(world):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a)
        Subscription.objects.all().delete()
    begin = turn_begin(bot=conversation.bot, conversation=conversation, text="hello")
    assert begin.setup is not None and begin.tenant == world.tenant_a and begin.setup.quota_error is None
    world.tenant_a.status = "suspended"
    world.tenant_a.save(update_fields=["status"])
    assert turn_begin(bot=conversation.bot, conversation=conversation, text="hello").refused == "tenant_suspended"


def test_turn_begin_retrieves_in_its_own_hop_only_when_the_vectors_are_ready(knowledge, monkeypatch):
    conversation, kb = knowledge
    bot, tenant = conversation.bot, conversation.tenant
    ready: Future = Future()
    ready.set_result(embed_query_by_model(QUESTION, [kb.embedding_model]))

    begin = turn_begin(bot=bot, conversation=conversation, text=QUESTION, query_vectors=ready)
    assert begin.setup is not None and begin.knowledge_bases == [(kb.pk, kb.embedding_model)]
    with tenant_context(tenant):
        expected = decision_for(tenant=tenant, bot=bot, query=QUESTION).kept
    assert expected and _ids(begin.passages) == _ids(expected)
    assert "Forgot password" in begin.passages[0].text

    running: Future = Future()  # being embedded when the messages are stored: waited for
    monkeypatch.setattr(turn, "EMBEDDING_WAIT", 30)  # however loaded the machine running the test
    assert running.set_running_or_notify_cancel()
    timer = threading.Timer(0.02, running.set_result, args=[ready.result()])
    timer.start()
    waited = turn_begin(bot=bot, conversation=conversation, text=QUESTION, query_vectors=running)
    timer.join()
    assert _ids(waited.passages) == _ids(expected)

    pending: Future = Future()  # queued behind other embeddings: retrieval is left to the pipeline
    assert turn_begin(bot=bot, conversation=conversation, text=QUESTION, query_vectors=pending).passages is None
    refusing = turn_begin(bot=bot, conversation=conversation, text=QUESTION, query_vectors=ready, retrieve=False)
    assert refusing.passages is None and refusing.setup is not None
    with tenant_context(tenant):  # every call stored its two messages
        assert Message.objects.filter(conversation=conversation).count() == 8


def test_a_suspended_tenant_or_paused_bot_stores_nothing(knowledge):
    conversation, _kb = knowledge
    bot, tenant = conversation.bot, conversation.tenant
    bot.status = "paused"
    assert turn_begin(bot=bot, conversation=conversation, text=QUESTION).refused == "bot_paused"
    tenant.status = "suspended"
    tenant.save(update_fields=["status"])
    assert turn_begin(bot=bot, conversation=conversation, text=QUESTION).refused == "tenant_suspended"
    with tenant_context(tenant):
        assert not Message.objects.filter(conversation=conversation).exists()


def _retrieved(turn) -> list[int]:
    message = Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id)
    return [r["chunk_id"] for r in message.trace.retrieved]


def test_the_embedding_models_hint_never_changes_what_is_retrieved(knowledge):
    """The query embedding starts under the models the bot's knowledge bases had at its last turn;
    a hint that is wrong either way (a base attached or detached since) costs time, not answers."""
    conversation, kb = knowledge
    bot = conversation.bot
    first = _retrieved(ask(bot, conversation, QUESTION))
    assert first and runtime.kb_models_hint[bot.pk] == (kb.embedding_model,)

    with tenant_context(conversation.tenant):
        bot.knowledge_bases.clear()
    assert _retrieved(ask(bot, conversation, QUESTION)) == []
    assert runtime.kb_models_hint[bot.pk] == ()

    with tenant_context(conversation.tenant):
        bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=[kb.pk])
    assert _retrieved(ask(bot, conversation, QUESTION)) == first  # embedded late, under the right model
    assert runtime.kb_models_hint[bot.pk] == (kb.embedding_model,)
