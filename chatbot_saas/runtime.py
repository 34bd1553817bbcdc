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
- each bot's turn configuration (its plan, published prompt, knowledge bases and the tenant's
  provider credentials; conversations.pipeline.config): read once per TURN_CONFIG_TTL seconds
  rather than in four queries per turn, forgotten at once when this process saves one of them;
- the memory-refresh batch: conversations settled in the last MEMORY_REFRESH_BATCH_SECONDS,
  and the timer that queues them.

Every entry is a cache or a hint: losing it costs a query or an embedding, never a wrong answer.
Only the turn configuration can be out of date, and by at most TURN_CONFIG_TTL seconds, for a
change made by another process (see conversations.pipeline.config).
Lower apps (knowledge) read and write it too, so it lives here and imports no app. Tests call
reset() between cases (tests/conftest.py); a short-lived process may call it before it exits.
"""

from __future__ import annotations

import threading
import time
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

# bot id -> (time.monotonic() deadline, tenant id, the bot's turn configuration)
turn_configs: dict[int, tuple[float, int, Any]] = {}
TURN_CONFIGS_MAX = 10_000  # bots; past it the cache starts afresh (an entry is a few small rows)
# How long another process's change to a bot's configuration may go unseen here (this process's
# own changes are seen at once): a dashboard edit reaches every server within this time.
TURN_CONFIG_TTL = 2.0
# Bumped by every forget: a read that began before it must not store what it read (it may predate
# the change), so remember_turn_config stores only under the generation its read began in.
_turn_config_generation = 0
_turn_config_lock = threading.Lock()

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


def turn_config(tenant_id: int, bot_id: int) -> tuple[Any | None, int]:
    """The bot's remembered turn configuration if still fresh (else None), and the generation
    to pass to remember_turn_config after reading it afresh."""
    generation = _turn_config_generation
    entry = turn_configs.get(bot_id)
    if entry is not None and entry[1] == tenant_id and entry[0] > time.monotonic():
        return entry[2], generation
    return None, generation


def remember_turn_config(tenant_id: int, bot_id: int, config: Any, generation: int) -> None:
    """Keep `config` for TURN_CONFIG_TTL seconds, unless something was forgotten since its read began."""
    with _turn_config_lock:
        if generation != _turn_config_generation:
            return
        if len(turn_configs) >= TURN_CONFIGS_MAX and bot_id not in turn_configs:
            turn_configs.clear()
        turn_configs[bot_id] = (time.monotonic() + TURN_CONFIG_TTL, tenant_id, config)


def forget_turn_configs(tenant_id: int | None = None) -> None:
    """Forget the turn configurations of the tenant's bots (of every tenant's, without one)."""
    global _turn_config_generation
    with _turn_config_lock:
        _turn_config_generation += 1
        if tenant_id is None:
            turn_configs.clear()
            return
        for bot_id in [bot_id for bot_id, entry in turn_configs.items() if entry[1] == tenant_id]:
            del turn_configs[bot_id]


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
    forget_turn_configs()
