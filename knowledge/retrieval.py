"""Hybrid retrieval: pgvector cosine plus Postgres full-text search, fused by reciprocal rank.

pgvector 0.6.2 filters HNSW results *after* the index scan, so a `WHERE knowledge_base_id = X`
query through the index can return fewer than k rows. We therefore:
- scan exactly (btree on knowledge_base_id, then sort by distance) when the searched knowledge
  bases hold at most KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS chunks: ~1 ms at 1,000 chunks;
- search a knowledge base that has its own partial HNSW index (created for the few that grow
  past that size, see kb_index_create) through it;
- otherwise ask the per-dimension HNSW index for `ef` neighbours, with `ef` raised in proportion
  to how selective the filter is, filter them, and fall back to the exact scan in the rare case
  that leaves fewer than min(n, available) rows. Either way the caller gets min(k, available).
Only chunks of a document's `active_version` are visible (see Document.version).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from .embeddings import get_embedder
from .types import RetrievedPassage

RRF_K = 60
SNIPPET_CHARS = 240

_VISIBLE = "JOIN knowledge_document d ON d.id = c.document_id AND d.active_version = c.document_version"


@dataclass(frozen=True)
class SearchScope:
    tenant_id: int
    knowledge_base_ids: list[int]
    dimension: int
    available: int  # visible chunks in these knowledge bases
    embedding_model: str = ""  # "" = KNOWLEDGE_DEFAULT_EMBEDDING_MODEL; embeds the query when no vector is given


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def scope_available(*, tenant_id: int, knowledge_base_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(chunk_count), 0) FROM knowledge_document "
            "WHERE tenant_id = %s AND knowledge_base_id = ANY(%s) AND active_version IS NOT NULL",
            [tenant_id, knowledge_base_ids],
        )
        return int(cursor.fetchone()[0])


def _exact(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    sql = f"""
        SELECT c.id, c.embedding <=> %s::vector AS dist
        FROM knowledge_chunk c {_VISIBLE}
        WHERE c.tenant_id = %s AND c.knowledge_base_id = ANY(%s) AND c.embedding_dim = %s
        ORDER BY dist LIMIT %s
    """  # noqa: S608 - only constant fragments are interpolated
    with connection.cursor() as cursor:
        cursor.execute(sql, [qvec, scope.tenant_id, scope.knowledge_base_ids, scope.dimension, n])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def _table_rows(dimension: int) -> int:
    # The planner's estimate is enough to size ef; counting 1M rows per query is not.
    with connection.cursor() as cursor:
        cursor.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = 'knowledge_chunk'")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def hnsw_ef(*, n: int, available: int, table_rows: int) -> int:
    """How many neighbours to ask the index for so that about 2n survive the filter."""
    selectivity = min(1.0, available / table_rows) if table_rows > 0 else 1.0
    wanted = math.ceil(2 * n / max(selectivity, 1e-6))
    return max(settings.KNOWLEDGE_HNSW_EF_SEARCH, min(wanted, 1000))


def _hnsw(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    dim = int(scope.dimension)  # interpolated into the cast: an int from EMBEDDING_DIMENSIONS
    ef = hnsw_ef(n=n, available=scope.available, table_rows=_table_rows(dim))
    sql = f"""
        SELECT c.id, c.dist FROM (
            SELECT id, tenant_id, knowledge_base_id, document_id, document_version,
                   (embedding::vector({dim})) <=> %s::vector({dim}) AS dist
            FROM knowledge_chunk WHERE embedding_dim = {dim}
            ORDER BY (embedding::vector({dim})) <=> %s::vector({dim}) LIMIT %s
        ) c {_VISIBLE}
        WHERE c.tenant_id = %s AND c.knowledge_base_id = ANY(%s)
        ORDER BY c.dist LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        _set_ef_search(cursor, ef)
        cursor.execute(sql, [qvec, qvec, ef, scope.tenant_id, scope.knowledge_base_ids, n])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def _set_ef_search(cursor: Any, ef: int) -> None:
    # Session-wide rather than SET LOCAL in a transaction: BEGIN and COMMIT were two of the five
    # round trips of a search. Every HNSW query here sets its own value first.
    cursor.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(int(ef))])


def kb_index_name(knowledge_base_id: int, dimension: int) -> str:
    return f"kb_chunk_hnsw_{int(dimension)}_kb{int(knowledge_base_id)}"


