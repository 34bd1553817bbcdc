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
hybrid_search runs the scope read, the chosen vector plan, the full-text tiers, the fusion inputs and
the citation details as one statement (see _search_sql; one scan for small scopes, _small_search_sql);
vector_candidates / text_candidates run each half alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from .embeddings import get_embedder
from .types import RetrievedPassage

RRF_K = 60
SNIPPET_CHARS = 240

_VISIBLE = "JOIN knowledge_document d ON d.id = c.document_id AND d.active_version = c.document_version"
# The same, with the documents narrowed to the searched knowledge bases up front: without it the
# exact scan hashes every document of the table to join a hundred chunks. Not for the full-text
# half: there it makes the planner walk a large knowledge base's chunks by document instead of
# through the GIN index (218 ms instead of 4 ms at 50k chunks in one document).
_VISIBLE_IN_KBS = _VISIBLE + " AND d.knowledge_base_id = ANY(%(kbs)s)"


@dataclass(frozen=True)
class SearchScope:
    tenant_id: int
    knowledge_base_ids: list[int]
    dimension: int
    available: int  # visible chunks in these knowledge bases
    embedding_model: str = ""  # "" = KNOWLEDGE_DEFAULT_EMBEDDING_MODEL; embeds the query when no vector is given

    @property
    def model_name(self) -> str:
        return self.embedding_model or settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL


def vector_literal(vector: Sequence[float]) -> str:
    # One %-format over the tuple: ~5x faster than a format call per element.
    return ("[" + ",".join(["%.7g"] * len(vector)) + "]") % tuple(vector)


def scope_available(*, tenant_id: int, knowledge_base_ids: list[int]) -> int:
    """Visible chunks in the tenant's knowledge bases among the ids."""
    return sum(
        available for _kb_id, _model, available in knowledge_bases_for_search(
            tenant_id=tenant_id, knowledge_base_ids=knowledge_base_ids
        )
    )  # fmt: skip


# Every chunk a search reads is of the model the query vector was made with: a re-index swap that
# commits between reading the scope and searching then hides the chunks instead of comparing
# vectors of two dimensions (pgvector raises), and the caller retries (see SearchResult.knowledge_bases).
_CHUNK_SCOPE = "c.tenant_id = %(tenant)s AND c.embedding_model = %(model)s"


def _params(scope: SearchScope, qvec: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "qvec": qvec,
        "tenant": scope.tenant_id,
        "kbs": list(scope.knowledge_base_ids),
        "dim": int(scope.dimension),
        "model": scope.model_name,
        "n": n,
        **extra,
    }


# The tenant's knowledge bases among %(scope_kbs)s: id, embedding model, visible chunks. The scope
# read on its own, and a CTE of every search statement (so a search can check in its own snapshot
# that the scope it was planned with is still the current one).
_KBS_SQL = """
    SELECT kb.id, kb.embedding_model,
           (SELECT coalesce(sum(d.chunk_count), 0) FROM knowledge_document d
            WHERE d.knowledge_base_id = kb.id AND d.tenant_id = %(tenant)s AND d.active_version IS NOT NULL) AS available
    FROM knowledge_knowledgebase kb
    WHERE kb.tenant_id = %(tenant)s AND kb.id = ANY(%(scope_kbs)s)
"""


