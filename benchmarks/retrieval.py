"""Filtered retrieval latency and recall@5 on the real chunk table, in two shapes.

- (a) N chunks over N/100 knowledge bases (N = 100k by default; --size 1m for 1M; --size small 10k);
- (b) the same table plus one knowledge base of N/2 chunks, which gets its own partial HNSW index
  exactly as production builds it (knowledge_base_index_ensure).
Each row times `chunk_search` end to end with the query vector given (vector + full-text halves,
fusion, citation details), then each half alone; query embedding is a row of its own. Each row's
searches run once uncounted first (warm-up: pages in shared_buffers, scopes remembered as in a
running process), then timed. The
strategy column says which plan served the queries (exact / kb-hnsw with its ef_search).
Chunk texts are real paragraphs and queries are 3-7 real words, so the full-text half is realistic.
Vectors are real-like: ~1,500 paragraphs of real text are embedded once with the local model,
and chunk and query vectors are sampled from a Gaussian with those embeddings' mean and
covariance (random isotropic vectors are a worst case no index handles), then normalised.
Everything is cached under var/bench/, and the table lives in its own database
(`chatbot_bench`), so `make run`'s data is untouched and re-runs skip the load.
Recall@5 compares the vector half's top 5 to the exact top 5 in the same knowledge base.
`--strategies` adds the comparison of index types for the big knowledge base that chose the
production one (IVFFlat at several lists/probes, HNSW at several m/ef_construction; vector half
only, bare index query): each alternative is built, swept and dropped, so it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, reset_queries
from django.test.utils import CaptureQueriesContext

from .common import percentile
from .corpus import real_paragraphs

TITLE = "Knowledge retrieval: filtered vector search latency and recall@5"
BENCH_DB = "chatbot_bench"
SIZES = {"small": 10_000, "100k": 100_000, "1m": 1_000_000}
K = 5


def cache_dir() -> Path:
    path = Path(settings.VAR_DIR) / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def real_embedding_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of real embeddings (computed once, cached)."""
    path = cache_dir() / "minilm-real-embeddings.npy"
    if not path.exists():
        from knowledge.embeddings import get_embedder

        paragraphs = real_paragraphs(1500)
        vectors = np.asarray(get_embedder().embed_documents(paragraphs), dtype=np.float32)
        np.save(path, vectors)
    real = np.load(path)
    return real.mean(axis=0), np.cov(real, rowvar=False)


def sample_vectors(count: int, seed: int) -> np.ndarray:
    path = cache_dir() / f"sampled-{count}-{seed}.npy"
    if path.exists():
        return np.load(path)
    mean, cov = real_embedding_stats()
    rng = np.random.default_rng(seed)
    vectors = rng.multivariate_normal(mean, cov, size=count, method="cholesky").astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(path, vectors)
    return vectors


def use_bench_database(size: str) -> None:
    """One database per size, so the 1M-row table does not slow the 100k measurements."""
    name = BENCH_DB if size == "100k" else f"{BENCH_DB}_{size}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {name}")
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = name
    call_command("migrate", "--noinput", "-v", "0")


def _tenant() -> Any:
    from billing.services import subscription_start_free
    from tenants.models import Tenant

    tenant, created = Tenant.objects.get_or_create(slug="bench-retrieval", defaults={"name": "Bench retrieval"})
    if created:
        subscription_start_free(tenant=tenant)
    return tenant


def texts() -> list[str]:
    """Real paragraphs: chunk texts cycle through them, so full-text search has real work to do."""
    return real_paragraphs(1500)


def sample_queries(count: int, seed: int) -> list[str]:
    """Short real-word queries (3-7 words from one paragraph), like a user's question."""
    rng = random.Random(seed)
    paragraphs = texts()
    queries = []
    while len(queries) < count:
        words = [w for w in paragraphs[rng.randrange(len(paragraphs))].split() if w.isalpha() and len(w) > 2]
        if len(words) >= 7:
            start = rng.randrange(len(words) - 6)
            queries.append(" ".join(words[start : start + rng.randint(3, 7)]))
    return queries


