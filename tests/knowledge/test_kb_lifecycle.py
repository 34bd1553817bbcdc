"""Renaming and deleting knowledge bases, and deletions giving the quota back."""

from __future__ import annotations

import logging

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse

from billing.models import UsageCounter
from billing.quotas import QuotaExceeded, current_usage, effective_plan
from bots.services import bot_attach_knowledge_bases
from chatbot_saas.errors import AppError
from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.retrieval import kb_index_create, kb_index_exists
from knowledge.selectors import chunk_search
from knowledge.services import (
    document_create_from_text,
    document_delete,
    knowledge_base_create,
    knowledge_base_delete,
    knowledge_base_rename,
)
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory
from tests.fakes.fixtures import ask


def _add(kb: KnowledgeBase, title: str, text: str) -> Document:
    document = document_create_from_text(knowledge_base=kb, title=title, text=text)
    document_ingest(document_id=document.pk)
    document.refresh_from_db()
    return document


def _counter(tenant) -> UsageCounter | None:
    return UsageCounter.objects.unscoped().filter(tenant=tenant).first()


def test_a_knowledge_base_is_renamed_and_a_taken_name_is_refused(world, kb_a):
    with tenant_context(world.tenant_a):
        knowledge_base_create(tenant=world.tenant_a, name="Policies")
        renamed = knowledge_base_rename(knowledge_base=kb_a, name="  Support handbook ", description="For agents")
        with pytest.raises(AppError) as taken:
            knowledge_base_rename(knowledge_base=kb_a, name="Policies")
        with pytest.raises(AppError) as empty:
            knowledge_base_rename(knowledge_base=kb_a, name="  ")
    kb_a.refresh_from_db()
    assert (renamed.name, kb_a.name, kb_a.description) == ("Support handbook", "Support handbook", "For agents")
    assert (taken.value.code, empty.value.code) == ("kb_name_taken", "invalid_name")


def test_a_tenant_can_use_the_name_another_tenant_uses(world, kb_a, kb_b):
    with tenant_context(world.tenant_a):
        kb_a = knowledge_base_rename(knowledge_base=kb_a, name="Shared name")
    with tenant_context(world.tenant_b):
        kb_b = knowledge_base_rename(knowledge_base=kb_b, name="Shared name")
    assert kb_a.name == kb_b.name == "Shared name"