def knowledge_bases_for_search(*, tenant_id: int, knowledge_base_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    """(id, embedding model, visible chunks) of the tenant's knowledge bases among the ids, by id:
    one round trip. Plain SQL with the tenant filter written out, like the search statement itself:
    building the equivalent ORM query cost ~2 ms of Python per search."""
    with connection.cursor() as cursor:
        cursor.execute(
            _KBS_SQL + " ORDER BY kb.id",
            {"tenant": tenant_id, "scope_kbs": [int(kb_id) for kb_id in knowledge_base_ids]},
        )
        return [(row[0], row[1], int(row[2])) for row in cursor.fetchall()]


def _exact_sql() -> str:
    return f"""
        SELECT c.id, c.embedding <=> %(qvec)s::vector AS dist
        FROM knowledge_chunk c {_VISIBLE_IN_KBS}
        WHERE {_CHUNK_SCOPE} AND c.knowledge_base_id = ANY(%(kbs)s) AND c.embedding_dim = %(dim)s
        ORDER BY dist LIMIT %(n)s
    """  # noqa: S608 - only constant fragments are interpolated


def _exact(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    with connection.cursor() as cursor:
        cursor.execute(_exact_sql(), _params(scope, qvec, n))
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


def _hnsw_sql(dim: int) -> str:
    # dim is interpolated into the cast: an int from EMBEDDING_DIMENSIONS.
    return f"""
        SELECT c.id, c.dist FROM (
            SELECT id, tenant_id, knowledge_base_id, document_id, document_version, embedding_model,
                   (embedding::vector({dim})) <=> %(qvec)s::vector({dim}) AS dist
            FROM knowledge_chunk WHERE embedding_dim = {dim}
            ORDER BY (embedding::vector({dim})) <=> %(qvec)s::vector({dim}) LIMIT %(ef)s
        ) c {_VISIBLE}
        WHERE {_CHUNK_SCOPE} AND c.knowledge_base_id = ANY(%(kbs)s)
        ORDER BY c.dist LIMIT %(n)s
    """  # noqa: S608


def _hnsw(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    """The shared per-dimension index plan on its own (no exact fallback)."""
    plan = vector_plan(scope, n, index=True)
    with connection.cursor() as cursor:
        _prepare(cursor, plan)
        cursor.execute(plan.sql, _params(scope, qvec, n, **dict(plan.params)))
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def _kb_index_sql(kb_id: int, dim: int) -> str:
    """One knowledge base through its own partial index: no post-filter loss. The knowledge base
    id and dimension are int literals so the planner can match the partial index."""
    return f"""
        SELECT c.id, c.dist FROM (
            SELECT id, tenant_id, document_id, document_version, embedding_model,
                   (embedding::vector({dim})) <=> %(qvec)s::vector({dim}) AS dist
            FROM knowledge_chunk WHERE knowledge_base_id = {int(kb_id)} AND embedding_dim = {int(dim)}
            ORDER BY (embedding::vector({dim})) <=> %(qvec)s::vector({dim}) LIMIT %(ef)s
        ) c {_VISIBLE}
        WHERE {_CHUNK_SCOPE}
        ORDER BY c.dist LIMIT %(n)s
    """  # noqa: S608


def _set_config(cursor: Any, name: str, value: int) -> None:
    """Set a session setting (hnsw.ef_search) before the statement whose index scan reads it.

    Session-wide rather than SET LOCAL in a transaction (BEGIN and COMMIT would be two more
    round trips), and skipped when this connection has the value already, so a search stays one
    statement. Outside a transaction the value is committed at once and remembered on the
    driver connection (a reconnect starts afresh); inside one a rollback would undo it, so it is
    set every time and forgotten.
    """
    raw = connection.connection
    known: dict[str, int] | None = getattr(raw, "_retrieval_settings", None)
    if known is None:
        known = {}
        raw._retrieval_settings = known
    if not connection.in_atomic_block and known.get(name) == value:
        return
    cursor.execute("SELECT set_config(%s, %s, false)", [name, str(int(value))])
    if connection.in_atomic_block:
        known.pop(name, None)
    else:
        known[name] = value


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


def kb_indexes_drop(knowledge_base_id: int, dimensions: list[int] | None = None) -> None:
    """Drop the knowledge base's partial indexes, of every dimension by default (idempotent).

    CONCURRENTLY when not in a transaction (after commit), so retrieval on the rest of the table
    is not blocked by the ACCESS EXCLUSIVE lock a plain DROP INDEX takes.
    """
    from .models import EMBEDDING_DIMENSIONS

    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    with connection.cursor() as cursor:
        for dim in dimensions or sorted(set(EMBEDDING_DIMENSIONS.values())):
            cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {kb_index_name(knowledge_base_id, dim)}")
    for dim in dimensions or sorted(set(EMBEDDING_DIMENSIONS.values())):
        _KB_INDEXES_SEEN.discard((int(knowledge_base_id), int(dim)))


def _kb_index_build_options() -> dict[str, str]:
    return {
        "m": str(int(settings.KNOWLEDGE_HNSW_M)),
        "ef_construction": str(int(settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION)),
    }


def kb_index_options(knowledge_base_id: int, dimension: int) -> dict[str, str] | None:
    """The build parameters of the knowledge base's index (None: no index)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = %s",
            [kb_index_name(knowledge_base_id, dimension)],
        )
        row = cursor.fetchone()
    return None if row is None else dict(option.split("=", 1) for option in row[0])


def kb_index_current(knowledge_base_id: int, dimension: int) -> bool:
    """The index exists, is valid and was built with today's KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION."""
    return (
        kb_index_exists(knowledge_base_id, dimension)
        and kb_index_options(knowledge_base_id, dimension) == _kb_index_build_options()
    )


def kb_index_create(knowledge_base_id: int, dimension: int) -> bool:
    """A partial HNSW index over one large knowledge base's chunks (or a rebuild of it).

    Only worth it for the few largest knowledge bases: each partial index adds planning time to
    every query on the table. CONCURRENTLY outside transactions, so ingestion keeps writing.
    Built with KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION (a better graph buys recall at a lower, faster
    ef_search) in KNOWLEDGE_INDEX_BUILD_MEMORY: a build that spills is ~5x slower. An index built
    with other parameters is replaced: the new one is built next to it, then swapped in by name,
    so searches keep an index throughout (kb_ef_search assumes today's parameters).
    True when the index exists afterwards (False: another worker is building it right now).
    """
    kb_id, dim = int(knowledge_base_id), int(dimension)
    # One build per knowledge base at a time: a second worker would take the first one's
    # half-built (invalid-looking) index for a failed build and drop it. Inside a transaction
    # (tests) the lock ends with it; outside, it is released below.
    in_transaction = connection.in_atomic_block
    lock = "pg_try_advisory_xact_lock" if in_transaction else "pg_try_advisory_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {lock}(%s, %s)", [_BUILD_LOCK, kb_id])
        if not cursor.fetchone()[0]:
            return kb_index_exists(kb_id, dim)
    try:
        _kb_index_build(kb_id, dim)
    finally:
        if not in_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_BUILD_LOCK, kb_id])
    return kb_index_exists(kb_id, dim)


