"""A real Celery worker re-indexes a knowledge base from the local model to OpenAI embeddings
(served by the fake OpenAI server, speaking the real embeddings wire format)."""

from __future__ import annotations

import pytest

from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.reindex import knowledge_base_reindex
from knowledge.selectors import chunk_search
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge.live import wait_for
from tests.support.servers import celery_worker

pytestmark = pytest.mark.integration

OPENAI = "text-embedding-3-small"
TEXTS = {
    "Refunds": "Refunds are paid back to the original card within five business days of the request.",
    "Passwords": "To reset your password, open the login page and click Forgot password to get an email link.",
    "Office": "Our office is in Lisbon, and the coffee machine is on the third floor next to the library.",
}


def test_a_worker_reembeds_every_document_and_search_switches_to_the_new_model(
    transactional_db, world, other_workers_paused, settings
):
    with FakeOpenAI() as fake:
        settings.KNOWLEDGE_OPENAI_BASE_URL, settings.KNOWLEDGE_OPENAI_API_KEY = fake.base_url, fake.api_key
        env = {"KNOWLEDGE_OPENAI_BASE_URL": fake.base_url, "KNOWLEDGE_OPENAI_API_KEY": fake.api_key}
        with celery_worker("reindex", **env) as worker:
            with tenant_context(world.tenant_a):
                kb = knowledge_base_create(tenant=world.tenant_a, name="Handbook")
                for title, text in TEXTS.items():
                    document_create_from_text(knowledge_base=kb, title=title, text=text)
            documents = Document.objects.unscoped().filter(knowledge_base=kb)

            def all_ready() -> bool:
                return all(d.status == "ready" for d in documents.all())

            wait_for(all_ready, 300, f"the first ingestion\n{worker.log()[-2000:]}")
            assert not fake.requests, "the local model needs no embedding service"
            with tenant_context(world.tenant_a):
                assert knowledge_base_reindex(knowledge_base=kb, embedding_model=OPENAI) == 3

            def swapped() -> bool:
                return KnowledgeBase.objects.unscoped().get(pk=kb.pk).embedding_model == OPENAI

            wait_for(swapped, 300, f"the re-index\n{worker.log()[-3000:]}")
    kb.refresh_from_db()
    assert (kb.reindex_to, kb.reindex_error) == ("", "")
    embedded = [text for r in fake.requests for text in r.body["input"]]
    assert sorted(embedded) == sorted(TEXTS.values()), "every document went through the worker to the new model"
    for document in documents.all():
        assert (document.status, document.progress, document.staged_version) == ("ready", 100, None)
        assert document.attempts == 1
    chunks = Chunk.objects.unscoped().filter(knowledge_base=kb)
    assert set(chunks.values_list("embedding_model", "embedding_dim")) == {(OPENAI, 1536)}
    assert chunks.count() == sum(d.chunk_count for d in documents.all()) == 3
    with FakeOpenAI() as fake, tenant_context(world.tenant_a):
        settings.KNOWLEDGE_OPENAI_BASE_URL = fake.base_url
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="password reset email link")
        assert [r.body["input"] for r in fake.requests] == [["password reset email link"]]
    assert hits[0].document_title == "Passwords"
