"""chunk_search: hybrid retrieval through the real pipeline, restricted to one tenant."""

from __future__ import annotations

import math
import random

import pytest
from django.db import connection

from knowledge import retrieval
from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document
from knowledge.retrieval import SearchScope
from knowledge.selectors import chunk_search
from knowledge.services import document_create_from_text
from tenants.context import tenant_context
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory

HANDBOOK = """# Handbook

## Refunds
Customers can request a refund within 30 days of purchase by emailing billing support.
Refunds are paid back to the original card in five business days.

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""


def ingest_text(tenant, kb, title, text):
    with tenant_context(tenant):
        document = document_create_from_text(knowledge_base=kb, title=title, text=text)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
    return document


@pytest.fixture
def handbook_a(world, kb_a, media):
    return ingest_text(world.tenant_a, kb_a, "Handbook", HANDBOOK)


def test_a_question_finds_the_passage_that_answers_it_first(world, kb_a, handbook_a):
    assert handbook_a.status == Document.Status.READY
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="how do I reset my password?")
    assert hits, "expected at least one passage"
    assert "Forgot password" in hits[0].text
    assert hits[0].document_title == "Handbook"
    assert hits[0].heading_path[-1] == "Passwords"
    assert hits[0].snippet and hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_another_tenants_knowledge_base_ids_return_nothing(world, kb_a, kb_b, handbook_a, media):
    ingest_text(world.tenant_b, kb_b, "Secret", "Bravo's password reset procedure is confidential.")
    with tenant_context(world.tenant_a):
        only_b = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_b.pk], query="password reset")
        both = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk, kb_b.pk], query="password reset")
    assert only_b == []
    assert both and {hit.knowledge_base_id for hit in both} == {kb_a.pk}


def test_a_search_made_while_another_tenant_is_in_context_returns_nothing(world, kb_a, handbook_a):
    with tenant_context(world.tenant_b):
        assert chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="password") == []


@pytest.mark.parametrize(
    "query", ["", "   ", "!!! ??? ***", "the and of", "a" * 5000, "'; DROP TABLE knowledge_chunk; --"]
)
def test_malformed_and_hostile_queries_are_answered_safely(world, kb_a, handbook_a, query):
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query=query, k=3)
    assert len(hits) <= 3
    assert Chunk.objects.unscoped().filter(document=handbook_a).exists()


def test_min_score_drops_passages_below_the_cosine_similarity_threshold(world, kb_a, handbook_a):
    with tenant_context(world.tenant_a):
        everything = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="reset my password", k=10)
        strict = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="reset my password", k=10, min_score=0.4
        )
        impossible = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="reset my password", min_score=0.999
        )
    assert len(everything) == handbook_a.chunk_count
    assert strict and len(strict) < len(everything) and all(hit.similarity >= 0.4 for hit in strict)
    assert impossible == []


def _unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(384)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


@pytest.fixture
def crowded_table(world):
    """60 small knowledge bases of tenant A, 10 chunks each, plus a tiny one with 3 chunks."""
    kbs = [KnowledgeBaseFactory(tenant=world.tenant_a) for _ in range(61)]
    rows = []
    for index, kb in enumerate(kbs):
        document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb)
        count = 3 if index == 0 else 10
        document.chunk_count = count
        document.save(update_fields=["chunk_count"])
        for position in range(count):
            rows.append(
                Chunk(
                    tenant=world.tenant_a,
                    knowledge_base=kb,
                    document=document,
                    document_version=1,
                    position=position,
                    text=f"synthetic passage {index}-{position}",
                    token_count=4,
                    embedding_model="all-MiniLM-L6-v2",
                    embedding_dim=384,
                    embedding=_unit(index * 100 + position),
                )
            )
    Chunk.objects.unscoped().bulk_create(rows)
    with connection.cursor() as cursor:
        # Run the deferred FK checks now: CREATE INDEX refuses tables with pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ANALYZE knowledge_chunk")
    return kbs


@pytest.mark.parametrize("exact_max", [100_000, 0], ids=["exact", "hnsw"])
def test_a_selective_filter_still_returns_min_k_available(world, crowded_table, settings, exact_max):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = exact_max
    tiny, small = crowded_table[0], crowded_table[1]
    with tenant_context(world.tenant_a):
        assert len(chunk_search(tenant=world.tenant_a, knowledge_base_ids=[tiny.pk], query="unrelated words", k=5)) == 3
        assert (
            len(chunk_search(tenant=world.tenant_a, knowledge_base_ids=[small.pk], query="unrelated words", k=5)) == 5
        )
        assert len(chunk_search(tenant=world.tenant_a, knowledge_base_ids=[small.pk], query="x", k=50)) == 10


def test_the_hnsw_and_exact_plans_agree_on_the_nearest_chunks(world, crowded_table):
    kb = crowded_table[5]
    scope = SearchScope(world.tenant_a.pk, [kb.pk], 384, 10)
    query = _unit(5 * 100 + 3)
    exact = retrieval.search.exact_candidates(scope, retrieval.vector_literal(query), 5)
    hnsw = retrieval.search.hnsw_candidates(scope, retrieval.vector_literal(query), 5)
    assert [row[0] for row in hnsw] == [row[0] for row in exact]


def test_only_the_published_version_of_a_document_is_searchable(world, kb_a, handbook_a):
    stale = Chunk.objects.unscoped().filter(document=handbook_a).first()
    Chunk.objects.unscoped().bulk_create(
        [
            Chunk(
                tenant=world.tenant_a,
                knowledge_base=kb_a,
                document=handbook_a,
                document_version=handbook_a.active_version + 1,
                position=0,
                text="A half-written newer version about passwords.",
                token_count=8,
                embedding_model=stale.embedding_model,
                embedding_dim=stale.embedding_dim,
                embedding=stale.embedding,
            )
        ]
    )
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="passwords", k=20)
    assert "half-written" not in " ".join(hit.text for hit in hits)
    assert len(hits) == handbook_a.chunk_count


def test_a_large_knowledge_base_gets_its_own_index_and_searches_through_it(world, crowded_table, settings):
    from knowledge.services import knowledge_base_index_ensure

    kb = crowded_table[7]
    assert knowledge_base_index_ensure(knowledge_base=kb) is False  # small: exact search, no index
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    assert knowledge_base_index_ensure(knowledge_base=kb) is True  # idempotent
    scope = SearchScope(world.tenant_a.pk, [kb.pk], 384, 10)
    query = _unit(7 * 100 + 2)
    rows, plan = retrieval.vector_candidates(scope, query, 5)
    exact = retrieval.search.exact_candidates(scope, retrieval.vector_literal(query), 5)
    assert plan == "kb-hnsw"
    assert [row[0] for row in rows] == [row[0] for row in exact]


def test_a_large_knowledge_base_is_built_with_the_configured_graph_parameters(world, crowded_table, settings):
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    settings.KNOWLEDGE_HNSW_M, settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION = 12, 48
    kb = crowded_table[9]
    with connection.cursor() as cursor:
        cursor.execute("SHOW maintenance_work_mem")
        memory_before = cursor.fetchone()[0]
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [retrieval.kb_index_name(kb.pk, 384)])
        definition = cursor.fetchone()[0]
        cursor.execute("SHOW maintenance_work_mem")
        memory_after = cursor.fetchone()[0]
    assert "m='12'" in definition and "ef_construction='48'" in definition
    assert f"knowledge_base_id = {kb.pk}" in definition
    assert memory_after == memory_before  # the build's memory is not left on the connection


@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_a_large_knowledge_base_through_its_own_index_returns_min_k_available_of_its_own_chunks(
    world, crowded_table, settings, k
):
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb, other = crowded_table[11], crowded_table[12]
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    with tenant_context(world.tenant_a):
        hits = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="synthetic passage", k=k, query_vector=_unit(7)
        )
        elsewhere = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="x", k=k, query_vector=_unit(7)
        )
    scope = SearchScope(world.tenant_a.pk, [kb.pk], 384, 10)
    assert retrieval.vector_candidates(scope, _unit(7), 20)[1].startswith("kb-hnsw")
    assert len(hits) == len(elsewhere) == min(k, 10)
    assert {hit.knowledge_base_id for hit in hits + elsewhere} == {kb.pk}
    assert other.pk not in {hit.knowledge_base_id for hit in hits}
    assert all(hit.document_title and hit.snippet for hit in hits)  # citation metadata


def test_the_partial_index_plan_keeps_the_min_score_threshold(world, crowded_table, settings):
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb = crowded_table[13]
    knowledge_base_index_ensure(knowledge_base=kb)
    target = _unit(13 * 100 + 4)  # exactly one chunk of this knowledge base
    with tenant_context(world.tenant_a):
        hits = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="q", k=5, min_score=0.99, query_vector=target
        )
    assert len(hits) == 1 and hits[0].similarity > 0.99


def test_a_given_query_vector_is_used_instead_of_embedding_the_query(world, kb_a, handbook_a):
    from knowledge.embeddings import get_embedder

    vector = get_embedder().embed_query("how do I reset my password?")
    with tenant_context(world.tenant_a):
        embedded = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="how do I reset my password?"
        )
        given = chunk_search(
            tenant=world.tenant_a,
            knowledge_base_ids=[kb_a.pk],
            query="how do I reset my password?",
            query_vector=vector,
        )
        # No word of this query is in the handbook: only the given vector can find the passage.
        vector_only = chunk_search(
            tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="zzqx", query_vector=vector
        )
    assert [hit.chunk_id for hit in given] == [hit.chunk_id for hit in embedded]
    assert "Forgot password" in vector_only[0].text


def test_hybrid_search_embeds_the_query_with_the_scope_model_when_no_vector_is_given(world, kb_a, handbook_a):
    from knowledge.embeddings import get_embedder

    available = retrieval.scope_available(tenant_id=world.tenant_a.pk, knowledge_base_ids=[kb_a.pk])
    scope = SearchScope(world.tenant_a.pk, [kb_a.pk], 384, available, "all-MiniLM-L6-v2")
    query = "where is the office?"
    embedded = retrieval.hybrid_search(scope, query=query, k=3, min_score=None).passages
    given = retrieval.hybrid_search(
        scope, query=query, query_vector=get_embedder().embed_query(query), k=3, min_score=None
    ).passages
    assert [p.chunk_id for p in embedded] == [p.chunk_id for p in given]
    assert "Lisbon" in embedded[0].text


@pytest.fixture
def worded_kb(world):
    """12 chunks: 3 hold both "harbour" and "lighthouse", 6 only "harbour", 3 neither."""
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb)
    texts = ["The harbour lighthouse guides ships."] * 3 + ["A quiet harbour town."] * 6 + ["Mountain trails."] * 3
    document.chunk_count = len(texts)
    document.save(update_fields=["chunk_count"])
    Chunk.objects.unscoped().bulk_create(
        [
            Chunk(
                tenant=world.tenant_a,
                knowledge_base=kb,
                document=document,
                document_version=1,
                position=position,
                text=text,
                token_count=5,
                embedding_model="all-MiniLM-L6-v2",
                embedding_dim=384,
                embedding=_unit(9000 + position),
            )
            for position, text in enumerate(texts)
        ]
    )
    return kb, Chunk.objects.unscoped().filter(knowledge_base=kb).order_by("position")


@pytest.mark.parametrize("cap", [200, 2], ids=["rank-all", "capped"])
def test_the_text_half_puts_chunks_with_every_word_first(world, worded_kb, settings, cap):
    settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES = cap
    kb, chunks = worded_kb
    both = {c.pk for c in chunks if "lighthouse" in c.text}
    scope = SearchScope(world.tenant_a.pk, [kb.pk], 384, 12)
    ids = retrieval.text_candidates(scope, "lighthouse harbour", 20)
    assert set(ids[:3]) == both
    assert len(ids) == len(set(ids)) == 9  # never fewer than n when n chunks match
    few = retrieval.text_candidates(scope, "lighthouse harbour", 4)
    assert set(few[:3]) == both and len(few) == 4
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="lighthouse harbour", k=12)
    assert len(hits) == 12 and {hit.knowledge_base_id for hit in hits} == {kb.pk}


def test_a_small_scope_is_searched_in_one_pass_with_the_ranks_each_half_gives_alone(world, worded_kb):
    """Up to KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES chunks, one scan computes both halves: each
    passage's ranks and similarity are those the vector and full-text halves give on their own."""
    kb, _chunks = worded_kb
    scope = SearchScope(world.tenant_a.pk, [kb.pk], 384, 12)
    vector, n = _unit(9003), 48  # hybrid_search asks each half for max(4k, 20)
    distances = dict(retrieval.vector_candidates(scope, vector, n)[0])
    vector_ids = list(distances)
    text_ids = retrieval.text_candidates(scope, "lighthouse harbour", n)
    result = retrieval.hybrid_search(scope, query="lighthouse harbour", query_vector=vector, k=12, min_score=None)
    assert result.plan == "exact" and len(result.passages) == 12
    for passage in result.passages:
        assert passage.vector_rank == vector_ids.index(passage.chunk_id) + 1
        assert passage.text_rank == (text_ids.index(passage.chunk_id) + 1 if passage.chunk_id in text_ids else None)
        assert passage.similarity == pytest.approx(1 - distances[passage.chunk_id], abs=1e-6)
    assert result.knowledge_bases == [(kb.pk, "all-MiniLM-L6-v2", 12)]