def load_kbs(tenant: Any, *, label: str, kb_count: int, per_kb: int, seed: int) -> list[int]:
    """Create kb_count knowledge bases of per_kb chunks each (idempotent by name prefix)."""
    from knowledge.models import Chunk, Document, KnowledgeBase

    existing = list(
        KnowledgeBase.objects.unscoped()
        .filter(tenant=tenant, name__startswith=f"{label}-")
        .values_list("pk", flat=True)
    )
    if len(existing) == kb_count and Chunk.objects.unscoped().filter(knowledge_base_id__in=existing).count() == (
        kb_count * per_kb
    ):
        return existing
    KnowledgeBase.objects.unscoped().filter(tenant=tenant, name__startswith=f"{label}-").delete()
    vectors = sample_vectors(kb_count * per_kb, seed)
    paragraphs = texts()
    kbs = KnowledgeBase.objects.unscoped().bulk_create(
        [KnowledgeBase(tenant=tenant, name=f"{label}-{i:05d}") for i in range(kb_count)]
    )
    docs = Document.objects.unscoped().bulk_create(
        [
            Document(
                tenant=tenant,
                knowledge_base=kb,
                source="text",
                title=kb.name,
                status="ready",
                version=1,
                active_version=1,
                chunk_count=per_kb,
            )
            for kb in kbs
        ]
    )
    print(f"   loading {len(vectors):,} chunks into {kb_count} knowledge bases ({label})", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The shared per-dimension index serves multi-KB searches only, which these shapes do not
        # make; maintaining it during COPY (and rebuilding 1M rows) would dominate set-up time.
        cursor.execute("DROP INDEX IF EXISTS kb_chunk_hnsw_384")
        raw = cursor.cursor  # psycopg 3 cursor, for COPY in text format
        columns = (
            "tenant_id, knowledge_base_id, document_id, document_version, position, text, token_count, "
            "heading_path, source_url, embedding_model, embedding_dim, embedding"
        )
        with raw.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN") as copy:
            index = 0
            for kb, doc in zip(kbs, docs, strict=True):
                for position in range(per_kb):
                    vector = "[" + ",".join(f"{x:.6f}" for x in vectors[index]) + "]"
                    text = paragraphs[(index * 7 + seed) % len(paragraphs)]
                    copy.write_row(
                        (tenant.pk, kb.pk, doc.pk, 1, position, text, 200, "[]", "", "all-MiniLM-L6-v2", 384, vector)
                    )
                    index += 1
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("ANALYZE knowledge_document")
    print(f"   loaded in {time.perf_counter() - started:.0f}s", flush=True)
    return [kb.pk for kb in kbs]


def ensure_kb_index(kb_id: int) -> float:
    """The big knowledge base's partial HNSW index, built the way production builds it; seconds."""
    from knowledge.models import KnowledgeBase
    from knowledge.retrieval import kb_index_current
    from knowledge.services import knowledge_base_index_ensure

    if kb_index_current(kb_id, 384):  # built with today's settings (else ensure rebuilds it)
        return 0.0
    started = time.perf_counter()
    knowledge_base_index_ensure(knowledge_base=KnowledgeBase.objects.unscoped().get(pk=kb_id))
    return time.perf_counter() - started


def _row(shape: str, strategy: str, **values: Any) -> dict[str, Any]:
    row = {
        "shape": shape,
        "strategy": strategy,
        "kb chunks": "",
        "queries": "",
        "search p50 ms": "",
        "search p99 ms": "",
        "SQL per search": "",
        "vector p50 ms": "",
        "text p50 ms": "",
        f"recall@{K}": "",
        "short results": "",
    }
    row.update(values)
    return row


_KB_VECTORS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def exact_top(scope: Any, vector: list[float], *, seed: int | None) -> set[int]:
    """The exact top K of one knowledge base. In Postgres that is a full scan (6+ s at 500k chunks),
    so for the big knowledge base (loaded from sample_vectors(count, seed) in position order) numpy
    picks 50 candidates and Postgres re-ranks them exactly."""
    from knowledge import retrieval

    if seed is None or scope.available <= settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS:
        return {row[0] for row in retrieval._exact(scope, retrieval.vector_literal(vector), K)}
    kb_id = scope.knowledge_base_ids[0]
    if kb_id not in _KB_VECTORS:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM knowledge_chunk WHERE knowledge_base_id = %s ORDER BY position", [kb_id])
            ids = np.array([row[0] for row in cursor.fetchall()])
        _KB_VECTORS[kb_id] = (ids, sample_vectors(len(ids), seed))
    ids, vectors = _KB_VECTORS[kb_id]
    candidates = [int(x) for x in ids[np.argsort(-(vectors @ np.asarray(vector, dtype=np.float32)))[:50]]]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM knowledge_chunk WHERE id = ANY(%s) ORDER BY embedding <=> %s::vector LIMIT %s",
            [candidates, retrieval.vector_literal(vector), K],
        )
        return {row[0] for row in cursor.fetchall()}


