"""The local model's query embeddings, computed in a child process of their own.

Why a process: the web process (daphne) runs the answer pipeline on several threads, and a
query embedding there (~13 ms of torch on one core) gives the GIL back and takes it again a few
times per forward pass. Each time another thread is busy in Python (the turn's database work, the
event loop), taking it back waits up to the interpreter's switch interval (5 ms). Measured: a
query went from 13 ms alone to 30 ms next to one busy Python thread (and not at all slower next to
a busy *process*); in the answer benchmark the turn's first token came ~5 ms sooner at p50 with
the embedding in a child. The child has one Python thread, so nothing contends for its GIL.

Protocol: one JSON object per line on the child's stdin and stdout. The child first writes
{"ready": pid} once the model is loaded (or {"error": ...} and exits), then answers each
{"text": ...} with {"vector": [...]} or {"error": message, "code": code}. Floats survive the
JSON round trip exactly (shortest repr of each float32 value), so the vectors equal the
in-process ones. The child exits when its stdin closes, i.e. when this process is gone.

Run the child by hand: `python -m knowledge.query_process` (it reads queries from stdin).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)

# Set in the child's environment: its own embed_query computes in-process.
IN_CHILD_ENV = "KNOWLEDGE_QUERY_EMBEDDING_PROCESS"


class QueryEmbeddingProcess:
    """A handle on one child that embeds queries with the local model. Thread-safe: requests
    are sent one at a time (the child computes one at a time anyway). A child that died, hung or
    answered garbage is killed; when it had been serving, a new one is started and gets the
    request once more."""

    def __init__(
        self,
        *,
        command: list[str] | None = None,
        start_timeout: float | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.command = command or [sys.executable, "-m", "knowledge.query_process"]
        self.start_timeout = (
            start_timeout if start_timeout is not None else settings.KNOWLEDGE_QUERY_PROCESS_START_TIMEOUT
        )
        self.request_timeout = (
            request_timeout if request_timeout is not None else settings.KNOWLEDGE_QUERY_PROCESS_REQUEST_TIMEOUT
        )
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid = 0
        self._buffer = b""

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None and self._owner_pid == os.getpid() else None

    def start(self) -> None:
        """Start the child and wait until its model is loaded (a no-op when it is running)."""
        with self._lock:
            self._ensure_started()

    def embed(self, text: str) -> list[float]:
        from .embeddings import EmbeddingError

        request = orjson.dumps({"text": text}) + b"\n"
        with self._lock:
            for _attempt in (1, 2):
                new_child = self.pid is None  # none yet, or it exited while idle: this query starts one
                try:
                    self._ensure_started()
                    reply = self._exchange(request)
                except _ChildFailed as exc:
                    self._kill()
                    # A child that was running may have died of something else (killed for memory,
                    # a crash): a new one gets the query. A new one that fails is reported, so a
                    # query waits for at most one start.
                    if new_child or exc.final:
                        raise EmbeddingError(str(exc), code=exc.code, retryable=not exc.final) from None
                    logger.warning("query embedding process failed (%s); starting a new one", exc)
                    continue
                if "vector" in reply:
                    return reply["vector"]
                # The child is fine; this text was refused (it says why).
                raise EmbeddingError(str(reply.get("error")), code=str(reply.get("code") or "embedding_failed"))
        raise AssertionError("unreachable")

    def cpu_seconds(self) -> float | None:
        """The child's CPU time so far (user + system), where /proc tells it; None otherwise."""
        pid = self.pid
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Close the child's stdin (it exits) and wait for it briefly, then kill it."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None or self._owner_pid != os.getpid():
                return
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            finally:
                proc.stdout.close()  # type: ignore[union-attr]

    # --- with the lock held ---

    def _ensure_started(self) -> None:
        if self._proc is not None and self._owner_pid != os.getpid():
            self._proc = None  # inherited across a fork: that child belongs to the parent process
        if self._proc is not None and self._proc.poll() is not None:
            logger.warning(
                "query embedding process %s exited (status %s); starting a new one",
                self._proc.pid,
                self._proc.returncode,
            )
            self._kill()
        if self._proc is not None:
            return
        env = {**os.environ, IN_CHILD_ENV: "false"}
        started = time.perf_counter()
        self._proc = subprocess.Popen(  # noqa: S603 - our own module, no user input
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=settings.BASE_DIR, env=env
        )
        self._owner_pid = os.getpid()
        self._buffer = b""
        reply = self._read_reply(self.start_timeout, "start")
        if "ready" not in reply:
            raise _ChildFailed(
                str(reply.get("error") or "it did not start"),
                code=str(reply.get("code") or "query_embedder_unavailable"),
                final=True,
            )
        logger.info("query embedding process %s ready in %.1fs", self._proc.pid, time.perf_counter() - started)

    def _exchange(self, request: bytes) -> dict[str, Any]:
        stdin: IO[bytes] = self._proc.stdin  # type: ignore[union-attr,assignment]
        try:
            stdin.write(request)
            stdin.flush()
        except OSError as exc:
            raise _ChildFailed(f"writing to it failed: {exc}") from None
        return self._read_reply(self.request_timeout, "answer")

    def _read_reply(self, timeout: float, what: str) -> dict[str, Any]:
        """The next line the child writes, as JSON, within `timeout` seconds."""
        fd = self._proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _ChildFailed(f"it did not {what} within {timeout:g} s")
            data = os.read(fd, 1 << 16)
            if not data:
                code = self._proc.poll()  # type: ignore[union-attr]
                raise _ChildFailed(f"it exited (status {code}) before it could {what}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            reply = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise _ChildFailed(f"it wrote something that is not JSON: {line[:80]!r}") from None
        if not isinstance(reply, dict):
            raise _ChildFailed(f"it wrote {type(reply).__name__}, not an object")
        return reply

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or self._owner_pid != os.getpid():
            return
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


class _ChildFailed(Exception):
    def __init__(self, message: str, *, code: str = "query_embedder_unavailable", final: bool = False) -> None:
        super().__init__(f"The query embedding process failed: {message}.")
        self.code = code
        self.final = final  # a second child would fail the same way (e.g. the model's file is wrong)


_process: QueryEmbeddingProcess | None = None
_process_lock = threading.Lock()


def query_embedding_process() -> QueryEmbeddingProcess:
    """This process's child (one per process; started on first use)."""
    global _process
    with _process_lock:
        if _process is None:
            _process = QueryEmbeddingProcess()
        return _process


def main() -> int:
    """The child: load the model, then answer one query per line until stdin closes."""
    import signal

    # The parent's Ctrl-C reaches its whole process group: this child just ends with it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
    import django

    django.setup()
    from .embeddings import EmbeddingError, LocalMiniLM, get_embedder

    out = sys.stdout.buffer
    # Anything else that writes to stdout (a library's print) would corrupt the protocol.
    sys.stdout = sys.stderr
    embedder = get_embedder(LocalMiniLM.model_name)
    try:
        embedder.query_encoder()  # type: ignore[attr-defined]
    except EmbeddingError as exc:
        out.write(orjson.dumps({"error": str(exc), "code": exc.code}) + b"\n")
        out.flush()
        return 1
    out.write(orjson.dumps({"ready": os.getpid()}) + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = orjson.loads(line)
            text = request["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            reply: dict[str, Any] = {"error": f"Bad request to the query embedder: {exc}", "code": "bad_request"}
        else:
            try:
                reply = {"vector": embedder.embed_query(text)}
            except EmbeddingError as exc:
                reply = {"error": str(exc), "code": exc.code}
            except Exception:  # one query's failure is that query's error, not the child's end
                logger.exception("embedding a query failed")
                reply = {"error": "The query could not be embedded.", "code": "embedding_failed"}
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