def test_an_index_left_invalid_by_a_failed_build_is_rebuilt(world, crowded_table, settings):
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb = crowded_table[15]
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    name = retrieval.kb_index_name(kb.pk, 384)
    with connection.cursor() as cursor:
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind.
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [name])
    assert retrieval.kb_index_exists(kb.pk, 384) is False
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    assert retrieval.kb_index_exists(kb.pk, 384) is True


def test_a_search_is_one_statement_without_a_transaction_once_its_scope_is_known(world, kb_a, handbook_a):
    from django.test.utils import CaptureQueriesContext

    from knowledge.embeddings import get_embedder

    vector = get_embedder().embed_query("how do I reset my password?")
    statements = []
    for _ in range(2):
        with tenant_context(world.tenant_a), CaptureQueriesContext(connection) as captured:
            hits = chunk_search(
                tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="reset password", query_vector=vector
            )
        assert "Forgot password" in hits[0].text
        statements.append([query["sql"] for query in captured.captured_queries])
    # The first search of these knowledge bases in the process reads their models and sizes; the
    # next one plans with what that saw and checks it inside its one statement.
    assert [len(each) for each in statements] == [2, 1], statements
    assert not any("ISOLATION" in sql or "SAVEPOINT" in sql for each in statements for sql in each)