_BUILD_LOCK = 0x6B62  # advisory lock class of kb_index_create ("kb")


def _kb_index_build(kb_id: int, dim: int) -> None:
    options = _kb_index_build_options()
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    valid = _kb_index_valid(kb_id, dim)
    if valid is False:  # IF NOT EXISTS would keep the broken one forever
        kb_indexes_drop(kb_id, [dim])
    replacing = bool(valid) and kb_index_options(kb_id, dim) != options
    if valid and not replacing:
        return
    name = kb_index_name(kb_id, dim)
    target = f"{name}_next" if replacing else name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {name}_next")  # a replacement that died half-built
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [settings.KNOWLEDGE_INDEX_BUILD_MEMORY])
        try:
            cursor.execute(
                f"CREATE INDEX {concurrently} IF NOT EXISTS {target} ON knowledge_chunk "
                f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                f"WITH (m = {options['m']}, ef_construction = {options['ef_construction']}) "
                f"WHERE knowledge_base_id = {kb_id} AND embedding_dim = {dim}"
            )
        finally:
            cursor.execute("RESET maintenance_work_mem")
        if replacing:
            cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {name}")
            cursor.execute(f"ALTER INDEX {target} RENAME TO {name}")


def kb_ef_search(*, n: int, available: int) -> int:
    """hnsw.ef_search for a knowledge base's own index (KNOWLEDGE_HNSW_KB_EF_SEARCH, 0 = by size)."""
    configured = settings.KNOWLEDGE_HNSW_KB_EF_SEARCH
    if configured > 0:
        return max(configured, n)
    # Measured on 50k chunks of embedding-like vectors (benchmarks/retrieval.py) with m 32 and
    # ef_construction 200: recall@5 0.946 at ef 60, 0.982 at 100 (m 16 / 128 needed 200 for 0.976).
    # Graph search needs a wider beam as the graph grows, roughly with log(size): 85 at 50k
    # (~0.97), 65 at 20k, 135 at 500k, 150 at 1M.
    by_size = math.ceil(15 * math.log2(max(available, 2000) / 1000))
    return min(1000, max(2 * n, by_size))


_KB_INDEXES_SEEN: set[tuple[int, int]] = set()


def _kb_index_usable(knowledge_base_id: int, dimension: int) -> bool:
    """kb_index_exists, remembered once true: saves a catalog query per search. A remembered index
    that was dropped since still gives correct results (the same SQL becomes an exact scan)."""
    key = (int(knowledge_base_id), int(dimension))
    if key not in _KB_INDEXES_SEEN and kb_index_exists(*key):
        _KB_INDEXES_SEEN.add(key)
    return key in _KB_INDEXES_SEEN


