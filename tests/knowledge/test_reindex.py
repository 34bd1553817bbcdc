"""Changing a knowledge base's embedding model: staged re-embedding, one swap, never a mix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import reverse

from chatbot_saas.errors import AppError
from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.reindex import knowledge_base_reindex, knowledge_base_reindex_cancel, knowledge_base_reindex_finish
from knowledge.selectors import chunk_search
from knowledge.services import document_create_from_text, document_delete, document_retry
from tenants.context import tenant_context
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI

REFUNDS = "Refunds are paid back to the original card within five business days of the request."
PASSWORDS = "To reset your password, open the login page and click Forgot password to get an email link."
OFFICE = "Our office is in Lisbon, and the coffee machine is on the third floor next to the library."
OPENAI = "text-embedding-3-small"


@pytest.fixture
def fake_embeddings(settings) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        settings.KNOWLEDGE_OPENAI_BASE_URL = server.base_url
        settings.KNOWLEDGE_OPENAI_API_KEY = server.api_key
        settings.KNOWLEDGE_OPENAI_MAX_RETRIES = 0
        yield server


@pytest.fixture
def handbook(world, kb_a, media) -> list[Document]:
    """Two ready documents embedded with the local model."""
    documents = []
    with tenant_context(world.tenant_a):
        for title, text in (("Refunds", REFUNDS), ("Passwords", PASSWORDS)):
            document = document_create_from_text(knowledge_base=kb_a, title=title, text=text)
            document_ingest(document_id=document.pk)
            document.refresh_from_db()
            documents.append(document)
    return documents


def visible_models(kb: KnowledgeBase) -> set[tuple[str, int]]:
    """(model, dimension) of the chunks retrieval can see: those of each document's active version."""
    chunks = Chunk.objects.unscoped().filter(knowledge_base=kb)
    visible = [c for c in chunks.select_related("document") if c.document_version == c.document.active_version]
    return {(c.embedding_model, c.embedding_dim) for c in visible}


def search(world, kb: KnowledgeBase, query: str) -> list[str]:
    with tenant_context(world.tenant_a):
        return [
            hit.document_title for hit in chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query=query)
        ]


def query_requests(fake: FakeOpenAI, query: str) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/embeddings") and r.body.get("input") == [query])


def tasks(callbacks: list) -> list:
    """The after-commit callbacks that queue work, without the answer path's cache upkeep
    (conversations.pipeline.config forgets a tenant's turn configuration when its rows change)."""
    return [c for c in callbacks if not getattr(c, "cache_upkeep", False)]


def test_search_stays_on_the_old_model_until_every_document_is_re_embedded_then_switches_at_once(
    world, kb_a, handbook, fake_embeddings, django_capture_on_commit_callbacks
):
    refunds, passwords = handbook
    with django_capture_on_commit_callbacks(execute=False) as queued, tenant_context(world.tenant_a):
        assert knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI) == 2
    assert len(tasks(queued)) == 1
    kb_a.refresh_from_db()
    assert (kb_a.embedding_model, kb_a.reindex_to) == ("all-MiniLM-L6-v2", OPENAI)
    assert set(Document.objects.unscoped().filter(knowledge_base=kb_a).values_list("status", flat=True)) == {"queued"}
    assert search(world, kb_a, "refund card") == ["Refunds", "Passwords"]

    with tenant_context(world.tenant_a):
        assert document_ingest(document_id=refunds.pk) == "ready"
    refunds.refresh_from_db()
    assert refunds.staged_version == refunds.version and refunds.active_version < refunds.version
    # Both models' chunks are in the table now, but only the old model's are visible.
    stored = set(Chunk.objects.unscoped().filter(knowledge_base=kb_a).values_list("embedding_model", flat=True))
    assert stored == {"all-MiniLM-L6-v2", OPENAI}
    assert visible_models(kb_a) == {("all-MiniLM-L6-v2", 384)}
    assert search(world, kb_a, "refund card") == ["Refunds", "Passwords"]
    assert query_requests(fake_embeddings, "refund card") == 0, "the query is embedded with the visible model"

    with tenant_context(world.tenant_a):
        assert document_ingest(document_id=passwords.pk) == "ready"
    kb_a.refresh_from_db()
    assert (kb_a.embedding_model, kb_a.reindex_to, kb_a.reindex_error) == (OPENAI, "", "")
    assert visible_models(kb_a) == {(OPENAI, 1536)}
    assert not Chunk.objects.unscoped().filter(knowledge_base=kb_a, embedding_dim=384).exists(), "old chunks deleted"
    for document in Document.objects.unscoped().filter(knowledge_base=kb_a):
        assert (document.status, document.staged_version, document.active_version) == ("ready", None, document.version)
        assert document.chunk_count == Chunk.objects.unscoped().filter(document=document).count() > 0
    assert search(world, kb_a, "refund card")[0] == "Refunds"
    assert query_requests(fake_embeddings, "refund card") == 1, "now the query goes to the OpenAI model"