def test_a_search_planned_with_a_stale_scope_searches_again_with_the_current_one(world, kb_a, handbook_a, media):
    """The remembered scope is only a plan input: the statement reports the knowledge bases as it
    saw them, and a search planned with other sizes (or models) runs again with those."""
    from django.test.utils import CaptureQueriesContext

    with tenant_context(world.tenant_a):
        before = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="invoice currency", k=10)
    ingest_text(world.tenant_a, kb_a, "Billing", "Invoices are issued in euros; the invoice currency cannot change.")
    with tenant_context(world.tenant_a), CaptureQueriesContext(connection) as captured:
        after = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="invoice currency", k=10)
    assert len(captured.captured_queries) == 2  # planned with the old size, then with the one it saw
    assert len(after) == len(before) + 1 == handbook_a.chunk_count + 1
    assert after[0].document_title == "Billing"
    with tenant_context(world.tenant_a), CaptureQueriesContext(connection) as captured:
        assert chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="invoice currency", k=10)
    assert len(captured.captured_queries) == 1


def test_a_remembered_scope_is_per_tenant(world, kb_a, kb_b, handbook_a, media):
    """Tenant B's search of tenant A's knowledge base ids never uses what tenant A's search saw."""
    with tenant_context(world.tenant_a):
        assert chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="password")
    for _ in range(2):
        with tenant_context(world.tenant_b):
            assert chunk_search(tenant=world.tenant_b, knowledge_base_ids=[kb_a.pk], query="password") == []
            assert chunk_search(tenant=world.tenant_b, knowledge_base_ids=[kb_a.pk, kb_b.pk], query="password") == []