def measure(
    tenant: Any,
    kb_ids: list[int],
    *,
    queries: int,
    seed: int,
    shape: str,
    force: str = "auto",
    ef: int | None = None,
    vector_seed: int | None = None,
) -> dict[str, Any]:
    """chunk_search end to end (query vector given, so embedding is excluded) plus its two halves.

    force: "auto" (what production picks), "exact" (exact scan whatever the size).
    ef: hnsw.ef_search override for the partial-index plan (None: production's rule).
    """
    from knowledge import retrieval
    from knowledge.retrieval import SearchScope, scope_available
    from knowledge.selectors import chunk_search

    rng = random.Random(seed)
    query_vectors = sample_vectors(queries, seed + 1000)
    query_texts = sample_queries(queries, seed + 2000)
    n = max(4 * K, 20)  # what hybrid_search asks each retriever for
    totals, vector_ms, text_ms, recalls, short = [], [], [], [], 0
    strategies: set[str] = set()
    original = settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS, settings.KNOWLEDGE_HNSW_KB_EF_SEARCH
    if force == "exact":
        settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 10**12
    if ef is not None:
        settings.KNOWLEDGE_HNSW_KB_EF_SEARCH = ef
    available = statements = 0
    picks = [rng.choice(kb_ids) for _ in range(queries)]
    try:
        # Warm-up, not counted: the same searches once, so the first pass after a Postgres start
        # (pages read from the OS) does not count, and the scopes are remembered as in a running
        # process (a knowledge base's first search in a process also reads its scope: +1 statement).
        for i in range(queries):
            scope = SearchScope(
                tenant.pk, [picks[i]], 384, scope_available(tenant_id=tenant.pk, knowledge_base_ids=[picks[i]])
            )
            vector = [float(x) for x in query_vectors[i]]
            chunk_search(tenant=tenant, knowledge_base_ids=[picks[i]], query=query_texts[i], k=K, query_vector=vector)
            retrieval.vector_candidates(scope, vector, n)
            retrieval.text_candidates(scope, query_texts[i], n)
        for i in range(queries):
            kb_id = picks[i]
            available = scope_available(tenant_id=tenant.pk, knowledge_base_ids=[kb_id])
            scope = SearchScope(tenant.pk, [kb_id], 384, available)
            vector = [float(x) for x in query_vectors[i]]
            if i == 0:  # round trips matter on a busy machine: count them once (warm), outside the timings
                # DEBUG's query log is a deque of 9,000: once full, CaptureQueriesContext counts 0.
                reset_queries()
                for _ in range(2):
                    with CaptureQueriesContext(connection) as captured:
                        chunk_search(
                            tenant=tenant, knowledge_base_ids=[kb_id], query=query_texts[i], k=K, query_vector=vector
                        )
                statements = len(captured.captured_queries)
            started = time.perf_counter()
            hits = chunk_search(
                tenant=tenant, knowledge_base_ids=[kb_id], query=query_texts[i], k=K, query_vector=vector
            )
            totals.append((time.perf_counter() - started) * 1000)
            if len(hits) < min(K, available):
                short += 1
            started = time.perf_counter()
            rows, used = retrieval.vector_candidates(scope, vector, n)
            vector_ms.append((time.perf_counter() - started) * 1000)
            strategies.add(used)
            started = time.perf_counter()
            retrieval.text_candidates(scope, query_texts[i], n)
            text_ms.append((time.perf_counter() - started) * 1000)
            truth = exact_top(scope, vector, seed=vector_seed)
            recalls.append(len(truth & {row[0] for row in rows[:K]}) / len(truth))
        strategy = "/".join(sorted(strategies))
        if "kb-hnsw" in strategy:
            strategy += f" (ef_search {retrieval.kb_ef_search(n=n, available=available)})"
    finally:
        settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS, settings.KNOWLEDGE_HNSW_KB_EF_SEARCH = original
    return _row(
        shape,
        strategy,
        **{
            "kb chunks": available,
            "queries": queries,
            "search p50 ms": round(percentile(totals, 50), 2),
            "search p99 ms": round(percentile(totals, 99), 2),
            "SQL per search": statements,
            "vector p50 ms": round(percentile(vector_ms, 50), 2),
            "text p50 ms": round(percentile(text_ms, 50), 2),
            f"recall@{K}": round(sum(recalls) / len(recalls), 4),
            "short results": short,
        },
    )