def test_a_document_that_cannot_be_re_embedded_stalls_the_swap_until_it_is_retried(
    world, kb_a, handbook, fake_embeddings, django_capture_on_commit_callbacks
):
    refunds, passwords = handbook
    with django_capture_on_commit_callbacks(execute=False), tenant_context(world.tenant_a):
        knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI)
        document_ingest(document_id=refunds.pk)
        fake_embeddings.then(Behaviour(fault="bad_request"))
        assert document_ingest(document_id=passwords.pk) == "failed"
    kb_a.refresh_from_db()
    assert kb_a.reindex_to == OPENAI and "1 document(s) could not be re-embedded" in kb_a.reindex_error
    assert visible_models(kb_a) == {("all-MiniLM-L6-v2", 384)}
    assert search(world, kb_a, "password reset link")[0] == "Passwords", "the failed document is still searchable"

    with django_capture_on_commit_callbacks(execute=False), tenant_context(world.tenant_a):
        document_retry(document=passwords)
        document_ingest(document_id=passwords.pk)
    kb_a.refresh_from_db()
    assert (kb_a.embedding_model, kb_a.reindex_to) == (OPENAI, "")
    assert visible_models(kb_a) == {(OPENAI, 1536)}


def test_cancelling_a_reindex_keeps_the_old_model_and_reembeds_documents_added_meanwhile(
    world, kb_a, handbook, fake_embeddings, django_capture_on_commit_callbacks
):
    refunds, passwords = handbook
    with django_capture_on_commit_callbacks(execute=False), tenant_context(world.tenant_a):
        knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI)
        document_ingest(document_id=refunds.pk)
        office = document_create_from_text(knowledge_base=kb_a, title="Office", text=OFFICE)
        document_ingest(document_id=office.pk)
        office.refresh_from_db()
        assert office.active_version is None and office.staged_version is not None, "staged, not yet visible"
        fake_embeddings.then(Behaviour(fault="bad_request"))
        document_ingest(document_id=passwords.pk)
    with django_capture_on_commit_callbacks(execute=False) as queued, tenant_context(world.tenant_a):
        knowledge_base_reindex_cancel(knowledge_base=kb_a)
    assert len(tasks(queued)) == 1, "the document that was only staged is queued again"
    kb_a.refresh_from_db()
    assert (kb_a.embedding_model, kb_a.reindex_to, kb_a.reindex_error) == ("all-MiniLM-L6-v2", "", "")
    assert not Chunk.objects.unscoped().filter(knowledge_base=kb_a, embedding_model=OPENAI).exists()
    passwords.refresh_from_db()
    office.refresh_from_db()
    assert (passwords.status, passwords.error_code) == ("ready", ""), "its old version is complete and visible"
    assert (office.status, office.staged_version) == ("queued", None)
    with tenant_context(world.tenant_a):
        document_ingest(document_id=office.pk)
    assert visible_models(kb_a) == {("all-MiniLM-L6-v2", 384)}
    assert search(world, kb_a, "coffee machine Lisbon")[0] == "Office"


