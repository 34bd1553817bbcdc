"""The web process prepares query embedding at start-up, in a thread, not in the first turn."""

from __future__ import annotations

from knowledge.embeddings import LocalMiniLM, get_embedder, preload_default_embedder_in_background
from knowledge.query_process import query_embedding_process


def test_the_background_preload_starts_the_query_embedding_process(settings):
    settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    thread = preload_default_embedder_in_background()
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert query_embedding_process().pid is not None
    assert len(get_embedder().embed_query("hello")) == LocalMiniLM.dimension


def test_without_the_process_the_background_preload_builds_the_query_path_here(settings):
    settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    settings.KNOWLEDGE_QUERY_EMBEDDING_PROCESS = False
    thread = preload_default_embedder_in_background()
    thread.join(timeout=300)
    assert not thread.is_alive()
    embedder = get_embedder()
    assert isinstance(embedder, LocalMiniLM) and embedder._query_encoder is not None
    assert len(embedder.embed_query("hello")) == embedder.dimension