@dataclass(frozen=True)
class VectorPlan:
    name: str  # exact / kb-hnsw / hnsw
    sql: str  # SELECT id, dist ... ORDER BY dist LIMIT %(n)s
    settings: tuple[tuple[str, int], ...] = ()  # session settings its index scan reads
    params: tuple[tuple[str, Any], ...] = ()


def vector_plan(scope: SearchScope, n: int, *, exact: bool = False, index: bool = False) -> VectorPlan:
    """How to find the n nearest chunks of the scope: the exact scan while small, else an index
    (`exact` / `index` force one or the other)."""
    if exact or (not index and scope.available <= settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS):
        return VectorPlan("exact", _exact_sql())
    dim = int(scope.dimension)
    if len(scope.knowledge_base_ids) == 1 and _kb_index_usable(scope.knowledge_base_ids[0], dim):
        ef = kb_ef_search(n=n, available=scope.available)
        sql = _kb_index_sql(scope.knowledge_base_ids[0], dim)
        return VectorPlan("kb-hnsw", sql, (("hnsw.ef_search", ef),), (("ef", ef),))
    ef = hnsw_ef(n=n, available=scope.available, table_rows=_table_rows(dim))
    return VectorPlan("hnsw", _hnsw_sql(dim), (("hnsw.ef_search", ef),), (("ef", ef),))


def _prepare(cursor: Any, plan: VectorPlan) -> None:
    for name, value in plan.settings:
        _set_config(cursor, name, value)


def vector_candidates(scope: SearchScope, query_vector: Sequence[float], n: int) -> tuple[list[tuple[int, float]], str]:
    """Up to n (chunk_id, cosine distance) pairs, nearest first, and which plan produced them.

    The vector half of hybrid_search on its own (hybrid_search runs the same SQL inside its one
    statement). An index plan that leaves fewer than min(n, available) rows falls back to exact.
    """
    qvec = vector_literal(query_vector)
    plan = vector_plan(scope, n)
    with connection.cursor() as cursor:
        _prepare(cursor, plan)
        cursor.execute(plan.sql, _params(scope, qvec, n, **dict(plan.params)))
        rows = [(row[0], float(row[1])) for row in cursor.fetchall()]
    if plan.name != "exact" and len(rows) < min(n, scope.available):
        return _exact(scope, qvec, n), plan.name + "+exact"
    return rows, plan.name


_STRICT = "plainto_tsquery('english', %(query)s)"  # every word of the query
_LOOSE = "to_tsquery('english', replace(plainto_tsquery('english', %(query)s)::text, ' & ', ' | '))"  # any word


def _text_tier(tsquery: str, *, after: str | None, visible: str = _VISIBLE) -> str:
    """One tier of the full-text half: ids and ranks of up to %(n)s matches, best ts_rank_cd first.

    The inner LIMIT caps how many matches are ranked: ranking reads each match's tsvector.
    `after` names the tier before this one: this tier then runs only when that one found fewer
    than n (a one-time filter: Postgres skips the scan), excludes its ids and ranks after them.
    """
    gate, offset = "", "0"
    if after:
        gate = f"AND (SELECT count(*) FROM {after}) < %(n)s AND c.id NOT IN (SELECT id FROM {after})"  # noqa: S608
        offset = f"(SELECT count(*) FROM {after})"  # noqa: S608
    return f"""
        SELECT m.id, {offset} + row_number() OVER (ORDER BY ts_rank_cd(m.search_vector, m.query) DESC, m.id) AS rank
        FROM (
            SELECT c.id, c.search_vector, q.query
            FROM knowledge_chunk c {visible}, (SELECT {tsquery} AS query) q
            WHERE {_CHUNK_SCOPE} AND c.knowledge_base_id = ANY(%(kbs)s) AND c.search_vector @@ q.query {gate}
            LIMIT %(rank_max)s
        ) m
        ORDER BY rank LIMIT %(n)s - {offset}
    """  # noqa: S608 - only constant fragments are interpolated


def _text_ctes(scope: SearchScope) -> list[tuple[str, str]]:
    """The full-text half as (name, SELECT id, rank) CTEs.

    Chunks holding every word come first; chunks holding any word fill up only when those are
    fewer than n. Each tier ranks at most KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES matches: in a 50k-chunk
    knowledge base a common word matches thousands, and ranking them all cost 150-480 ms. Past the
    cap the matches ranked are the first found, not the best; the vector half still ranks them all.
    """
    if scope.available <= settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES:
        # Few enough to rank every match: one tier, over the knowledge bases' own documents (else
        # the join hashes every document of the table: 0.5 ms of a 100-chunk search).
        return [("t1", _text_tier(_LOOSE, after=None, visible=_VISIBLE_IN_KBS))]
    return [("t1", _text_tier(_STRICT, after=None)), ("t2", _text_tier(_LOOSE, after="t1"))]