def test_a_run_that_embedded_with_the_old_model_is_never_published_during_a_reindex(
    world, kb_a, handbook, fake_embeddings, django_capture_on_commit_callbacks
):
    """A worker that started before the re-index publishes after it: it must re-queue itself."""
    from knowledge import ingestion

    refunds, _passwords = handbook
    published = ingestion._publish

    def start_reindex_then_publish(document, version, source, count):
        KnowledgeBase.objects.unscoped().filter(pk=kb_a.pk).update(reindex_to=OPENAI)
        return published(document, version, source, count)

    with tenant_context(world.tenant_a):
        # As if re-synced with new content: queued, and not skipped as unchanged.
        Document.objects.filter(pk=refunds.pk).update(status="queued", content_hash="")
        ingestion._publish = start_reindex_then_publish
        try:
            with django_capture_on_commit_callbacks(execute=False) as queued:
                assert document_ingest(document_id=refunds.pk) == "queued"
        finally:
            ingestion._publish = published
    refunds.refresh_from_db()
    assert refunds.staged_version is None and len(queued) == 1
    assert set(Chunk.objects.unscoped().filter(document=refunds).values_list("document_version", flat=True)) == {
        refunds.active_version
    }


def test_a_reindex_is_refused_while_documents_are_processing_or_to_the_same_model(world, kb_a, handbook, media):
    with tenant_context(world.tenant_a):
        with pytest.raises(AppError) as same:
            knowledge_base_reindex(knowledge_base=kb_a, embedding_model="all-MiniLM-L6-v2")
        document_create_from_text(knowledge_base=kb_a, title="New", text="Still queued.")
        with pytest.raises(AppError) as busy:
            knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI)
    assert (same.value.code, busy.value.code) == ("same_embedding_model", "documents_in_progress")


def test_deleting_the_last_document_a_reindex_waits_for_completes_it(
    world, kb_a, handbook, fake_embeddings, django_capture_on_commit_callbacks
):
    refunds, passwords = handbook
    with django_capture_on_commit_callbacks(execute=False), tenant_context(world.tenant_a):
        knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI)
        document_ingest(document_id=refunds.pk)
        fake_embeddings.then(Behaviour(fault="bad_request"))
        document_ingest(document_id=passwords.pk)
        assert knowledge_base_reindex_finish(knowledge_base_id=kb_a.pk) == "stalled"
        document_delete(document=passwords)
        assert knowledge_base_reindex_finish(knowledge_base_id=kb_a.pk) == "swapped"
    assert visible_models(kb_a) == {(OPENAI, 1536)}


def test_an_empty_knowledge_base_switches_model_at_once(world, kb_a):
    with tenant_context(world.tenant_a):
        assert knowledge_base_reindex(knowledge_base=kb_a, embedding_model=OPENAI) == 0
    kb_a.refresh_from_db()
    assert (kb_a.embedding_model, kb_a.reindex_to) == (OPENAI, "")


def test_the_dashboard_starts_shows_and_cancels_a_reindex(world, kb_a, handbook, django_capture_on_commit_callbacks):
    client = world.client_for(world.alice)
    url = reverse("kb_reindex", args=["acme", kb_a.pk])
    page = client.get(url).content.decode()
    assert OPENAI in page and 'value="all-MiniLM-L6-v2"' not in page, "only other models are offered"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {"embedding_model": OPENAI})
    assert response.status_code == 302 and response.url == reverse("kb_detail", args=["acme", kb_a.pk])
    detail = client.get(response.url).content.decode()
    assert "Re-indexing with text-embedding-3-small" in detail and "0 of 2" in detail
    status = client.get(reverse("kb_status", args=["acme", kb_a.pk])).json()
    assert status["reindex"] == {"from": "all-MiniLM-L6-v2", "to": OPENAI, "done": 0, "total": 2, "error": None}
    again = client.post(url, {"embedding_model": OPENAI})
    assert again.status_code == 400 and "is under way: 0 of 2" in again.content.decode()
    response = client.post(reverse("kb_reindex_cancel", args=["acme", kb_a.pk]), follow=True)
    assert "Re-index cancelled" in response.content.decode()
    assert client.get(reverse("kb_status", args=["acme", kb_a.pk])).json()["reindex"] is None


