"""The `ask` management command: one question to a bot from the shell, answered through the pipeline."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from knowledge.ingestion import document_ingest
from knowledge.models import KnowledgeBase
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tests.bots.factories import BotFactory


@pytest.fixture
def demo_with_docs(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with tenant_context(world.tenant_a):
        kb = knowledge_base_create(tenant=world.tenant_a, name="Docs")
        document = document_create_from_text(
            knowledge_base=kb,
            title="Install guide",
            text="# Install\n\nRun make run to start the product. It prints the demo owner's password.\n",
        )
        document_ingest(document_id=document.pk)
        bot = BotFactory(tenant=world.tenant_a, name="helper")
        bot.knowledge_bases.add(KnowledgeBase.objects.get(pk=kb.pk))
    return bot


def test_ask_answers_offline_with_citations_and_a_json_trace_line(demo_with_docs, capsys, settings):
    settings.OPENAI_API_KEY = ""
    call_command("ask", "How do I start the product?", tenant="acme", bot="helper")
    captured = capsys.readouterr()
    out = captured.out
    assert "still being ingested" not in captured.err  # every document is ready
    assert "no language model is configured" in out and "make run" in out
    assert "Sources:" in out and "[1] Install guide" in out
    trace = json.loads(out.strip().splitlines()[-1])
    assert trace["status"] == "complete" and trace["model"] == "offline:extractive"
    assert trace["attempts"][0]["outcome"] == "ok" and trace["retrieved"]
    assert any(v["kept"] and v["relevant"] for v in trace["retrieval"]["verdicts"])


def test_ask_says_when_documents_of_the_bot_are_still_being_ingested(demo_with_docs, capsys, settings, world):
    settings.OPENAI_API_KEY = ""
    with tenant_context(world.tenant_a):
        kb = demo_with_docs.knowledge_bases.get()
        document_create_from_text(knowledge_base=kb, title="Pricing", text="# Pricing\n\nPlans start at 10 EUR.\n")
    with tenant_context(world.tenant_b):  # another tenant's unfinished document is not counted
        other = knowledge_base_create(tenant=world.tenant_b, name="Bravo docs")
        document_create_from_text(knowledge_base=other, title="Bravo", text="# Bravo\n\nNot acme's.\n")
    call_command("ask", "How do I start the product?", tenant="acme", bot="helper")
    captured = capsys.readouterr()
    assert "Note: 1 document(s) of this bot's knowledge bases are still being ingested" in captured.err
    assert "[1] Install guide" in captured.out  # the ready document still answers


def test_ask_refuses_unknown_workspaces_bots_and_bad_input(world):
    BotFactory(tenant=world.tenant_b, name="bravo-bot")
    with pytest.raises(CommandError, match="No workspace"):
        call_command("ask", "Hi", tenant="nope", bot="x")
    with pytest.raises(CommandError, match="No bot"):
        call_command("ask", "Hi", tenant="acme", bot="bravo-bot")
    BotFactory(tenant=world.tenant_a, name="a-bot")
    with pytest.raises(CommandError, match="message_empty"):
        call_command("ask", "   ", tenant="acme", bot="a-bot")
