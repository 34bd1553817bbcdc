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

The modules:
- `indexes`: the per-knowledge-base indexes (create, replace, drop, inspect) and the session
  settings their scans read;
- `sql`: composing the SQL: the scope read, the vector plans, the full-text tiers and the one
  statement hybrid_search runs (one scan for small scopes);
- `decode`: that statement's rows, read by column name, into passages and the scope it saw;
- `search`: running them: hybrid_search, and vector_candidates / text_candidates for each half alone.
"""

from .decode import RRF_K, SNIPPET_CHARS, SearchResult, snippet_for
from .indexes import (
    kb_ef_search,
    kb_index_create,
    kb_index_current,
    kb_index_exists,
    kb_index_name,
    kb_index_options,
    kb_indexes_drop,
)
from .search import (
    hybrid_search,
    knowledge_bases_for_search,
    scope_available,
    text_candidates,
    vector_candidates,
)
from .sql import SearchScope, VectorPlan, hnsw_ef, vector_literal, vector_plan

__all__ = [
    "RRF_K",
    "SNIPPET_CHARS",
    "SearchResult",
    "SearchScope",
    "VectorPlan",
    "hnsw_ef",
    "hybrid_search",
    "kb_ef_search",
    "kb_index_create",
    "kb_index_current",
    "kb_index_exists",
    "kb_index_name",
    "kb_index_options",
    "kb_indexes_drop",
    "knowledge_bases_for_search",
    "scope_available",
    "snippet_for",
    "text_candidates",
    "vector_candidates",
    "vector_literal",
    "vector_plan",
]
