"""Running searches: the scope read, each half on its own (vector_candidates, text_candidates)
and hybrid_search, the one statement behind chunk_search."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from ..embeddings import get_embedder
from .decode import SearchResult, passages_from, rows_by_name, scope_seen
from .sql import (
    KBS_SQL,
    SearchScope,
    exact_sql,
    params,
    prepare,
    rank_max,
    search_sql,
    text_ctes,
    vector_literal,
    vector_plan,
)


def scope_available(*, tenant_id: int, knowledge_base_ids: list[int]) -> int:
    """Visible chunks in the tenant's knowledge bases among the ids."""
    return sum(
        available
        for _kb_id, _model, available in knowledge_bases_for_search(
            tenant_id=tenant_id, knowledge_base_ids=knowledge_base_ids
        )
    )


def knowledge_bases_for_search(*, tenant_id: int, knowledge_base_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    """(id, embedding model, visible chunks) of the tenant's knowledge bases among the ids, by id:
    one round trip. Plain SQL with the tenant filter written out, like the search statement itself:
    building the equivalent ORM query cost ~2 ms of Python per search."""
    with connection.cursor() as cursor:
        cursor.execute(
            KBS_SQL + " ORDER BY kb.id",
            {"tenant": tenant_id, "scope_kbs": [int(kb_id) for kb_id in knowledge_base_ids]},
        )
        return [(kb_id, model, int(available)) for kb_id, model, available in cursor.fetchall()]


def exact_candidates(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    with connection.cursor() as cursor:
        cursor.execute(exact_sql(), params(scope, qvec, n))
        return [(chunk_id, float(dist)) for chunk_id, dist in cursor.fetchall()]


def hnsw_candidates(scope: SearchScope, qvec: str, n: int) -> list[tuple[int, float]]:
    """The shared per-dimension index plan on its own (no exact fallback)."""
    plan = vector_plan(scope, n, index=True)
    with connection.cursor() as cursor:
        prepare(cursor, plan)
        cursor.execute(plan.sql, params(scope, qvec, n, **dict(plan.params)))
        return [(chunk_id, float(dist)) for chunk_id, dist in cursor.fetchall()]


def vector_candidates(scope: SearchScope, query_vector: Sequence[float], n: int) -> tuple[list[tuple[int, float]], str]:
    """Up to n (chunk_id, cosine distance) pairs, nearest first, and which plan produced them.

    The vector half of hybrid_search on its own (hybrid_search runs the same SQL inside its one
    statement). An index plan that leaves fewer than min(n, available) rows falls back to exact.
    """
    qvec = vector_literal(query_vector)
    plan = vector_plan(scope, n)
    with connection.cursor() as cursor:
        prepare(cursor, plan)
        cursor.execute(plan.sql, params(scope, qvec, n, **dict(plan.params)))
        rows = [(chunk_id, float(dist)) for chunk_id, dist in cursor.fetchall()]
    if plan.name != "exact" and len(rows) < min(n, scope.available):
        return exact_candidates(scope, qvec, n), plan.name + "+exact"
    return rows, plan.name


def text_candidates(scope: SearchScope, query: str, n: int) -> list[int]:
    """Up to n chunk ids matching the query's words, best first: the full-text half on its own."""
    ctes = text_ctes(scope)
    with_ = ",\n".join(f"{name} AS MATERIALIZED ({sql})" for name, sql in ctes)
    union = " UNION ALL ".join(f"SELECT id, rank FROM {name}" for name, _ in ctes)  # noqa: S608
    sql = f"WITH {with_} SELECT id FROM ({union}) u ORDER BY rank"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params(scope, "", n, query=query, rank_max=rank_max(n)))
        return [chunk_id for (chunk_id,) in cursor.fetchall()]


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
        prepare(cursor, plan)
        values = params(scope, qvec, n, query=query, rank_max=rank_max(n), scope_kbs=kb_ids, **dict(plan.params))
        cursor.execute(search_sql(scope, plan), values)
        rows = rows_by_name(cursor)
        if plan.name != "exact" and rows and rows[0]["found"] < min(n, scope.available):
            plan = vector_plan(scope, n, exact=True)
            cursor.execute(search_sql(scope, plan), values)
            rows = rows_by_name(cursor)
    return SearchResult(passages_from(rows, query=query, k=k, min_score=min_score), plan.name, scope_seen(rows))
