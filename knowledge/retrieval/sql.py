"""The SQL of a search: scopes, vector plans (exact scan, per-knowledge-base index, shared index),
the full-text tiers and the one-statement hybrid search. Strings and parameters only, apart from
vector_plan's look-ups (the table's size, whether a knowledge base has its own index)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from .indexes import kb_ef_search, kb_index_usable, set_session_config

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


# Every chunk a search reads is of the model the query vector was made with: a re-index swap that
# commits between reading the scope and searching then hides the chunks instead of comparing
# vectors of two dimensions (pgvector raises), and the caller retries (see SearchResult.knowledge_bases).
_CHUNK_SCOPE = "c.tenant_id = %(tenant)s AND c.embedding_model = %(model)s"


def params(scope: SearchScope, qvec: str, n: int, **extra: Any) -> dict[str, Any]:
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
KBS_SQL = """
    SELECT kb.id, kb.embedding_model,
           (SELECT coalesce(sum(d.chunk_count), 0) FROM knowledge_document d
            WHERE d.knowledge_base_id = kb.id AND d.tenant_id = %(tenant)s AND d.active_version IS NOT NULL) AS available
    FROM knowledge_knowledgebase kb
    WHERE kb.tenant_id = %(tenant)s AND kb.id = ANY(%(scope_kbs)s)
"""


def exact_sql() -> str:
    return f"""
        SELECT c.id, c.embedding <=> %(qvec)s::vector AS dist
        FROM knowledge_chunk c {_VISIBLE_IN_KBS}
        WHERE {_CHUNK_SCOPE} AND c.knowledge_base_id = ANY(%(kbs)s) AND c.embedding_dim = %(dim)s
        ORDER BY dist LIMIT %(n)s
    """  # noqa: S608 - only constant fragments are interpolated


def table_rows(dimension: int) -> int:
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


def hnsw_sql(dim: int) -> str:
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


def kb_index_sql(kb_id: int, dim: int) -> str:
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
        return VectorPlan("exact", exact_sql())
    dim = int(scope.dimension)
    if len(scope.knowledge_base_ids) == 1 and kb_index_usable(scope.knowledge_base_ids[0], dim):
        ef = kb_ef_search(n=n, available=scope.available)
        sql = kb_index_sql(scope.knowledge_base_ids[0], dim)
        return VectorPlan("kb-hnsw", sql, (("hnsw.ef_search", ef),), (("ef", ef),))
    ef = hnsw_ef(n=n, available=scope.available, table_rows=table_rows(dim))
    return VectorPlan("hnsw", hnsw_sql(dim), (("hnsw.ef_search", ef),), (("ef", ef),))


def prepare(cursor: Any, plan: VectorPlan) -> None:
    for name, value in plan.settings:
        set_session_config(cursor, name, value)


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


def text_ctes(scope: SearchScope) -> list[tuple[str, str]]:
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


def rank_max(n: int) -> int:
    return max(n, settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES)


def _scope_seen(candidates: str) -> str:
    """The one row every search statement starts with: the scope as its snapshot saw it (kbs_now,
    as arrays by id) and how many vector candidates `candidates` holds."""
    return f"""
        SELECT array_agg(id ORDER BY id) AS kb_ids, array_agg(embedding_model ORDER BY id) AS kb_models,
               array_agg(available ORDER BY id) AS kb_available, (SELECT count(*) FROM {candidates}) AS found
        FROM kbs_now
    """  # noqa: S608 - a CTE name of ours


def search_sql(scope: SearchScope, plan: VectorPlan) -> str:
    """Both halves, the fusion inputs, the citation details and the scope read in one statement.

    One statement is one snapshot under READ COMMITTED, so the knowledge bases' models and sizes
    it reports (`kbs_now`, over %(scope_kbs)s: every knowledge base the caller asked for) are the
    ones its chunks were read under: the caller compares them with the scope it planned with and
    searches again when they differ. One round trip instead of five.
    """
    if plan.name == "exact" and scope.available <= settings.KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES:
        return _small_search_sql()
    text = text_ctes(scope)
    ctes = [("kbs_now", KBS_SQL), ("v", plan.sql), *text]
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
    """search_sql for a scope small enough to scan exactly and rank every full-text match of:
    one pass over its chunks computes both halves (distance, and rank of the chunks holding any
    query word) and carries the citation details, instead of two scans and a join back to the
    chunks. Same ranks as the two-CTE form; the same columns."""
    return f"""
        WITH kbs_now AS MATERIALIZED ({KBS_SQL}),
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
               CASE WHEN r.v_rank <= %(n)s THEN r.v_rank END AS v_rank,
               CASE WHEN r.t_score IS NOT NULL AND r.t_rank <= %(n)s THEN r.t_rank END AS t_rank
        FROM ({_scope_seen("m")}) s
        LEFT JOIN r ON r.v_rank <= %(n)s OR (r.t_score IS NOT NULL AND r.t_rank <= %(n)s)
    """  # noqa: S608 - only constant fragments are interpolated
