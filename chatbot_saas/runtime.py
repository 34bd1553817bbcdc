"""Every piece of process-wide state of the answer path, in one place, with reset().

What lives here, and why it is per process:
- the answer path's thread pools ("db": ANSWER_DB_THREADS threads, each keeping its own
  database connection; "embed": ANSWER_EMBED_THREADS threads for query embeddings), so
  concurrent turns do not queue behind one thread;
- the connections those pool threads opened, so reset() can close them;
- remembered retrieval scopes per (tenant, knowledge bases) and the knowledge-base indexes seen
  to exist: plan inputs that save a query per search, always re-checked by the search itself;
- the embedding models of each bot's knowledge bases at its last turn: a hint for starting the
  query embedding early;
- session settings already sent on each database connection (hnsw.ef_search);
- the memory-refresh batch: conversations settled in the last MEMORY_REFRESH_BATCH_SECONDS,
  and the timer that queues them.

Every entry is a cache or a hint: losing it costs a query or an embedding, never a wrong answer.
Lower apps (knowledge) read and write it too, so it lives here and imports no app. Tests call
reset() between cases (tests/conftest.py); a short-lived process may call it before it exits.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
_pool_thread = threading.local()
_pool_connections: list[Any] = []  # the database connections of the pool threads, one per thread

# (tenant id, sorted knowledge base ids) -> [(kb id, embedding model, chunks available)]
retrieval_scopes: dict[tuple[int, tuple[int, ...]], list[tuple[int, str, int]]] = {}
RETRIEVAL_SCOPES_MAX = 4096
# (knowledge base id, dimension) of per-knowledge-base HNSW indexes seen to exist
kb_indexes_seen: set[tuple[int, int]] = set()
# bot id -> the embedding models of its knowledge bases at its last turn
kb_models_hint: dict[int, tuple[str, ...]] = {}
KB_MODELS_HINT_SIZE = 10_000
# driver connection -> {setting: value} sent on it; a reconnect is a new driver connection
session_settings: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()

# The memory-refresh batch (conversations.tasks.memory_refresh_enqueue): {conversation id: tenant id}
refresh_pending: dict[int, int] = {}
refresh_lock = threading.Lock()
refresh_timer: threading.Timer | None = None


def pool(name: str, size: int) -> ThreadPoolExecutor:
    """The process's thread pool called `name`, created with `size` threads on first use."""
    with _lock:
        if name not in _pools:
            _pools[name] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"answer-{name}")
        return _pools[name]


def register_pool_connection() -> None:
    """Note the calling pool thread's database connection once, so reset() can close it."""
    if getattr(_pool_thread, "registered", False):
        return
    with _lock:
        _pool_connections.append(connections[DEFAULT_DB_ALIAS])
    _pool_thread.registered = True


def remember_scope(key: tuple[int, tuple[int, ...]], kbs: list[tuple[int, str, int]]) -> None:
    if len(retrieval_scopes) >= RETRIEVAL_SCOPES_MAX and key not in retrieval_scopes:
        retrieval_scopes.clear()
    retrieval_scopes[key] = kbs


def remember_kb_models(bot_id: int, models: tuple[str, ...]) -> None:
    if kb_models_hint.get(bot_id) != models:
        if len(kb_models_hint) >= KB_MODELS_HINT_SIZE:
            kb_models_hint.clear()
        kb_models_hint[bot_id] = models


def reset() -> None:
    """Forget everything above: stop the pools (waiting for their work), close the connections
    their threads opened, cancel the memory-refresh timer without sending its batch, and clear
    the caches. The next turn starts afresh. A connection the caller itself uses is left open
    (a test may lend its connection to the pool threads)."""
    global refresh_timer
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for executor in pools:
        executor.shutdown(wait=True)
    with _lock:
        opened = list(_pool_connections)
        _pool_connections.clear()
    own = connections[DEFAULT_DB_ALIAS]
    for wrapper in opened:
        if wrapper is own:
            continue
        # Its thread has ended, so closing it from here cannot race with a query.
        wrapper.inc_thread_sharing()
        try:
            wrapper.close()
        finally:
            wrapper.dec_thread_sharing()
    with refresh_lock:
        if refresh_timer is not None:
            refresh_timer.cancel()
        refresh_timer = None
        refresh_pending.clear()
    retrieval_scopes.clear()
    kb_indexes_seen.clear()
    kb_models_hint.clear()
    session_settings.clear()
