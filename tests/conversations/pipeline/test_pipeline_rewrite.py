"""Follow-up questions are rewritten into a standalone query before retrieval: by the chain's
cheapest model when there is one (the fake OpenAI server here), else by a heuristic that borrows
the previous question's key terms; the trace records the rewrite."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from bots.models import Bot
from bots.selectors import ProviderKey
from conversations.llm.base import ChatMessage
from conversations.models import Message
from conversations.pipeline.rewrite import may_be_follow_up, rewrite_heuristic, rewrite_query
from knowledge.ingestion import document_ingest
from knowledge.models import Document
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.conversations.factories import ConversationFactory
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain

RETURN_TALK = [
    ChatMessage("user", "Can I return a product I have already opened?"),
    ChatMessage("assistant", "Yes, opened products can be returned within 30 days [1]."),
]


def test_the_heuristic_borrows_the_previous_questions_key_terms_for_a_follow_up():
    rewrite = rewrite_heuristic("And how long does that take?", RETURN_TALK)
    assert rewrite.method == "heuristic"
    assert rewrite.rewritten == "return product already opened And how long does that take?"
    norway = rewrite_heuristic(
        "What about Norway?", [ChatMessage("user", "How much does shipping to Switzerland cost?")]
    )
    assert norway.rewritten == "shipping switzerland cost What about Norway?"


def test_the_heuristic_leaves_standalone_and_first_questions_as_asked():
    assert not may_be_follow_up("How do I reset my Acme Glow bulb?")
    for whole in ["Where is the office?", "How much is shipping?", "Is there a warranty?"]:
        assert not may_be_follow_up(whole), whole
    for leaning in ["And for Norway?", "The Buds?", "Does it work offline too?"]:
        assert may_be_follow_up(leaning), leaning
    standalone = rewrite_heuristic("How do I reset my Acme Glow bulb?", RETURN_TALK)
    assert (standalone.method, standalone.rewritten) == ("none", "How do I reset my Acme Glow bulb?")
    first = rewrite_heuristic("And how long does that take?", [])
    assert (first.method, first.rewritten) == ("none", "And how long does that take?")


def _rewrite(fake_openai, text, *, timeout=5.0):
    keys = {"openai": ProviderKey(api_key=fake_openai.api_key, base_url=fake_openai.base_url, source="platform")}
    entries = chain("offline:extractive", "openai:gpt-4o", "openai:gpt-4o-mini")
    return async_to_sync(rewrite_query)(text=text, window=RETURN_TALK, chain=entries, keys=keys, timeout=timeout)


def test_the_cheapest_model_in_the_chain_rewrites_a_follow_up_in_one_small_request(fake_openai):
    fake_openai.then(Behaviour(text='"How long does a refund take for an opened product?"\n'))
    rewrite = _rewrite(fake_openai, "And how long does that take?")
    assert (rewrite.method, rewrite.rewritten) == ("model", "How long does a refund take for an opened product?")
    assert rewrite.as_trace()["detail"] == "openai:gpt-4o-mini"
    [request] = fake_openai.requests
    assert request.body["model"] == "gpt-4o-mini"
    prompt = request.body["messages"][-1]["content"]
    assert "Can I return a product I have already opened?" in prompt and "And how long does that take?" in prompt


@pytest.mark.parametrize(("fault", "detail"), [("500", "model failed"), ("hang", "model timed out")])
def test_a_failing_model_falls_back_to_the_heuristic(fake_openai, fault, detail):
    fake_openai.then(Behaviour(fault=fault))
    rewrite = _rewrite(fake_openai, "And how long does that take?", timeout=1.0)
    assert rewrite.method == "heuristic" and rewrite.detail.startswith(detail)
    assert rewrite.rewritten == "return product already opened And how long does that take?"


@pytest.fixture
def demo_help_centre(db, settings, tmp_path, django_capture_on_commit_callbacks):
    """The demo tenant and bot, with Acme's help centre ingested for real (offline answerer)."""
    settings.VAR_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    with django_capture_on_commit_callbacks(execute=False):
        call_command("bootstrap_demo")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        for document_id in Document.objects.values_list("pk", flat=True):
            document_ingest(document_id=document_id)
        bot = Bot.objects.get(name="demo")
        conversation = ConversationFactory(tenant=tenant, bot=bot)
    return bot, conversation


def test_a_follow_up_in_a_real_conversation_retrieves_the_article_the_conversation_is_about(demo_help_centre):
    bot, conversation = demo_help_centre
    first = ask(bot, conversation, "How do I reset my Acme Glow bulb?")
    assert first.citations and first.citations[0]["title"] == "glow-quick-start.pdf"
    follow_up = ask(bot, conversation, "And how long does that take?")
    assert follow_up.citations and {c["title"] for c in follow_up.citations} == {"glow-quick-start.pdf"}
    trace = Message.objects.unscoped().select_related("trace").get(pk=follow_up.start.assistant_message_id).trace
    assert trace.retrieval["rewrite"] == {
        "original": "And how long does that take?",
        "rewritten": "reset acme glow bulb And how long does that take?",
        "method": "heuristic",
    }
