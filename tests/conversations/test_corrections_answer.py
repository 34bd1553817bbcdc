"""Corrections at answer time: a question that asks what a correction answers is answered from it,
through the normal pipeline (real ingestion, embeddings, Postgres, the offline answerer or the
fake OpenAI server)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bots.correction_services import correction_create, correction_delete, correction_set_enabled, correction_update
from bots.models import Bot, Correction
from conversations.models import Message
from tenants.context import tenant_context
from tests.conversations.factories import conversation_with_document
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain

HANDBOOK = """# Handbook

## Refunds
Customers can request a refund within 30 days of purchase by emailing billing support.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""
ANSWER = "Weekend deliveries run on Saturdays only, between 9:00 and 13:00, for orders placed by Thursday."


@pytest.fixture
def corrected(world, settings, tmp_path):
    """A knowledge-only support bot over the handbook, with one correction about weekend delivery
    (which the handbook does not cover)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(world.tenant_a, text=HANDBOOK, name="Support")
    with tenant_context(world.tenant_a):
        bot = Bot.objects.get(pk=conversation.bot_id)
        correction = correction_create(bot=bot, question="Do you deliver on weekends?", answer=ANSWER)
    return conversation, bot, correction


def _message(turn) -> Message:
    return Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id)


def test_offline_a_reworded_question_is_answered_with_the_correction_cited_as_the_support_team(corrected, world):
    conversation, bot, correction = corrected
    turn = ask(bot, conversation, "Can you deliver my order on a Saturday or Sunday?")
    assert turn.text == f"{ANSWER} [1]"
    assert turn.citations[0]["title"] == "From the support team"
    assert turn.citations[0]["correction_id"] == correction.pk
    trace = _message(turn).trace
    first = trace.retrieval["verdicts"][0]
    assert first["kept"] is True and first["signals"]["correction_id"] == correction.pk
    assert first["signals"]["similarity"] >= 0.65 and "support team" in first["reason"]


def test_an_unrelated_question_is_not_answered_from_the_correction(corrected):
    conversation, bot, _correction = corrected
    turn = ask(bot, conversation, "How do I request a refund?")
    assert "refund within 30 days" in turn.text
    assert all("correction_id" not in c for c in turn.citations)


def test_each_answer_from_a_correction_counts_one_use(corrected, world):
    conversation, bot, correction = corrected
    ask(bot, conversation, "Do you deliver on weekends?")
    ask(bot, conversation, "weekend delivery?")
    ask(bot, conversation, "Where is your office?")
    with tenant_context(world.tenant_a):
        assert Correction.objects.get(pk=correction.pk).uses == 2


def test_a_disabled_or_deleted_correction_stops_matching(corrected, world):
    conversation, bot, correction = corrected
    with tenant_context(world.tenant_a):
        correction_set_enabled(correction=correction, enabled=False)
    bot.refresh_from_db()
    assert bot.has_corrections is False
    assert ANSWER not in ask(bot, conversation, "Do you deliver on weekends?").text
    with tenant_context(world.tenant_a):
        correction_set_enabled(correction=correction, enabled=True)
        bot.refresh_from_db()
        assert ANSWER in ask(bot, conversation, "Do you deliver on weekends?").text
        correction_delete(correction=correction)
    bot.refresh_from_db()
    turn = ask(bot, conversation, "Do you deliver on weekends?")
    assert ANSWER not in turn.text and all("correction_id" not in c for c in turn.citations)


def test_an_edited_correction_answers_with_its_latest_version(corrected, world):
    conversation, bot, correction = corrected
    with tenant_context(world.tenant_a):
        edited = correction_update(
            correction=correction, question="Do you deliver on weekends?", answer="Yes, on Saturdays and Sundays."
        )
        assert edited.version == 2
        assert list(edited.versions.values_list("number", "answer")) == [
            (2, "Yes, on Saturdays and Sundays."),
            (1, ANSWER),
        ]
    assert ask(bot, conversation, "Do you deliver on the weekend?").text == "Yes, on Saturdays and Sundays. [1]"


def test_with_a_model_the_correction_is_the_first_source_labelled_from_the_support_team(corrected, fake_openai):
    conversation, bot, correction = corrected
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="We deliver on Saturday mornings [1]."))
    turn = ask(bot, conversation, "Is delivery possible at the weekend?")
    assert turn.text == "We deliver on Saturday mornings [1]."
    system = fake_openai.requests[0].body["messages"][0]["content"]
    first_source = system.split("<<<SOURCE 1:")[1].split("<<<END SOURCE 1>>>")[0]
    assert first_source.startswith(" From the support team>>>") and ANSWER in first_source
    assert turn.citations[0]["correction_id"] == correction.pk


def test_the_trace_inspector_shows_the_matched_correction_and_its_similarity(corrected, world):
    conversation, bot, correction = corrected
    turn = ask(bot, conversation, "Do you deliver on weekends?")
    client = world.client_for(world.alice)
    page = client.get(reverse("message_trace", args=["acme", conversation.pk, turn.start.assistant_message_id]))
    body = page.content.decode()
    assert f"correction {correction.pk}, similarity 1.00 to its question" in body
    assert "From the support team, correction" in body
    assert reverse("message_correct", args=["acme", conversation.pk, turn.start.assistant_message_id]) in body


def test_a_correction_written_while_a_widget_holds_its_bot_row_applies_to_the_next_turn(world, in_tenant_a):
    """A widget socket keeps its Bot object for the whole connection; the turn reads whether the
    bot has corrections from its turn configuration, which a new correction refreshes."""
    from conversations.pipeline.config import turn_config
    from tests.bots.factories import BotFactory

    bot = BotFactory(tenant=world.tenant_a)
    held = Bot.objects.get(pk=bot.pk)  # what a connected socket holds
    assert turn_config(bot=held).has_corrections is False
    correction_create(bot=bot, question="Do you ship to Norway?", answer="Yes, in 3 to 5 working days.")
    assert held.has_corrections is False  # the socket's row is stale...
    assert turn_config(bot=held).has_corrections is True  # ...the turn's configuration is not