def _rank_max(n: int) -> int:
    return max(n, settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES)


def text_candidates(scope: SearchScope, query: str, n: int) -> list[int]:
    """Up to n chunk ids matching the query's words, best first: the full-text half on its own."""
    ctes = _text_ctes(scope)
    with_ = ",\n".join(f"{name} AS MATERIALIZED ({sql})" for name, sql in ctes)
    union = " UNION ALL ".join(f"SELECT id, rank FROM {name}" for name, _ in ctes)  # noqa: S608
    sql = f"WITH {with_} SELECT id FROM ({union}) u ORDER BY rank"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(scope, "", n, query=query, rank_max=_rank_max(n)))
        return [row[0] for row in cursor.fetchall()]


def _scope_seen(candidates: str) -> str:
    """The one row every search statement starts with: the scope as its snapshot saw it (kbs_now,
    as arrays by id) and how many vector candidates `candidates` holds."""
    return f"""
        SELECT array_agg(id ORDER BY id) AS kb_ids, array_agg(embedding_model ORDER BY id) AS kb_models,
               array_agg(available ORDER BY id) AS kb_available, (SELECT count(*) FROM {candidates}) AS found
        FROM kbs_now
    """  # noqa: S608 - a CTE name of ours


def _search_sql(scope: SearchScope, plan: VectorPlan) -> str:
    """Both halves, the fusion inputs, the citation details and the scope read in one statement.

    One statement is one snapshot under READ COMMITTED, so the knowledge bases' models and sizes
    it reports (`kbs_now`, over %(scope_kbs)s: every knowledge base the caller asked for) are the
    ones its chunks were read under: the caller compares them with the scope it planned with and
    searches again when they differ. One round trip instead of five.
    """
    if plan.name == "exact" and scope.available <= settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES:
        return _small_search_sql()
    text = _text_ctes(scope)
    ctes = [("kbs_now", _KBS_SQL), ("v", plan.sql), *text]
    with_ = ",\n".join(f"{name} AS MATERIALIZED ({sql})" for name, sql in ctes)
    ranks = " UNION ALL ".join(
        [
            "SELECT id, row_number() OVER (ORDER BY dist, id) AS v_rank, NULL::bigint AS t_rank, dist FROM v",
            *(f"SELECT id, NULL, rank, NULL FROM {name}" for name, _ in text),  # noqa: S608
        ]
    )
    # The vector half's distance is reused: only the full-text half's extra chunks read their
    # embedding again (a detoast each).
    return f"""
        WITH {with_},
        ids AS (SELECT id, min(v_rank) AS v_rank, min(t_rank) AS t_rank, min(dist) AS dist FROM ({ranks}) u GROUP BY id)
        SELECT s.kb_ids, s.kb_models, s.kb_available, s.found,
               c.id, c.document_id, c.knowledge_base_id, c.text, c.page, c.heading_path,
               c.source_url, d.title, d.url, 1 - coalesce(ids.dist, c.embedding <=> %(qvec)s::vector) AS similarity,
               ids.v_rank, ids.t_rank
        FROM ({_scope_seen("v")}) s
        LEFT JOIN (ids JOIN knowledge_chunk c ON c.id = ids.id AND c.tenant_id = %(tenant)s
                   JOIN knowledge_document d ON d.id = c.document_id) ON true
    """  # noqa: S608 - only constant fragments are interpolated