def test_the_index_plan_sets_ef_search_once_per_connection_outside_transactions(
    transactional_db, world, crowded_table, settings
):
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb = crowded_table[17]
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    try:
        _ef_search_once(world, kb)
    finally:
        retrieval.kb_indexes_drop(kb.pk, [384])  # an index outlives the flush of a transactional test


def _ef_search_once(world, kb) -> None:
    from django.test.utils import CaptureQueriesContext

    def search() -> list:
        with tenant_context(world.tenant_a):
            return chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="q", query_vector=_unit(1702))

    first = search()
    with CaptureQueriesContext(connection) as captured:
        again = search()
    assert [hit.chunk_id for hit in again] == [hit.chunk_id for hit in first] and len(first) == 5
    assert len(captured.captured_queries) == 1  # the value is on the connection already, the scope remembered
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.ef_search")
        assert int(cursor.fetchone()[0]) == retrieval.kb_ef_search(n=20, available=10)
    connection.close()  # a new connection has the default again: the search sets it
    with CaptureQueriesContext(connection) as captured:
        search()
    assert sum("hnsw.ef_search" in query["sql"] or "set_config" in query["sql"] for query in captured) == 1


def test_inside_a_transaction_the_index_plan_sets_ef_search_every_time(world, crowded_table, settings):
    """A rollback would undo a session setting made inside the transaction, so none is assumed."""
    from django.test.utils import CaptureQueriesContext

    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb = crowded_table[18]
    knowledge_base_index_ensure(knowledge_base=kb)
    for _ in range(2):
        with tenant_context(world.tenant_a), CaptureQueriesContext(connection) as captured:
            hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="q", query_vector=_unit(3))
        assert len(hits) == 5
        assert sum("set_config" in query["sql"] for query in captured) == 1


