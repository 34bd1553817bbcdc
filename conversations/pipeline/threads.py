"""Where the answer path's sync work runs: the ORM in a database thread, the query embedding in
an embedding thread. The pools themselves are process state (chatbot_saas.runtime)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from chatbot_saas import runtime
from knowledge.embeddings import embed_query_by_model
from tenants.context import tenant_context
from tenants.models import Tenant

T = TypeVar("T")


def _tidy_connection() -> None:
    # A pool thread keeps its connection between calls (a fixed pool bounds them, and connecting
    # costs more than most turn queries); one that failed is closed, so the next call reconnects.
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


async def in_db_thread(scope: Tenant | None, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a sync ORM function in a database thread with `scope` as the tenant context.

    The thread comes from a pool of ANSWER_DB_THREADS threads, each with its own connection, so
    concurrent turns do not queue behind one thread. 0 runs every call on the one thread asgiref
    keeps for thread-sensitive code (one turn's database work at a time per process).
    """

    def run() -> T:
        with tenant_context(scope):
            return fn(**kwargs)

    size = settings.ANSWER_DB_THREADS
    if size <= 0:
        return await sync_to_async(run, thread_sensitive=True)()

    def run_pooled() -> T:
        runtime.register_pool_connection()
        try:
            return run()
        finally:
            _tidy_connection()

    return await sync_to_async(run_pooled, thread_sensitive=False, executor=runtime.pool("db", size))()


def embedding_models_hint(bot_id: int) -> tuple[str, ...]:
    """The embedding models of the bot's knowledge bases at its last turn in this process: only a
    hint for starting the query embedding before they are read (turn_begin reads the truth; a
    wrong hint costs a wasted embedding or a late one, never a wrong answer). A bot not seen yet
    is assumed to use the default model: most bots have a knowledge base."""
    return runtime.kb_models_hint.get(bot_id, (settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL,))


def remember_embedding_models(bot_id: int, knowledge_bases: list[tuple[int, str]]) -> tuple[str, ...]:
    models = tuple(sorted({model for _kb_id, model in knowledge_bases}))
    runtime.remember_kb_models(bot_id, models)
    return models


def start_query_embedding(text: str, models: tuple[str, ...]) -> Future | None:
    """Embed the query under `models` in an embedding thread, now: it runs while turn_begin reads
    the turn's inputs and stores the messages, and retrieval then only runs SQL."""
    if not models:
        return None
    future = runtime.pool("embed", settings.ANSWER_EMBED_THREADS).submit(embed_query_by_model, text, models)
    # A turn that ends before retrieval (quota, refusal, stop) never reads it: mark any error seen.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future
