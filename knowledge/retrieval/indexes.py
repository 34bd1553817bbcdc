"""Per-knowledge-base HNSW indexes: create, replace, drop and inspect them, and the session
settings their index scans read (hnsw.ef_search)."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import connection

from chatbot_saas import runtime


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
    from ..models import EMBEDDING_DIMENSIONS

    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    with connection.cursor() as cursor:
        for dim in dimensions or sorted(set(EMBEDDING_DIMENSIONS.values())):
            cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {kb_index_name(knowledge_base_id, dim)}")
    for dim in dimensions or sorted(set(EMBEDDING_DIMENSIONS.values())):
        runtime.kb_indexes_seen.discard((int(knowledge_base_id), int(dim)))


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
        cursor.execute(f"SELECT {lock}(%s, %s)", [BUILD_LOCK, kb_id])
        if not cursor.fetchone()[0]:
            return kb_index_exists(kb_id, dim)
    try:
        _kb_index_build(kb_id, dim)
    finally:
        if not in_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BUILD_LOCK, kb_id])
    return kb_index_exists(kb_id, dim)


BUILD_LOCK = 0x6B62  # advisory lock class of kb_index_create ("kb")


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


def kb_index_usable(knowledge_base_id: int, dimension: int) -> bool:
    """kb_index_exists, remembered once true: saves a catalog query per search. A remembered index
    that was dropped since still gives correct results (the same SQL becomes an exact scan)."""
    key = (int(knowledge_base_id), int(dimension))
    if key not in runtime.kb_indexes_seen and kb_index_exists(*key):
        runtime.kb_indexes_seen.add(key)
    return key in runtime.kb_indexes_seen


def set_session_config(cursor: Any, name: str, value: int) -> None:
    """Set a session setting (hnsw.ef_search) before the statement whose index scan reads it.

    Session-wide rather than SET LOCAL in a transaction (BEGIN and COMMIT would be two more
    round trips), and skipped when this connection has the value already, so a search stays one
    statement. Outside a transaction the value is committed at once and remembered on the
    driver connection, in the runtime (a reconnect starts afresh); inside one a rollback would undo it, so it is
    set every time and forgotten.
    """
    known = runtime.session_settings.setdefault(connection.connection, {})
    if not connection.in_atomic_block and known.get(name) == value:
        return
    cursor.execute("SELECT set_config(%s, %s, false)", [name, str(int(value))])
    if connection.in_atomic_block:
        known.pop(name, None)
    else:
        known[name] = value