def embedding_row(queries: int) -> dict[str, Any]:
    """Query embedding with the local model, reported apart from the search itself."""
    from knowledge.embeddings import get_embedder

    embedder = get_embedder()
    texts_ = sample_queries(queries, 99)
    embedder.embed_query(texts_[0])  # load the model outside the measurement
    latencies = []
    for text in texts_:
        started = time.perf_counter()
        embedder.embed_query(text)
        latencies.append((time.perf_counter() - started) * 1000)
    return _row(
        "query embedding (all-MiniLM-L6-v2, 3-7 words)",
        "local model, CPU",
        queries=queries,
        **{"search p50 ms": round(percentile(latencies, 50), 2), "search p99 ms": round(percentile(latencies, 99), 2)},
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    size = SIZES[args.size]
    queries = 100 if args.quick else 400
    use_bench_database(args.size)
    tenant = _tenant()
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[dict[str, Any]] = [_row("conditions", f"load average {load_avg} at start")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('shared_buffers'), current_setting('effective_cache_size')")
        buffers, cache = cursor.fetchone()
    rows.append(_row("conditions", f"shared_buffers {buffers}, effective_cache_size {cache}"))
    started = time.perf_counter()
    small = load_kbs(tenant, label=f"a{size}", kb_count=size // 100, per_kb=100, seed=1)
    big = load_kbs(tenant, label=f"b{size}", kb_count=1, per_kb=size // 2, seed=3)
    loaded = time.perf_counter() - started
    built = ensure_kb_index(big[0])
    rows.append(
        _row(
            f"set-up: {size:,} rows / {size // 100:,} KBs + 1 KB of {size // 2:,}",
            (f"load {loaded:.0f} s" if loaded > 5 else "data cached")
            + (
                f"; partial HNSW build {built:.0f} s (m {settings.KNOWLEDGE_HNSW_M}, ef_construction "
                f"{settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION}, maintenance_work_mem "
                f"{settings.KNOWLEDGE_INDEX_BUILD_MEMORY})"
                if built
                else "; partial HNSW index cached"
            ),
        )
    )
    rows.append(embedding_row(queries // 4))
    rows.append(measure(tenant, small, queries=queries, seed=2, shape="(a) small KBs (100 chunks)"))
    rows.append(
        measure(tenant, big, queries=queries, seed=5, shape=f"(b) big KB ({size // 2:,} chunks)", vector_seed=3)
    )
    baseline = max(5, queries // 10) if size < 1_000_000 else 5  # an exact scan of 500k chunks takes seconds
    rows.append(
        measure(tenant, big, queries=baseline, seed=5, shape="(b) big KB, baseline", force="exact", vector_seed=3)
    )
    for ef in (40, 60, 100, 150):
        rows.append(
            measure(tenant, big, queries=queries // 2, seed=5, shape="(b) big KB, ef sweep", ef=ef, vector_seed=3)
        )
    if getattr(args, "strategies", False):  # minutes: each alternative index is built, swept, dropped
        rows += strategy_rows(tenant, big[0], queries=100, vector_seed=3)
    return rows


# Alternatives for a large knowledge base's own index, measured side by side (vector half only).
# Each is built as a partial index with the inner-product operator class (vectors are unit length,
# so the ranking is the cosine one) and queried with <#>: only that index can serve such a query,
# so it never competes with the production cosine index, which stays in place. Built, swept, dropped.
STRATEGIES: list[tuple[str, str, str, list[int]]] = [
    # (label, USING ... WITH ..., session setting, values swept); "" = the production index as built
    ("production index (KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION)", "", "hnsw.ef_search", [40, 60, 85, 100, 150]),
    (
        "hnsw m 16, ef_construction 128 (the previous default)",
        "hnsw ({expr} vector_ip_ops) WITH (m = 16, ef_construction = 128)",
        "hnsw.ef_search",
        [100, 150, 200, 254],
    ),
    ("ivfflat lists 100", "ivfflat ({expr} vector_ip_ops) WITH (lists = 100)", "ivfflat.probes", [4, 8, 12, 16]),
    ("ivfflat lists 224", "ivfflat ({expr} vector_ip_ops) WITH (lists = 224)", "ivfflat.probes", [8, 16, 24, 32]),
    ("ivfflat lists 500", "ivfflat ({expr} vector_ip_ops) WITH (lists = 500)", "ivfflat.probes", [16, 32, 48, 64]),
    (
        "hnsw m 24, ef_construction 160",
        "hnsw ({expr} vector_ip_ops) WITH (m = 24, ef_construction = 160)",
        "hnsw.ef_search",
        [60, 80, 100, 120],
    ),
]


def strategy_rows(tenant: Any, kb_id: int, *, queries: int, vector_seed: int, only: str = "") -> list[dict[str, Any]]:
    from knowledge.retrieval import SearchScope, scope_available, vector_literal

    available = scope_available(tenant_id=tenant.pk, knowledge_base_ids=[kb_id])
    scope = SearchScope(tenant.pk, [kb_id], 384, available)
    query_vectors = sample_vectors(queries, 5 + 1000)
    truths = [exact_top(scope, [float(x) for x in v], seed=vector_seed) for v in query_vectors]
    expr = "(embedding::vector(384))"
    rows = []
    for label, using, setting, values in STRATEGIES:
        if only and only not in label:
            continue
        operator = "<#>" if using else "<=>"
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS bench_kb_alt")
            cursor.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)", [settings.KNOWLEDGE_INDEX_BUILD_MEMORY]
            )
            started = time.perf_counter()
            if using:
                cursor.execute(
                    f"CREATE INDEX bench_kb_alt ON knowledge_chunk USING {using.format(expr=expr)} "
                    f"WHERE knowledge_base_id = {int(kb_id)} AND embedding_dim = 384"
                )
            built = time.perf_counter() - started
            try:
                for value in values:
                    cursor.execute("SELECT set_config(%s, %s, false)", [setting, str(value)])
                    latencies, recalls = [], []
                    for vector, truth in zip(query_vectors, truths, strict=True):
                        qvec = vector_literal([float(x) for x in vector])
                        started = time.perf_counter()
                        cursor.execute(
                            f"SELECT id FROM knowledge_chunk WHERE knowledge_base_id = {int(kb_id)} AND embedding_dim = 384 "
                            f"ORDER BY {expr} {operator} %s::vector(384) LIMIT 20",
                            [qvec],
                        )
                        ids = [row[0] for row in cursor.fetchall()]
                        latencies.append((time.perf_counter() - started) * 1000)
                        recalls.append(len(truth & set(ids[:K])) / len(truth))
                    rows.append(
                        _row(
                            "(b) index strategy",
                            f"{label}, {setting} {value}" + (f" (build {built:.0f} s)" if using else ""),
                            **{
                                "kb chunks": available,
                                "queries": queries,
                                "vector p50 ms": round(percentile(latencies, 50), 2),
                                f"recall@{K}": round(sum(recalls) / len(recalls), 4),
                            },
                        )
                    )
            finally:
                cursor.execute("DROP INDEX IF EXISTS bench_kb_alt")
                cursor.execute("RESET maintenance_work_mem")
    return rows
