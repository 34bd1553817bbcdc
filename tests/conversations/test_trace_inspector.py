"""The trace inspector (one answer's passages, prompt, attempts and time per stage), the
conversation list's filter for the tenant's own test traffic, and the playground page."""

from __future__ import annotations

from html import escape

import pytest
from django.urls import reverse

from conversations.models import Message
from tests.bots.factories import BotFactory, PromptVersionFactory
from tests.conversations.factories import ConversationFactory, MessageFactory, TraceFactory, conversation_with_document
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain, fake_anthropic  # noqa: F401

HANDBOOK = """# Handbook

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""


@pytest.fixture
def failed_over_answer(world, settings, tmp_path, fake_openai, fake_anthropic):  # noqa: F811
    """A real turn on a bot with a handbook whose primary model fails and whose fallback answers."""
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(world.tenant_a, text=HANDBOOK, name="Support")
    bot = conversation.bot
    bot.model_chain = chain("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    bot.save()
    fake_openai.then(Behaviour(fault="500"))
    fake_anthropic.then(Behaviour(text='Click "Forgot password" on the login page [1].'))
    turn = ask(bot, conversation, "How do I reset my password?")
    return Message.objects.unscoped().get(pk=turn.start.assistant_message_id)


def trace_url(message: Message, slug: str = "acme") -> str:
    return reverse("message_trace", args=[slug, message.conversation_id, message.pk])


def test_the_trace_shows_passages_with_scores_the_labelled_prompt_both_attempts_and_time_per_stage(
    world, failed_over_answer
):
    response = world.client_for(world.bob).get(trace_url(failed_over_answer))
    assert response.status_code == 200
    page = response.content.decode()
    # Passages: the gate's verdict with its reason, the three scores, the text, and use in the answer.
    assert "Vector similarity" in page and "Keyword rank" in page and "Fused score" in page
    verdict = failed_over_answer.trace.retrieval["verdicts"][0]
    assert verdict["kept"] and escape(verdict["reason"]) in page and str(verdict["signals"]["similarity"]) in page
    assert "Forgot password" in page and "Cited" in page
    assert "How do I reset my password?" in page
    # The prompt as sent, in labelled parts.
    for label in ("System prompt", "Rules", "Sources", "Question"):
        assert f"<summary>{label}</summary>" in page
    # Both attempts: the failure in plain words, then the fallback's success.
    attempts = page[page.index("<h2>Provider attempts</h2>") :]
    assert (
        attempts.index("openai:gpt-4o-mini")
        < attempts.index("openai failed (HTTP 500).")
        < attempts.index("anthropic:claude-haiku-4-5")
        < attempts.index("Answered")
    )
    # Tokens, cost, and the waterfall with its values as text.
    assert f"{failed_over_answer.tokens_in} in, {failed_over_answer.tokens_out} out" in page
    for stage in ("Retrieve", "Assemble the prompt", "Generate", "Settle (store the answer)"):
        assert stage in page
    assert '<svg class="waterfall"' in page and "First token shown" in page


def test_htmx_gets_the_inspector_alone_and_a_browser_gets_a_page(world):
    answer = TraceFactory(tenant=world.tenant_a, message__content="Hi.").message
    bob = world.client_for(world.bob)
    partial = bob.get(trace_url(answer), headers={"HX-Request": "true"})
    page = bob.get(trace_url(answer))
    assert partial.status_code == page.status_code == 200
    assert b"<html" not in partial.content and b'class="trace"' in partial.content
    assert b"<html" in page.content and b"Trace of answer" in page.content
    assert b"traced before stage timings were recorded" in page.content


def test_it_checks_ownership(world):
    answer = TraceFactory(tenant=world.tenant_a).message
    charlie = world.client_for(world.charlie)
    assert charlie.get(trace_url(answer, "bravo")).status_code == 404
    assert charlie.get(trace_url(answer, "acme")).status_code == 404
    # The right tenant, but the message under another of its conversations: no trace either.
    other = ConversationFactory(tenant=world.tenant_a)
    bob = world.client_for(world.bob)
    assert bob.get(reverse("message_trace", args=["acme", other.pk, answer.pk])).status_code == 404


def test_the_conversation_page_links_each_answer_to_its_trace(world):
    answer = TraceFactory(tenant=world.tenant_a).message
    response = world.client_for(world.bob).get(reverse("conversation_detail", args=["acme", answer.conversation_id]))
    assert trace_url(answer).encode() in response.content


def test_the_conversation_list_leaves_out_playground_and_evaluation_unless_asked(world, django_assert_num_queries):
    for channel, visitor in (("widget", "visitor-w"), ("api", "visitor-a"), ("playground", "member:1"), ("eval", "ev")):
        conversation = ConversationFactory(tenant=world.tenant_a, channel=channel, visitor_id=visitor)
        MessageFactory.create_batch(2, tenant=world.tenant_a, conversation=conversation)
    bob = world.client_for(world.bob)
    bob.get(reverse("conversation_list", args=["acme"]))  # the session and membership are cached after this
    # The session, the user, the membership, the conversations with their bots and counts, the
    # explorer's bot choices, then the sidebar's workspaces and the billing banner's subscription:
    # none per row.
    with django_assert_num_queries(7):
        visitors = bob.get(reverse("conversation_list", args=["acme"]))
    everything = bob.get(reverse("conversation_list", args=["acme"]) + "?show=all")
    assert {c.channel for c in visitors.context["conversations"]} == {"widget", "api"}
    assert {c.channel for c in everything.context["conversations"]} == {"widget", "api", "playground", "eval"}
    assert all(c.message_count == 2 for c in everything.context["conversations"])
    assert b"Include playground and evaluation" in visitors.content


def test_the_playground_offers_the_workspaces_bots_and_their_versions_with_the_published_one_chosen(
    world, django_assert_num_queries
):
    support = BotFactory(tenant=world.tenant_a, name="Support")
    BotFactory(tenant=world.tenant_a, name="Sales")
    theirs = BotFactory(tenant=world.tenant_b, name="Bravo bot")
    PromptVersionFactory(tenant=world.tenant_a, bot=support, number=2, text="A draft.")
    bob = world.client_for(world.bob)
    bob.get(reverse("playground", args=["acme"]))  # the session remembers the workspace after this
    # The session, the user, the membership, the bots, the chosen bot's versions, then the sidebar's
    # workspaces and the billing banner's subscription.
    with django_assert_num_queries(7):
        response = bob.get(reverse("playground", args=["acme"]) + f"?bot={support.pk}")
    choice = response.context["choice"]
    assert [b.name for b in choice.bots] == ["Sales", "Support"]
    assert choice.bot == support and choice.version.number == 1 and choice.version.is_published
    assert [v.number for v in choice.versions] == [2, 1]
    draft = bob.get(reverse("playground", args=["acme"]) + f"?bot={support.pk}&version=2")
    assert draft.context["choice"].version.number == 2 and b"draft version 2" in draft.content
    # Another workspace's bot id, or nonsense, falls back to this workspace's first bot.
    for wrong in (str(theirs.pk), "nonsense"):
        fallback = bob.get(reverse("playground", args=["acme"]) + f"?bot={wrong}").context["choice"]
        assert fallback.bot.name == "Sales"
    assert b'data-socket-path="/ws/playground/acme/"' in response.content


def test_a_workspace_without_bots_sees_how_to_create_one(world):
    response = world.client_for(world.bob).get(reverse("playground", args=["acme"]))
    assert response.status_code == 200 and b"No bots yet" in response.content


def test_the_sidebar_links_to_the_playground(world):
    response = world.client_for(world.bob).get(reverse("conversation_list", args=["acme"]))
    assert reverse("playground", args=["acme"]).encode() in response.content


def test_the_prompt_is_cut_into_labelled_parts_with_the_memory_and_the_question():
    from conversations.llm.base import ChatMessage
    from conversations.pipeline.context import assemble
    from conversations.trace_selectors import prompt_parts

    context = assemble(
        prompt_text="You are Acme's assistant.",
        policy="knowledge_only",
        canary="cnry-0",
        passages=[],
        summary="The visitor asked about refunds.",
        facts={"plan": "Pro"},
        window=[ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!")],
        user_message="And invoices?",
        provider="openai",
        model="gpt-4o-mini",
        max_answer_tokens=512,
    )
    parts = prompt_parts(context.as_trace())
    assert [label for label, _text in parts] == [
        "System prompt",
        "Rules",
        "Sources",
        "Memory: what the visitor told us",
        "Memory: summary of the earlier conversation",
        "Memory: earlier user turn",
        "Memory: earlier assistant turn",
        "Question",
    ]
    assert parts[0][1] == "You are Acme's assistant." and parts[-1][1] == "And invoices?"
    assert "Pro" in parts[3][1] and "refunds" in parts[4][1]