def test_an_index_built_with_other_parameters_is_rebuilt_with_todays(world, crowded_table, settings):
    """What happens to existing indexes when KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION change (the
    defaults did: 16/128 to 32/200): ingestion sees the index is not current and queues ensure."""
    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    settings.KNOWLEDGE_HNSW_M, settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION = 8, 32
    kb = crowded_table[19]
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    assert retrieval.kb_index_options(kb.pk, 384) == {"m": "8", "ef_construction": "32"}
    settings.KNOWLEDGE_HNSW_M, settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION = 12, 48
    assert retrieval.kb_index_exists(kb.pk, 384) and not retrieval.kb_index_current(kb.pk, 384)
    assert knowledge_base_index_ensure(knowledge_base=kb) is True
    assert retrieval.kb_index_options(kb.pk, 384) == {"m": "12", "ef_construction": "48"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE %s", [f"%_kb{kb.pk}%"])
        assert cursor.fetchone()[0] == 1, "the old index is gone, the new one has its name"
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb.pk], query="q", k=5, query_vector=_unit(1903))
    assert len(hits) == 5 and hits[0].chunk_id == Chunk.objects.unscoped().get(knowledge_base=kb, position=3).pk


def test_only_one_worker_builds_a_knowledge_base_index_at_a_time(transactional_db, world, crowded_table, settings):
    """A second build would take the first one's half-built index for a failed build and drop it."""
    import threading

    from knowledge.services import knowledge_base_index_ensure

    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 5
    kb = crowded_table[21]
    held, release, results = threading.Event(), threading.Event(), []

    def other_worker() -> None:  # holds the build lock the way a worker mid-build does
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", [retrieval.indexes.BUILD_LOCK, kb.pk])
                held.set()
                release.wait(10)
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [retrieval.indexes.BUILD_LOCK, kb.pk])
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(10)
        results.append(knowledge_base_index_ensure(knowledge_base=kb))
        assert not retrieval.kb_index_exists(kb.pk, 384), "left to the worker holding the lock"
    finally:
        release.set()
        thread.join()
    try:
        assert results == [False]
        assert knowledge_base_index_ensure(knowledge_base=kb) is True
    finally:
        retrieval.kb_indexes_drop(kb.pk, [384])


@pytest.mark.django_db
def test_a_chunk_row_stays_whole_in_the_heap_so_a_search_reads_no_toast(world, kb_a, handbook_a):
    # pgvector's default (EXTERNAL) moved a 384-float vector out of a ~2.6 kB row, and TOAST's
    # ~2 kB threshold then moved the text and tsvector out: a search fetched them through the
    # TOAST index (an exact scan of 5,000 chunks took 5x the time).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'knowledge_chunk'::regclass AND attname = 'embedding'"
        )
        assert cursor.fetchone()[0] == "m"
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'knowledge_chunk'::regclass")
        assert "toast_tuple_target=4080" in cursor.fetchone()[0]
        # The handbook's chunks were just written: none of their values went to the TOAST table.
        cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE knowledge_base_id = %s", [kb_a.pk])
        assert cursor.fetchone()[0] > 0
        cursor.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'knowledge_chunk'::regclass")
        cursor.execute(f"SELECT count(*) FROM {cursor.fetchone()[0]}")
        assert cursor.fetchone()[0] == 0
