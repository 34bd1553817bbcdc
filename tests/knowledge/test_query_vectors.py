"""chunk_search with a query vector computed beforehand (the answer pipeline embeds the question
while it stores the messages)."""

from __future__ import annotations

import pytest

from knowledge.embeddings import embed_query_by_model
from knowledge.selectors import chunk_search
from tenants.context import tenant_context
from tests.knowledge.test_retrieval import HANDBOOK, ingest_text


@pytest.fixture
def handbook_a(world, kb_a, media):
    return ingest_text(world.tenant_a, kb_a, "Handbook", HANDBOOK)


def _search(world, kb, query, **kwargs):
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query=query, **kwargs)
    return [(h.chunk_id, round(h.score, 9), h.vector_rank, h.text_rank) for h in hits]


def test_a_precomputed_vector_finds_the_same_passages_as_embedding_in_place(world, kb_a, handbook_a):
    query = "How long do refunds take?"
    vectors = embed_query_by_model(query, [kb_a.embedding_model])
    assert _search(world, kb_a, query, query_vectors=vectors) == _search(world, kb_a, query)
    assert _search(world, kb_a, query)


def test_the_given_vector_is_the_one_searched_with(world, kb_a, handbook_a):
    # The office question's vector with the refunds question's words: the nearest chunk by vector
    # is the office one, so the search did not embed the text itself.
    office = embed_query_by_model("Where is the office and the coffee machine?", [kb_a.embedding_model])
    with tenant_context(world.tenant_a):
        hits = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="refund card", query_vectors=office
        )
    nearest = next(h for h in hits if h.vector_rank == 1)
    assert "Lisbon" in nearest.text


def test_a_vector_for_another_model_is_ignored(world, kb_a, handbook_a):
    query = "How do I reset my password?"
    other = {"text-embedding-3-small": [0.0] * 1536}
    assert _search(world, kb_a, query, query_vectors=other) == _search(world, kb_a, query)