def _kb_index_valid(knowledge_base_id: int, dimension: int) -> bool | None:
    """None: no such index; False: a CONCURRENTLY build that failed left it invalid (unused)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s",
            [kb_index_name(knowledge_base_id, dimension)],
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def kb_index_exists(knowledge_base_id: int, dimension: int) -> bool:
    return bool(_kb_index_valid(knowledge_base_id, dimension))


def kb_index_create(knowledge_base_id: int, dimension: int) -> None:
    """A partial HNSW index over one large knowledge base's chunks.

    Only worth it for the few largest knowledge bases: each partial index adds planning time to
    every query on the table. CONCURRENTLY outside transactions, so ingestion keeps writing.
    Built with KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION (a better graph buys recall at a lower, faster
    ef_search) in KNOWLEDGE_INDEX_BUILD_MEMORY: a build that spills is ~5x slower.
    """
    kb_id, dim = int(knowledge_base_id), int(dimension)
    m, ef_construction = int(settings.KNOWLEDGE_HNSW_M), int(settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION)
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    with connection.cursor() as cursor:
        if _kb_index_valid(kb_id, dim) is False:  # IF NOT EXISTS would keep the broken one forever
            cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {kb_index_name(kb_id, dim)}")
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [settings.KNOWLEDGE_INDEX_BUILD_MEMORY])
        try:
            cursor.execute(
                f"CREATE INDEX {concurrently} IF NOT EXISTS {kb_index_name(kb_id, dim)} ON knowledge_chunk "
                f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction}) "
                f"WHERE knowledge_base_id = {kb_id} AND embedding_dim = {dim}"
            )
        finally:
            cursor.execute("RESET maintenance_work_mem")


def kb_ef_search(*, n: int, available: int) -> int:
    """hnsw.ef_search for a knowledge base's own index (KNOWLEDGE_HNSW_KB_EF_SEARCH, 0 = by size)."""
    configured = settings.KNOWLEDGE_HNSW_KB_EF_SEARCH
    if configured > 0:
        return max(configured, n)
    # Measured on 50k chunks of embedding-like vectors (benchmarks/retrieval.py): recall@5 was
    # 0.80 at ef 50, 0.89 at 100, 0.95 at 200, 0.99 at 400. Graph search needs a wider beam as the
    # graph grows, roughly with log(size): 195 at 20k, 254 at 50k, 404 at 500k, 449 at 1M.
    by_size = math.ceil(45 * math.log2(max(available, 2000) / 1000))
    return min(1000, max(2 * n, by_size))


_KB_INDEXES_SEEN: set[tuple[int, int]] = set()


def _kb_index_usable(knowledge_base_id: int, dimension: int) -> bool:
    """kb_index_exists, remembered once true: saves a catalog query per search. A remembered index
    that was dropped since still gives correct results (the same SQL becomes an exact scan)."""
    key = (int(knowledge_base_id), int(dimension))
    if key not in _KB_INDEXES_SEEN and kb_index_exists(*key):
        _KB_INDEXES_SEEN.add(key)
    return key in _KB_INDEXES_SEEN