def _small_search_sql() -> str:
    """_search_sql for a scope small enough to scan exactly and rank every full-text match of:
    one pass over its chunks computes both halves (distance, and rank of the chunks holding any
    query word) and carries the citation details, instead of two scans and a join back to the
    chunks. Same ranks as the two-CTE form; the same columns."""
    return f"""
        WITH kbs_now AS MATERIALIZED ({_KBS_SQL}),
        m AS MATERIALIZED (
            SELECT c.id, c.document_id, c.knowledge_base_id, c.text, c.page, c.heading_path, c.source_url,
                   d.title, d.url, c.embedding <=> %(qvec)s::vector AS dist,
                   CASE WHEN c.search_vector @@ q.query THEN ts_rank_cd(c.search_vector, q.query) END AS t_score
            FROM knowledge_chunk c {_VISIBLE_IN_KBS}, (SELECT {_LOOSE} AS query) q
            WHERE {_CHUNK_SCOPE} AND c.knowledge_base_id = ANY(%(kbs)s) AND c.embedding_dim = %(dim)s
        ),
        r AS (
            SELECT m.*, row_number() OVER (ORDER BY dist, id) AS v_rank,
                   row_number() OVER (ORDER BY t_score DESC NULLS LAST, id) AS t_rank
            FROM m
        )
        SELECT s.kb_ids, s.kb_models, s.kb_available, s.found,
               r.id, r.document_id, r.knowledge_base_id, r.text, r.page, r.heading_path, r.source_url,
               r.title, r.url, 1 - r.dist AS similarity,
               CASE WHEN r.v_rank <= %(n)s THEN r.v_rank END,
               CASE WHEN r.t_score IS NOT NULL AND r.t_rank <= %(n)s THEN r.t_rank END
        FROM ({_scope_seen("m")}) s
        LEFT JOIN r ON r.v_rank <= %(n)s OR (r.t_score IS NOT NULL AND r.t_rank <= %(n)s)
    """  # noqa: S608 - only constant fragments are interpolated


@dataclass
class SearchResult:
    passages: list[RetrievedPassage]
    plan: str = ""
    # knowledge_bases_for_search(scope_kb_ids) as of the statement's snapshot: the caller compares
    # it with the scope it planned with (a model changed, a knowledge base went or grew)
    knowledge_bases: list[tuple[int, str, int]] = field(default_factory=list)


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
    scope_kb_ids: Sequence[int] | None = None,
) -> SearchResult:
    """Top k passages by fused rank; `query_vector` skips embedding `query` when given.

    One statement, plus `hnsw.ef_search` when an index plan needs a value this connection does
    not have yet, plus the exact scan in the rare case an index plan found fewer than
    min(n, available) rows. The result reports the knowledge bases `scope_kb_ids` (default: the
    scope's) as that statement saw them.
    """
    if query_vector is None:
        query_vector = get_embedder(scope.embedding_model or None).embed_query(query)
    qvec = vector_literal(query_vector)
    n = max(4 * k, 20)
    plan = vector_plan(scope, n)
    kb_ids = [int(kb_id) for kb_id in (scope.knowledge_base_ids if scope_kb_ids is None else scope_kb_ids)]
    with connection.cursor() as cursor:
        _prepare(cursor, plan)
        params = _params(
            scope, qvec, n, query=query, rank_max=_rank_max(n), scope_kbs=kb_ids, **dict(plan.params)
        )  # fmt: skip
        cursor.execute(_search_sql(scope, plan), params)
        rows = cursor.fetchall()
        if plan.name != "exact" and rows and rows[0][3] < min(n, scope.available):
            plan = vector_plan(scope, n, exact=True)
            cursor.execute(_search_sql(scope, plan), params)
            rows = cursor.fetchall()
    ids, models, sizes = (rows[0][0] or [], rows[0][1] or [], rows[0][2] or []) if rows else ([], [], [])
    now = [(kb_id, model, int(size)) for kb_id, model, size in zip(ids, models, sizes, strict=True)]
    scored: list[tuple[float, float, int, tuple]] = []
    for row in rows:
        if row[4] is None:  # the LEFT JOIN's row when nothing matched
            continue
        similarity = float(row[13])
        if min_score is not None and similarity < min_score:
            continue
        score = sum(1.0 / (RRF_K + rank) for rank in (row[14], row[15]) if rank is not None)
        scored.append((score, similarity, row[4], row))
    scored.sort(key=lambda item: (-item[0], -item[1], item[2]))
    passages = [
        RetrievedPassage(
            chunk_id=row[4],
            document_id=row[5],
            knowledge_base_id=row[6],
            text=row[7],
            score=score,
            document_title=row[11],
            page=row[8],
            url=(row[10] or row[12] or None),
            heading_path=list(json.loads(row[9]) if isinstance(row[9], str) else row[9] or []),
            snippet=snippet_for(row[7], query),  # only for the k kept: it scans the chunk's text
            similarity=similarity,
            vector_rank=row[14],
            text_rank=row[15],
        )
        for score, similarity, _chunk_id, row in scored[:k]
    ]
    return SearchResult(passages, plan.name, now)
