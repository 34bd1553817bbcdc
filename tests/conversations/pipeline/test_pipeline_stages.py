"""The stages of a turn, each called on its own with typed inputs: retrieve, assemble, generate's
chain, settle; and the runtime state they share, forgotten by reset()."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError

from billing.models import UsageCounter
from billing.services import current_period
from chatbot_saas import runtime
from conversations.llm.base import ChatMessage
from conversations.models import Conversation, Message, Trace
from conversations.pipeline.retrieval import RetrievalRequest, retrieve
from conversations.pipeline.stages import AssemblyRequest, GenerationRequest, assemble_prompt, generation_chain
from conversations.pipeline.turn import TurnOutcome, TurnSetup, turn_begin, turn_settle
from knowledge.types import RetrievedPassage
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory, conversation_with_document
from tests.fakes.fixtures import chain

HANDBOOK = """# Handbook

## Refunds
Refunds are paid back to the original card in five business days.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""


def _passage(chunk_id: int, text: str, title: str = "Handbook") -> RetrievedPassage:
    return RetrievedPassage(
        chunk_id=chunk_id, document_id=1, knowledge_base_id=1, text=text, score=0.5, document_title=title
    )


def _setup(conversation: Conversation, **fields: object) -> TurnSetup:
    values = {
        "tenant": conversation.tenant,
        "user_message": Message(conversation=conversation, role="user", content="How long do refunds take?"),
        "assistant_message": Message(conversation=conversation, role="assistant"),
        "prompt_text": "You answer from the handbook.",
        "prompt_version": 1,
        "chain": chain("openai:gpt-4o-mini"),
        "skipped": [],
        "keys": {"openai": None},
        "window": [],
        "summary": "",
        "facts": {},
    }
    values.update(fields)
    return TurnSetup(**values)


def test_assemble_numbers_the_given_passages_in_the_prompt_before_the_memory(world):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a, bot__answer_policy="general")
    passages = [_passage(7, "Refunds take five business days."), _passage(9, "The office is in Lisbon.", "Office")]
    setup = _setup(
        conversation,
        window=[ChatMessage("user", "Hello"), ChatMessage("assistant", "Hi, how can I help?")],
        summary="The visitor asked about plans.",
        facts={"name": "Ann"},
    )

    context = assemble_prompt(
        AssemblyRequest(
            bot=conversation.bot, setup=setup, passages=passages, user_message="How long?", canary="cnry-test"
        )
    )

    assert context.system.startswith("You answer from the handbook.")
    first = context.system.index("<<<SOURCE 1: Handbook>>>\nRefunds take five business days.\n<<<END SOURCE 1>>>")
    second = context.system.index("<<<SOURCE 2: Office>>>\nThe office is in Lisbon.\n<<<END SOURCE 2>>>")
    assert first < second < context.system.index("- name: Ann") < context.system.index("plans.")
    assert "cnry-test" in context.system
    assert [(m.role, m.content) for m in context.messages] == [
        ("user", "Hello"),
        ("assistant", "Hi, how can I help?"),
        ("user", "How long?"),
    ]
    assert context.passages == passages


def test_assemble_without_passages_says_that_none_were_found(world):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a)
    context = assemble_prompt(
        AssemblyRequest(bot=conversation.bot, setup=_setup(conversation), passages=[], user_message="Hi", canary="c")
    )
    assert "(no matching passages were found)" in context.system and context.passages == []


def test_the_generation_chain_caps_each_request_by_the_bots_own_limits(world):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a)
    bot = conversation.bot
    bot.max_answer_tokens, bot.temperature = 300, 0.2
    entries = [
        {"provider": "openai", "model": "gpt-4o-mini", "params": {"max_tokens": 5000, "temperature": 0.9}},
        {"provider": "anthropic", "model": "claude-haiku-4-5", "params": {"max_tokens": 100}},
    ]
    setup = _setup(conversation, chain=entries)
    context = assemble_prompt(AssemblyRequest(bot=bot, setup=setup, passages=[], user_message="Hi", canary="cnry-x"))

    chain_setup = generation_chain(
        GenerationRequest(bot=bot, setup=setup, context=context, user_message="Hi", breaker_for=lambda entry: None)
    )

    first, second = (chain_setup.request_for(entry) for entry in entries)
    assert (first.max_tokens, first.temperature) == (300, 0.9)
    assert (second.max_tokens, second.temperature) == (100, 0.2)
    assert first.system == context.system and first.messages == context.messages and first.query == "Hi"
    assert chain_setup.entries == entries and chain_setup.attempts == []


