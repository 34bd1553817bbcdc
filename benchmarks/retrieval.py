"""Filtered retrieval latency and recall@5 on the real chunk table, in two shapes.

- (a) N chunks over N/100 knowledge bases (N = 100k by default; --size 1m for 1M; --size small 10k);
- (b) the same table plus one knowledge base of N/2 chunks.
Vectors are real-like: ~1,500 paragraphs of real text are embedded once with the local model,
and chunk and query vectors are sampled from a Gaussian with those embeddings' mean and
covariance (random isotropic vectors are a worst case no index handles), then normalised.
Everything is cached under var/bench/, and the table lives in its own database
(`chatbot_bench`), so `make run`'s data is untouched and re-runs skip the load.
Recall@5 compares each plan's top 5 to the exact top 5 in the same knowledge base.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

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


def use_bench_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {BENCH_DB}")
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = BENCH_DB
    call_command("migrate", "--noinput", "-v", "0")


def _tenant() -> Any:
    from billing.services import subscription_start_free
    from tenants.models import Tenant

    tenant, created = Tenant.objects.get_or_create(slug="bench-retrieval", defaults={"name": "Bench retrieval"})
    if created:
        subscription_start_free(tenant=tenant)
    return tenant


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
        cursor.execute("DROP INDEX IF EXISTS kb_chunk_hnsw_384")
        raw = cursor.cursor  # psycopg 3 cursor, for binary-free COPY in text format
        columns = (
            "tenant_id, knowledge_base_id, document_id, document_version, position, text, token_count, "
            "heading_path, source_url, embedding_model, embedding_dim, embedding"
        )
        with raw.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN") as copy:
            index = 0
            for kb, doc in zip(kbs, docs, strict=True):
                for position in range(per_kb):
                    vector = "[" + ",".join(f"{x:.6f}" for x in vectors[index]) + "]"
                    copy.write_row(
                        (
                            tenant.pk,
                            kb.pk,
                            doc.pk,
                            1,
                            position,
                            f"passage {index}",
                            2,
                            "[]",
                            "",
                            "all-MiniLM-L6-v2",
                            384,
                            vector,
                        )
                    )
                    index += 1
    print(f"   loaded in {time.perf_counter() - started:.0f}s", flush=True)
    return [kb.pk for kb in kbs]


def build_index() -> float:
    """(Re)build the 384-dim HNSW index with a raised maintenance_work_mem; returns seconds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'kb_chunk_hnsw_384'")
        if cursor.fetchone():
            return 0.0
        started = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        cursor.execute(
            "CREATE INDEX kb_chunk_hnsw_384 ON knowledge_chunk "
            "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384"
        )
        cursor.execute("ANALYZE knowledge_chunk")
        return time.perf_counter() - started


def measure(
    tenant: Any,
    kb_ids: list[int],
    *,
    available: int,
    queries: int,
    seed: int,
    plan: str,
    shape: str,
    ef_min: int | None = None,
) -> dict[str, Any]:
    from knowledge import retrieval
    from knowledge.retrieval import SearchScope

    rng = random.Random(seed)
    query_vectors = sample_vectors(queries, seed + 1000)
    n = max(4 * K, 20)  # what chunk_search asks the vector retriever for
    latencies, recalls, short = [], [], 0
    original = settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS
    original_ef = settings.KNOWLEDGE_HNSW_EF_SEARCH
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = {"auto": original, "exact": 10**12, "hnsw": -1}[plan]
    settings.KNOWLEDGE_HNSW_EF_SEARCH = ef_min or original_ef
    plans_used: set[str] = set()
    try:
        for i in range(queries):
            scope = SearchScope(tenant.pk, [rng.choice(kb_ids)], 384, available)
            query = [float(x) for x in query_vectors[i]]
            started = time.perf_counter()
            rows, used = retrieval.vector_candidates(scope, query, n)
            latencies.append((time.perf_counter() - started) * 1000)
            plans_used.add(used)
            if len(rows) < min(n, available):
                short += 1
            truth = {row[0] for row in retrieval._exact(scope, retrieval.vector_literal(query), K)}
            recalls.append(len(truth & {row[0] for row in rows[:K]}) / len(truth))
    finally:
        settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = original
        settings.KNOWLEDGE_HNSW_EF_SEARCH = original_ef
    used = "/".join(sorted(plans_used))
    if "hnsw" in used:
        used += f" (ef >= {ef_min or original_ef})"
    return {
        "shape": shape,
        "plan": used,
        "kb chunks": available,
        "queries": queries,
        "p50 ms": round(percentile(latencies, 50), 2),
        "p99 ms": round(percentile(latencies, 99), 2),
        f"recall@{K}": round(sum(recalls) / len(recalls), 4),
        "short results": short,
    }


def partial_index_row(tenant: Any, kb_id: int, available: int) -> dict[str, Any]:
    """Build (once) the big knowledge base's own partial HNSW index; the next rows use it."""
    from knowledge.retrieval import kb_index_create, kb_index_exists

    seconds = 0.0
    if not kb_index_exists(kb_id, 384):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
        kb_index_create(kb_id, 384)
        seconds = time.perf_counter() - started
    built = f"partial HNSW build {seconds:.0f} s" if seconds else "partial HNSW index reused (cached)"
    return {"shape": f"(b) KB of {available:,}: own index", "plan": built, "kb chunks": "", "queries": "",
            "p50 ms": "", "p99 ms": "", f"recall@{K}": "", "short results": ""}  # fmt: skip


def build_row(shape: str, seconds: float) -> dict[str, Any]:
    built = f"HNSW build {seconds:.0f} s, maintenance_work_mem 1GB" if seconds else "HNSW index reused (cached)"
    return {"shape": shape, "plan": built, "kb chunks": "", "queries": "", "p50 ms": "", "p99 ms": "",
            f"recall@{K}": "", "short results": ""}  # fmt: skip


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    size = SIZES[args.size]
    queries = 100 if args.quick else 400
    use_bench_database()
    tenant = _tenant()
    rows: list[dict[str, Any]] = []
    small = load_kbs(tenant, label=f"a{size}", kb_count=size // 100, per_kb=100, seed=1)
    seconds = build_index()
    total = size
    rows.append(build_row(f"(a) {size:,} rows / {size // 100} KBs", seconds))
    rows.append(measure(tenant, small, available=100, queries=queries, seed=2, plan="auto", shape="(a) small KBs"))
    big = load_kbs(tenant, label=f"b{size}", kb_count=1, per_kb=size // 2, seed=3)
    seconds = build_index()
    total += size // 2
    rows.append(build_row(f"(b) +1 KB of {size // 2:,} = {total:,} rows", seconds))
    rows.append(
        measure(tenant, small, available=100, queries=queries, seed=4, plan="auto", shape="(a) small KBs, table (b)")
    )
    rows.append(measure(tenant, big, available=size // 2, queries=queries, seed=5, plan="auto", shape="(b) big KB"))
    rows.append(measure(tenant, big, available=size // 2, queries=queries, seed=5, plan="exact", shape="(b) big KB"))
    for ef in (100, 200, 400):
        rows.append(
            measure(
                tenant, big, available=size // 2, queries=queries, seed=5, plan="hnsw", shape="(b) big KB", ef_min=ef
            )
        )
    rows.append(partial_index_row(tenant, big[0], size // 2))
    rows.append(measure(tenant, big, available=size // 2, queries=queries, seed=5, plan="auto", shape="(b) big KB"))
    return rows