def test_deleting_a_knowledge_base_removes_documents_chunks_and_files_and_logs_it(
    world, kb_a, media, caplog, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        first = _add(kb_a, "Refunds", "Refunds are paid within five business days.")
        _add(kb_a, "Passwords", "Reset your password from the login page.")
        other = knowledge_base_create(tenant=world.tenant_a, name="Other")
        kept = _add(other, "Office", "The office is in Lisbon.")
    stored = first.stored_file
    assert default_storage.exists(stored)
    with (
        caplog.at_level(logging.INFO, logger="knowledge.audit"),
        django_capture_on_commit_callbacks(execute=True),
        tenant_context(world.tenant_a),
    ):
        removed = knowledge_base_delete(knowledge_base=kb_a, deleted_by=world.alice)
    assert removed == {"documents": 2, "chunks": 2, "bots": 0}
    assert not KnowledgeBase.objects.unscoped().filter(pk=kb_a.pk).exists()
    assert not Document.objects.unscoped().filter(knowledge_base_id=kb_a.pk).exists()
    assert not Chunk.objects.unscoped().filter(knowledge_base_id=kb_a.pk).exists()
    assert not default_storage.exists(stored)
    assert Chunk.objects.unscoped().filter(document=kept).count() == 1, "other knowledge bases are untouched"
    line = next(r.getMessage() for r in caplog.records if r.name == "knowledge.audit" and "deleted" in r.getMessage())
    assert f"kb={kb_a.pk}" in line and f"by={world.alice.pk}" in line and "documents=2" in line


def test_deleting_a_large_knowledge_base_drops_its_partial_hnsw_index(
    world, kb_a, media, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        _add(kb_a, "Refunds", "Refunds are paid within five business days.")
    with connection.cursor() as cursor:  # the test's transaction holds deferred FK checks
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    kb_index_create(kb_a.pk, 384)  # what knowledge_base_index_ensure does past the exact-search size
    assert kb_index_exists(kb_a.pk, 384)
    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.tenant_a):
        knowledge_base_delete(knowledge_base=kb_a)
    assert not kb_index_exists(kb_a.pk, 384)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE %s", [f"%_kb{kb_a.pk}"])
        assert cursor.fetchone()[0] == 0


def test_another_tenants_knowledge_base_cannot_be_deleted_or_renamed(world, kb_a, kb_b, media):
    with tenant_context(world.tenant_b):
        with pytest.raises(KnowledgeBase.DoesNotExist):
            knowledge_base_delete(knowledge_base=kb_a)
        with pytest.raises(KnowledgeBase.DoesNotExist):
            knowledge_base_rename(knowledge_base=kb_a, name="Stolen")
    kb_a.refresh_from_db()
    assert kb_a.name == "Handbook"


def test_bots_lose_a_deleted_knowledge_base_and_keep_answering_per_their_policy(world, kb_a, media):
    with tenant_context(world.tenant_a):
        _add(kb_a, "Refunds", "Customers can request a refund within 30 days of purchase.")
        strict = ConversationFactory(tenant=world.tenant_a, bot__name="Strict", bot__answer_policy="knowledge_only")
        general = ConversationFactory(tenant=world.tenant_a, bot__name="General", bot__answer_policy="general")
        for conversation in (strict, general):
            bot_attach_knowledge_bases(bot=conversation.bot, knowledge_base_ids=[kb_a.pk])
        assert "refund" in ask(strict.bot, strict, "How do I get a refund?").text.lower()
        removed = knowledge_base_delete(knowledge_base=kb_a)
        strict.bot.refresh_from_db()
        assert removed["bots"] == 2 and list(strict.bot.knowledge_bases.all()) == []
        strict_turn = ask(strict.bot, strict, "How do I get a refund?")
        general_turn = ask(general.bot, general, "How do I get a refund?")
    assert strict_turn.done and strict_turn.text == strict.bot.no_answer_text()
    assert general_turn.done and general_turn.citations == []


def test_deleting_a_document_gives_the_quota_back_so_a_tenant_at_its_limit_can_add_again(world, kb_a, media):
    plan = effective_plan(tenant=world.tenant_a)
    plan.max_documents = 2
    plan.max_storage_bytes = 100
    plan.save(update_fields=["max_documents", "max_storage_bytes"])
    with tenant_context(world.tenant_a):
        first = document_create_from_text(knowledge_base=kb_a, title="one", text="a" * 60)
        with pytest.raises(QuotaExceeded, match="bytes of knowledge storage"):
            document_create_from_text(knowledge_base=kb_a, title="two", text="b" * 60)
        second = document_create_from_text(knowledge_base=kb_a, title="two", text="b" * 30)
        with pytest.raises(QuotaExceeded, match="documents"):
            document_create_from_text(knowledge_base=kb_a, title="three", text="c")
        assert (_counter(world.tenant_a).documents, _counter(world.tenant_a).storage_bytes) == (2, 90)

        document_delete(document=first)
        assert current_usage(tenant=world.tenant_a, kind="documents") == 1
        assert current_usage(tenant=world.tenant_a, kind="storage_bytes") == 30
        assert (_counter(world.tenant_a).documents, _counter(world.tenant_a).storage_bytes) == (1, 30)
        document_create_from_text(knowledge_base=kb_a, title="three", text="c" * 70)
        document_delete(document=second)
        document_delete(document=second)  # a double click gives nothing back twice
    assert (_counter(world.tenant_a).documents, _counter(world.tenant_a).storage_bytes) == (1, 70)


def test_a_document_refused_on_arrival_gives_back_nothing_it_did_not_take(world, kb_a, media):
    with tenant_context(world.tenant_a):
        document_create_from_text(knowledge_base=kb_a, title="counted", text="x" * 10)
        refused = document_create_from_text(knowledge_base=kb_a, title="empty", text="   ")
        assert refused.status == "failed"
        document_delete(document=refused)
    counter = _counter(world.tenant_a)
    assert (counter.documents, counter.storage_bytes) == (1, 10)


def test_deleting_a_knowledge_base_gives_its_documents_quota_back(world, kb_a, media):
    plan = effective_plan(tenant=world.tenant_a)
    plan.max_documents = 2
    plan.save(update_fields=["max_documents"])
    with tenant_context(world.tenant_a):
        document_create_from_text(knowledge_base=kb_a, title="one", text="first")
        document_create_from_text(knowledge_base=kb_a, title="two", text="second")
        other = knowledge_base_create(tenant=world.tenant_a, name="Other")
        with pytest.raises(QuotaExceeded):
            document_create_from_text(knowledge_base=other, title="three", text="third")
        knowledge_base_delete(knowledge_base=kb_a)
        document_create_from_text(knowledge_base=other, title="three", text="third")
    assert _counter(world.tenant_a).documents == 1
    assert current_usage(tenant=world.tenant_a, kind="storage_bytes") == len("third")


# --- dashboard ---------------------------------------------------------------------------------


def test_an_admin_renames_a_knowledge_base_from_its_page(world, kb_a):
    client = world.client_for(world.alice)
    page = client.get(reverse("kb_detail", args=["acme", kb_a.pk])).content.decode()
    assert reverse("kb_rename", args=["acme", kb_a.pk]) in page and reverse("kb_delete", args=["acme", kb_a.pk]) in page
    response = client.post(reverse("kb_rename", args=["acme", kb_a.pk]), {"name": "FAQ", "description": ""})
    assert response.status_code == 302
    kb_a.refresh_from_db()
    assert kb_a.name == "FAQ"
    assert "Renamed to" in client.get(response.url).content.decode()


def test_deleting_from_the_dashboard_asks_for_the_name_first(world, kb_a, media):
    client = world.client_for(world.alice)
    with tenant_context(world.tenant_a):
        document_create_from_text(knowledge_base=kb_a, title="one", text="first")
        ConversationFactory(tenant=world.tenant_a, bot__name="Helpdesk").bot.knowledge_bases.add(kb_a)
    url = reverse("kb_delete", args=["acme", kb_a.pk])
    confirm = client.get(url).content.decode()
    assert "1 document(s)" in confirm and "Helpdesk" in confirm and "confirm_name" in confirm
    wrong = client.post(url, {"confirm_name": "handbook"})
    assert wrong.status_code == 400 and "does not match" in wrong.content.decode()
    assert KnowledgeBase.objects.unscoped().filter(pk=kb_a.pk).exists()
    response = client.post(url, {"confirm_name": "Handbook"})
    assert response.status_code == 302 and response.url == reverse("kb_list", args=["acme"])
    assert not KnowledgeBase.objects.unscoped().filter(pk=kb_a.pk).exists()
    assert "was deleted" in client.get(response.url).content.decode()


def test_the_dashboard_cannot_delete_or_rename_another_tenants_knowledge_base(world, kb_a):
    client = world.client_for(world.charlie)
    for name in ("kb_delete", "kb_rename", "kb_reindex", "kb_reindex_cancel"):
        response = client.post(reverse(name, args=["bravo", kb_a.pk]), {"confirm_name": "Handbook", "name": "X"})
        assert response.status_code == 404, name
    kb_a.refresh_from_db()
    assert kb_a.name == "Handbook"


def test_search_after_deleting_a_document_no_longer_finds_it(world, kb_a, media):
    with tenant_context(world.tenant_a):
        document = _add(kb_a, "Refunds", "Refunds are paid within five business days.")
        assert chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="refund")
        document_delete(document=document)
        assert chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="refund") == []
