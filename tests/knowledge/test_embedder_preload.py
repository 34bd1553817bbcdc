"""The web process loads the embedding model at start-up, in a thread, not in the first turn."""

from __future__ import annotations

from knowledge.embeddings import LocalMiniLM, get_embedder, preload_default_embedder_in_background


def test_the_background_preload_leaves_the_default_model_loaded(settings):
    settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    thread = preload_default_embedder_in_background()
    thread.join(timeout=300)
    assert not thread.is_alive()
    embedder = get_embedder()
    assert isinstance(embedder, LocalMiniLM) and embedder._model is not None
    assert len(embedder.embed_query("hello")) == embedder.dimension
