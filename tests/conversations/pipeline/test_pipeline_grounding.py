"""Grounded or honest: the retrieve stage gates passages, and when none is relevant a
knowledge-only bot says its own "I don't know" without any model, while a general-knowledge bot
answers and says the answer is not from the documentation. The trace says why."""

from __future__ import annotations

import pytest

from conversations.models import Message
from conversations.pipeline.context import UNGROUNDED_NOTE
from tests.conversations.factories import conversation_with_document
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain

HANDBOOK = """# Handbook

## Refunds
Customers can request a refund within 30 days of purchase by emailing billing support.
Refunds are paid back to the original card in five business days.

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.
"""


@pytest.fixture
def handbook(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(
        world.tenant_a,
        text=HANDBOOK,
        name="Support",
        answer_policy="knowledge_only",
        model_chain=chain("openai:gpt-4o-mini"),
        fallback_contact="help@example.com",
        no_answer_message="I'm sorry, our handbook doesn't cover that.",
    )
    return conversation


def _trace(turn):
    return Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id).trace


@pytest.mark.parametrize("question", ["What is the capital of Australia?", "Who won the 1998 football World Cup?"])
def test_a_knowledge_only_bot_says_its_own_dont_know_with_its_contact_and_calls_no_model(
    handbook, fake_openai, question
):
    bot = handbook.bot
    turn = ask(bot, handbook, question)
    assert turn.text == "I'm sorry, our handbook doesn't cover that. You can reach our team at help@example.com."
    assert turn.citations == [] and turn.done.model == "policy:no_passages"
    assert fake_openai.requests == []  # not even a query rewrite: a first question stands alone
    verdicts = _trace(turn).retrieval["verdicts"]
    assert verdicts and not any(v["relevant"] or v["kept"] for v in verdicts)
    assert all(v["reason"] and "similarity" in v["signals"] for v in verdicts)


def test_a_relevant_question_is_answered_from_the_kept_passages_and_the_trace_says_why(handbook, fake_openai):
    fake_openai.then(Behaviour(text="Refunds take five business days [1]."))
    turn = ask(handbook.bot, handbook, "How long do refunds take?")
    assert turn.text == "Refunds take five business days [1]." and turn.citations[0]["title"] == "Handbook"
    trace = _trace(turn)
    kept = [v for v in trace.retrieval["verdicts"] if v["kept"]]
    assert kept and all(v["relevant"] for v in kept)
    assert [v["chunk_id"] for v in kept] == [r["chunk_id"] for r in trace.retrieved]
    assert "Refunds" in fake_openai.requests[0].body["messages"][0]["content"]


def test_a_general_knowledge_bot_answers_without_sources_and_says_so(handbook, fake_openai):
    bot = handbook.bot
    bot.answer_policy = "general"
    bot.save(update_fields=["answer_policy"])
    fake_openai.then(Behaviour(text="Canberra is the capital of Australia."))
    turn = ask(bot, handbook, "What is the capital of Australia?")
    assert turn.text == f"Canberra is the capital of Australia.\n\n{UNGROUNDED_NOTE}"
    assert turn.done.content == turn.text and turn.citations == []
    assert "(no matching passages were found)" in fake_openai.requests[0].body["messages"][0]["content"]