def _knowledge_base_staged_for_swap(world):
    """A knowledge base re-indexing to OpenAI with both versions of one chunk written: (kb, the
    visible MiniLM chunk, the staged OpenAI chunk). The swap is left to the test."""
    from tests.knowledge.factories import ChunkFactory, DocumentFactory, KnowledgeBaseFactory

    kb = KnowledgeBaseFactory(tenant=world.tenant_a, reindex_to=OPENAI)
    document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, version=2, active_version=1, staged_version=2)
    old = ChunkFactory(tenant=world.tenant_a, document=document, document_version=1, text="Refunds take five days.")
    new = ChunkFactory(
        tenant=world.tenant_a,
        document=document,
        document_version=2,
        text="Refunds take five days.",
        embedding_model=OPENAI,
        embedding_dim=1536,
        embedding=[1.0] + [0.0] * 1535,
    )
    Document.objects.unscoped().filter(pk=document.pk).update(chunk_count=1, staged_chunk_count=1)
    return kb, old, new


def test_a_search_running_while_the_swap_commits_sees_one_model_throughout(
    transactional_db, world, monkeypatch, settings
):
    """The swap commits between the search reading the knowledge base's model and its search
    statement: the statement reads only chunks of the model the query vector was made with, sees
    the model changed, and the search starts again with the new model. Vectors of two dimensions
    are never compared (pgvector would raise), and no transaction is needed for it."""
    import threading

    from django.db import connection

    from knowledge.retrieval import search as retrieval  # where hybrid_search looks the embedder up

    kb, old, new = _knowledge_base_staged_for_swap(world)
    real_get_embedder = retrieval.get_embedder
    outcome: list[str] = []

    def swap_now() -> None:
        try:
            with tenant_context(world.tenant_a):
                outcome.append(knowledge_base_reindex_finish(knowledge_base_id=kb.pk))
        finally:
            connection.close()

    embedded_with: list[str] = []

    def get_embedder_then_swap(model_name):
        embedded_with.append(model_name)
        if not outcome:
            thread = threading.Thread(target=swap_now)
            thread.start()
            thread.join()
        return real_get_embedder(model_name)

    monkeypatch.setattr(retrieval, "get_embedder", get_embedder_then_swap)
    with FakeOpenAI() as fake, tenant_context(world.tenant_a):
        settings.KNOWLEDGE_OPENAI_BASE_URL, settings.KNOWLEDGE_OPENAI_API_KEY = fake.base_url, fake.api_key
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="refunds")
    assert outcome == ["swapped"]
    assert embedded_with == ["all-MiniLM-L6-v2", OPENAI], "read the model again after the swap, embedded again"
    assert [hit.chunk_id for hit in hits] == [new.pk], "the new model's chunk, compared with a vector of its model"
    assert not Chunk.objects.unscoped().filter(pk=old.pk).exists()
    monkeypatch.setattr(retrieval, "get_embedder", real_get_embedder)
    with FakeOpenAI() as fake, tenant_context(world.tenant_a):
        settings.KNOWLEDGE_OPENAI_BASE_URL, settings.KNOWLEDGE_OPENAI_API_KEY = fake.base_url, fake.api_key
        after = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="refunds")
    assert [hit.chunk_id for hit in after] == [new.pk]


def test_a_search_planned_with_the_model_a_swap_replaced_searches_again_with_the_new_one(world, fake_embeddings):
    """The scope a search remembers from the last one names the old model after a swap: the
    statement planned with it reads only the old model's chunks (none are visible any more, and a
    vector of the old dimension is never compared with the new ones), reports the new model, and
    the search runs again with the query embedded by the new model."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    kb, old, new = _knowledge_base_staged_for_swap(world)
    with tenant_context(world.tenant_a):
        assert [
            h.chunk_id for h in chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="refunds")
        ] == [old.pk]
        assert knowledge_base_reindex_finish(knowledge_base_id=kb.pk) == "swapped"
        with CaptureQueriesContext(connection) as captured:
            hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="refunds")
    assert [hit.chunk_id for hit in hits] == [new.pk]
    assert len(captured.captured_queries) == 2  # planned with the old model, then with the new one
    assert query_requests(fake_embeddings, "refunds") == 1