def test_retrieve_finds_passages_of_the_requests_tenant_only(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, kb = conversation_with_document(world.tenant_a, text=HANDBOOK, answer_policy="general")
    bot = conversation.bot

    with tenant_context(world.tenant_a):
        found = retrieve(
            RetrievalRequest(
                tenant=world.tenant_a,
                bot=bot,
                query="How long do refunds take?",
                knowledge_bases=[(kb.pk, kb.embedding_model)],
            )
        )
    assert found.passages and {p.knowledge_base_id for p in found.passages} == {kb.pk}
    assert "five business days" in found.passages[0].text

    # Tenant B names tenant A's knowledge base: its scope holds no such knowledge base.
    with tenant_context(world.tenant_b):
        other = retrieve(
            RetrievalRequest(
                tenant=world.tenant_b,
                bot=bot,
                query="How long do refunds take?",
                knowledge_bases=[(kb.pk, kb.embedding_model)],
            )
        )
        # Tenant A's request while tenant B is in context finds nothing either.
        smuggled = retrieve(
            RetrievalRequest(
                tenant=world.tenant_a,
                bot=bot,
                query="How long do refunds take?",
                knowledge_bases=[(kb.pk, kb.embedding_model)],
            )
        )
    assert other.passages == [] and smuggled.passages == []


@pytest.fixture
def opened(world):
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a, bot__model_chain=chain("offline:extractive"))
    begin = turn_begin(bot=conversation.bot, conversation=conversation, text="Where is the office?", retrieve=False)
    assert begin.setup is not None
    return conversation, begin.setup


def test_settle_writes_the_message_its_trace_the_usage_and_last_active(world, opened):
    conversation, setup = opened
    outcome = TurnOutcome(
        status=Message.Status.COMPLETE,
        content="In Lisbon [1].",
        model="openai:gpt-4o-mini",
        tokens_in=120,
        tokens_out=8,
        cost=Decimal("0.0012"),
        citations=[{"n": 1, "chunk_id": 3}],
        latency={"total_ms": 40.0},
        attempts=[{"provider": "openai", "model": "gpt-4o-mini", "outcome": "ok"}],
        guardrail_hits=[{"check": "injection", "where": "input", "detail": "x"}],
        retrieved=[{"chunk_id": 3, "document_id": 1, "score": 0.03}],
    )
    with tenant_context(world.tenant_a):
        before = UsageCounter.objects.filter(period=current_period()).values_list("messages", "tokens_in").first()
        turn_settle(tenant=world.tenant_a, setup=setup, outcome=outcome)

        message = Message.objects.get(pk=setup.assistant_message.pk)
        trace = Trace.objects.get(message=message)
        used = UsageCounter.objects.get(period=current_period())
        conversation.refresh_from_db()
    assert (message.status, message.content, message.model) == ("complete", "In Lisbon [1].", "openai:gpt-4o-mini")
    assert (message.tokens_in, message.tokens_out, message.cost) == (120, 8, Decimal("0.0012"))
    assert message.citations == [{"n": 1, "chunk_id": 3}] and message.latency == {"total_ms": 40.0}
    assert trace.attempts == outcome.attempts and trace.guardrail_hits == outcome.guardrail_hits
    assert trace.retrieved == outcome.retrieved
    messages_before, tokens_before = before or (0, 0)
    assert (used.messages, used.tokens_in) == (messages_before + 1, tokens_before + 120)
    assert conversation.last_active == setup.user_message.created


def test_settle_of_a_quota_refusal_counts_no_usage(world, opened):
    _conversation, setup = opened
    with tenant_context(world.tenant_a):
        before = UsageCounter.objects.filter(period=current_period()).values_list("messages", flat=True).first()
        turn_settle(
            tenant=world.tenant_a,
            setup=setup,
            outcome=TurnOutcome(status=Message.Status.FAILED, content="", error_code="quota_exceeded"),
        )
        after = UsageCounter.objects.filter(period=current_period()).values_list("messages", flat=True).first()
        assert Message.objects.get(pk=setup.assistant_message.pk).error_code == "quota_exceeded"
    assert after == before


def test_settle_of_a_deleted_message_raises_and_writes_nothing(world, opened):
    conversation, setup = opened
    with tenant_context(world.tenant_a):
        last_active = Conversation.objects.get(pk=conversation.pk).last_active
        Message.objects.filter(pk=setup.assistant_message.pk).delete()
        with pytest.raises(DatabaseError):
            turn_settle(
                tenant=world.tenant_a,
                setup=setup,
                outcome=TurnOutcome(status=Message.Status.COMPLETE, content="Too late."),
            )
        assert not Trace.objects.filter(message_id=setup.assistant_message.pk).exists()
        assert Conversation.objects.get(pk=conversation.pk).last_active == last_active


def test_runtime_reset_forgets_every_remembered_thing_and_starts_new_pools():
    pool = runtime.pool("db", 2)
    runtime.remember_scope((1, (2,)), [(2, "model", 10)])
    runtime.remember_kb_models(5, ("model",))
    runtime.kb_indexes_seen.add((2, 384))

    runtime.reset()

    assert runtime.retrieval_scopes == {} and runtime.kb_models_hint == {} and runtime.kb_indexes_seen == set()
    assert runtime.pool("db", 2) is not pool
    with pytest.raises(RuntimeError):
        pool.submit(print)  # the old pool was shut down