def _hnsw_kb(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    """Search one knowledge base through its own partial index: no post-filter loss."""
    dim, kb_id = int(scope.dimension), int(scope.knowledge_base_ids[0])
    ef = kb_ef_search(n=n, available=scope.available)
    # The knowledge base id is an int literal so the planner can match the partial index.
    sql = f"""
        SELECT c.id, c.dist FROM (
            SELECT id, tenant_id, document_id, document_version,
                   (embedding::vector({dim})) <=> %s::vector({dim}) AS dist
            FROM knowledge_chunk WHERE knowledge_base_id = {kb_id} AND embedding_dim = {dim}
            ORDER BY (embedding::vector({dim})) <=> %s::vector({dim}) LIMIT %s
        ) c {_VISIBLE}
        WHERE c.tenant_id = %s
        ORDER BY c.dist LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        _set_ef_search(cursor, ef)
        cursor.execute(sql, [qvec, qvec, ef, scope.tenant_id, n])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def vector_candidates(scope: SearchScope, query_vector: Sequence[float], n: int) -> tuple[list[tuple[int, float]], str]:
    """Up to n (chunk_id, cosine distance) pairs, nearest first, and which plan produced them."""
    qvec = vector_literal(query_vector)
    if scope.available <= settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS:
        return _exact(scope, qvec, n), "exact"
    if len(scope.knowledge_base_ids) == 1 and _kb_index_usable(scope.knowledge_base_ids[0], scope.dimension):
        rows, plan = _hnsw_kb(scope, qvec, n), "kb-hnsw"
    else:
        rows, plan = _hnsw(scope, qvec, n), "hnsw"
    if len(rows) < min(n, scope.available):
        return _exact(scope, qvec, n), plan + "+exact"
    return rows, plan


_STRICT = "plainto_tsquery('english', %s)"  # every word of the query
_LOOSE = "to_tsquery('english', replace(plainto_tsquery('english', %s)::text, ' & ', ' | '))"  # any word


def _text_tier(scope: SearchScope, tsquery: str, query: str, n: int, exclude: list[int]) -> list[int]:
    # The inner LIMIT caps how many matches are ranked: ranking reads each match's tsvector.
    sql = f"""
        SELECT m.id FROM (
            SELECT c.id, c.search_vector, q.query
            FROM knowledge_chunk c {_VISIBLE}, (SELECT {tsquery} AS query) q
            WHERE c.tenant_id = %s AND c.knowledge_base_id = ANY(%s) AND c.search_vector @@ q.query
              AND c.id <> ALL(%s)
            LIMIT %s
        ) m
        ORDER BY ts_rank_cd(m.search_vector, m.query) DESC, m.id LIMIT %s
    """  # noqa: S608 - only constant fragments are interpolated
    limit = max(n, settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES)
    with connection.cursor() as cursor:
        cursor.execute(sql, [query, scope.tenant_id, scope.knowledge_base_ids, exclude, limit, n])
        return [row[0] for row in cursor.fetchall()]


def text_candidates(scope: SearchScope, query: str, n: int) -> list[int]:
    """Up to n chunk ids matching the query's words, best ts_rank_cd first.

    Chunks holding every word come first; chunks holding any word fill up only when those are
    fewer than n. Each tier ranks at most KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES matches: in a 50k-chunk
    knowledge base a common word matches thousands, and ranking them all cost 150-480 ms. Past the
    cap the matches ranked are the first found, not the best; the vector half still ranks them all.
    """
    if scope.available <= settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES:
        return _text_tier(scope, _LOOSE, query, n, [])  # few enough to rank every match: one query
    ids = _text_tier(scope, _STRICT, query, n, [])
    if len(ids) < n:
        ids += _text_tier(scope, _LOOSE, query, n - len(ids), ids)
    return ids


def _details(scope: SearchScope, ids: list[int], qvec: str) -> dict[int, tuple]:
    sql = f"""
        SELECT c.id, c.document_id, c.knowledge_base_id, c.text, c.page, c.heading_path, c.source_url,
               d.title, d.url, 1 - (c.embedding <=> %s::vector) AS similarity
        FROM knowledge_chunk c {_VISIBLE}
        WHERE c.tenant_id = %s AND c.id = ANY(%s)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [qvec, scope.tenant_id, ids])
        return {row[0]: row for row in cursor.fetchall()}


def snippet_for(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """A window of the chunk around the first query word it contains, for citations."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    start = 0
    for word in sorted(set(re.findall(r"\w{3,}", query.lower())), key=len, reverse=True):
        index = flat.lower().find(word)
        if index >= 0:
            start = max(0, index - width // 4)
            break
    window = flat[start : start + width]
    return ("…" if start else "") + window + ("…" if start + width < len(flat) else "")


def hybrid_search(
    scope: SearchScope,
    *,
    query: str,
    query_vector: list[float] | None = None,
    k: int,
    min_score: float | None,
) -> list[RetrievedPassage]:
    """Top k passages by fused rank; `query_vector` skips embedding `query` when given."""
    if query_vector is None:
        query_vector = get_embedder(scope.embedding_model or None).embed_query(query)
    n = max(4 * k, 20)
    vector_rows, _plan = vector_candidates(scope, query_vector, n)
    text_ids = text_candidates(scope, query, n)
    vector_rank = {chunk_id: rank for rank, (chunk_id, _dist) in enumerate(vector_rows, start=1)}
    text_rank = {chunk_id: rank for rank, chunk_id in enumerate(text_ids, start=1)}
    ids = list(dict.fromkeys([*vector_rank, *text_rank]))
    if not ids:
        return []
    details = _details(scope, ids, vector_literal(query_vector))
    passages: list[RetrievedPassage] = []
    for chunk_id in ids:
        row = details.get(chunk_id)
        if row is None:  # replaced by a newer version between the queries
            continue
        similarity = float(row[9])
        if min_score is not None and similarity < min_score:
            continue
        v_rank, t_rank = vector_rank.get(chunk_id), text_rank.get(chunk_id)
        score = sum(1.0 / (RRF_K + rank) for rank in (v_rank, t_rank) if rank is not None)
        passages.append(
            RetrievedPassage(
                chunk_id=chunk_id,
                document_id=row[1],
                knowledge_base_id=row[2],
                text=row[3],
                score=score,
                document_title=row[7],
                page=row[4],
                url=(row[6] or row[8] or None),
                heading_path=list(json.loads(row[5]) if isinstance(row[5], str) else row[5] or []),
                snippet=snippet_for(row[3], query),
                similarity=similarity,
                vector_rank=v_rank,
                text_rank=t_rank,
            )
        )
    passages.sort(key=lambda p: (-p.score, -(p.similarity or 0.0), p.chunk_id))
    return passages[:k]
