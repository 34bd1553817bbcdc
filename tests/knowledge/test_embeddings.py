"""The embedders: the local model's integrity and limits, and the OpenAI client's backoff."""

from __future__ import annotations

import json
import time

import pytest

from knowledge.embeddings import (
    MINILM_SAFETENSORS_SHA256,
    EmbeddingError,
    OpenAIEmbedder,
    _sha256_file,
    get_embedder,
    minilm_model_dir,
)
from tests.knowledge.httpserver import serve


def test_the_bundled_model_is_the_official_all_minilm_l6_v2_release():
    assert _sha256_file(minilm_model_dir() / "model.safetensors") == MINILM_SAFETENSORS_SHA256


def test_the_token_counter_is_not_truncated_at_128_like_the_bundled_tokenizer():
    assert get_embedder().count_tokens("word " * 600) == 600


def test_the_local_model_loads_once_and_embeds_normalised_vectors():
    embedder = get_embedder("all-MiniLM-L6-v2")
    assert get_embedder("all-MiniLM-L6-v2") is embedder
    vectors = embedder.embed_documents(["refund policy", "password reset"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-3


def test_an_unknown_model_name_is_refused():
    with pytest.raises(EmbeddingError):
        get_embedder("not-a-model")


def _embedding_response(count: int) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": [0.0] * 1536} for i in range(count)]
    return json.dumps({"object": "list", "data": data, "model": "text-embedding-3-small", "usage": {}}).encode()


def test_openai_embeddings_honour_retry_after_on_429(settings):
    calls: list[float] = []

    def answer():
        calls.append(time.monotonic())
        if len(calls) == 1:
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"error": {"message": "slow down"}}'
        return 200, {"Content-Type": "application/json"}, _embedding_response(2)

    with serve({"/v1/embeddings": answer}) as base:
        settings.KNOWLEDGE_OPENAI_BASE_URL = base + "/v1"
        vectors = OpenAIEmbedder().embed_documents(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 1536
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9


def test_openai_errors_other_than_rate_limits_fail_without_retrying(settings):
    calls = []

    def answer():
        calls.append(1)
        return 400, {"Content-Type": "application/json"}, b'{"error": {"message": "bad input"}}'

    with serve({"/v1/embeddings": answer}) as base:
        settings.KNOWLEDGE_OPENAI_BASE_URL = base + "/v1"
        with pytest.raises(EmbeddingError) as info:
            OpenAIEmbedder().embed_query("x")
    assert len(calls) == 1 and not info.value.retryable and "400" in str(info.value)


def test_the_openai_embedder_speaks_the_fake_openai_servers_embeddings_endpoint(settings):
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as fake:
        settings.KNOWLEDGE_OPENAI_BASE_URL, settings.KNOWLEDGE_OPENAI_API_KEY = fake.base_url, fake.api_key
        embedder = get_embedder("text-embedding-3-small")
        refund, card, password = embedder.embed_documents(["refund to card", "card refund", "reset password"])
        query = embedder.embed_query("refund")
    request = fake.requests[0]
    assert request.path == "/v1/embeddings" and request.body["model"] == "text-embedding-3-small"
    assert request.body["input"] == ["refund to card", "card refund", "reset password"]
    assert len(refund) == 1536 and abs(sum(x * x for x in refund) - 1) < 1e-5

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(query, refund) > cosine(query, password) and cosine(refund, card) > 0.8


QUERIES = [
    "How do I reset my password?",
    "x",
    "",
    "Ünïcödé àccents, café naïve résumé",
    "退款在五个工作日内到账。请写信到 jane@example.com",
    "e-mail: jane.doe+x@example.com, URL https://x.y/z?q=1#frag",
    "O'Reilly's \"quotes\" — dashes… and 😀 emoji ™",
    "  spaces\tand\nnewlines  ",
    "refund " * 400,  # past the model's 256 word pieces: truncated as encode() truncates
    "y" * 3000,
]


def test_a_query_embeds_exactly_as_the_model_encodes_it():
    """The one-query path (the ONNX export run by ONNX Runtime, in the query embedding process) is a
    speed-up, never a different vector."""
    import numpy as np

    embedder = get_embedder("all-MiniLM-L6-v2")
    model = embedder.load()
    for text in QUERIES:
        expected = model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
        got = np.array(embedder.embed_query(text), dtype=np.float32)
        assert got.shape == (384,) and np.abs(got - expected).max() < 1e-5, text[:40]
