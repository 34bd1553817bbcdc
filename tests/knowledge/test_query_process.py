"""Visitors' queries are embedded in a child process (knowledge/query_process.py) by the ONNX
export of the verified weights: the same vectors as in-process, and a child that dies, hangs or
writes garbage costs one query an error at worst, never a stuck turn or an orphan process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from django.conf import settings as django_settings

from knowledge.embeddings import EmbeddingError, get_embedder, load_query_encoder, query_graph_path
from knowledge.query_process import IN_CHILD_ENV, QueryEmbeddingProcess

# Each test starts real child processes that load ONNX Runtime (and some the model): `make test` only.
pytestmark = pytest.mark.slow

QUESTION = "How do I reset my password?"


@pytest.fixture
def child():
    process = QueryEmbeddingProcess()
    yield process
    process.close()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_until_gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


def test_the_child_computes_exactly_the_in_process_vector(child, settings):
    settings.KNOWLEDGE_QUERY_EMBEDDING_PROCESS = False
    expected = get_embedder("all-MiniLM-L6-v2").embed_query(QUESTION)
    # Bit for bit: the same graph on one thread, and JSON keeps each float exactly.
    assert child.embed(QUESTION) == expected
    assert child.cpu_seconds() is not None and child.cpu_seconds() > 0


def test_embed_query_goes_to_the_process_wide_child_by_default(settings):
    from knowledge.query_process import query_embedding_process

    assert settings.KNOWLEDGE_QUERY_EMBEDDING_PROCESS is True
    vector = get_embedder("all-MiniLM-L6-v2").embed_query(QUESTION)
    assert len(vector) == 384 and query_embedding_process().pid is not None


def test_a_killed_child_is_replaced_and_the_query_still_answered(child, caplog):
    first = child.embed(QUESTION)
    pid = child.pid
    os.kill(pid, signal.SIGKILL)
    assert child.embed(QUESTION) == first
    assert child.pid not in (None, pid)
    assert "starting a new one" in caplog.text


def test_a_child_that_died_while_idle_is_replaced_before_the_next_query(child, caplog):
    first = child.embed(QUESTION)
    pid = child.pid
    os.kill(pid, signal.SIGKILL)
    assert _wait_until_gone(pid)
    assert child.embed(QUESTION) == first
    assert child.pid not in (None, pid)
    # Seen exited before the query is sent, or when writing to it fails: either way a new one answers.
    assert "starting a new one" in caplog.text


@pytest.mark.parametrize(
    "script",
    [
        "import time; time.sleep(120)",  # never says it is ready
        "print('not json', flush=True); import time; time.sleep(120)",  # garbage
        "import sys; sys.exit(3)",  # dies at once
    ],
    ids=["hangs", "garbage", "dies"],
)
def test_a_child_that_fails_gives_a_retryable_embedding_error_and_is_not_left_running(script):
    process = QueryEmbeddingProcess(command=[sys.executable, "-c", script], start_timeout=1, request_timeout=1)
    with pytest.raises(EmbeddingError) as raised:
        process.embed(QUESTION)
    assert raised.value.code == "query_embedder_unavailable" and raised.value.retryable
    assert "query embedding process failed" in str(raised.value)
    assert process.pid is None  # killed, not left behind


def _start_real_child() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "knowledge.query_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=django_settings.BASE_DIR,
        env={**os.environ, IN_CHILD_ENV: "false"},
    )
    assert "ready" in orjson.loads(proc.stdout.readline())
    return proc


def test_the_child_refuses_malformed_requests_and_keeps_serving():
    proc = _start_real_child()
    try:
        for line in (b"not json", b'{"text": 5}', b'{"txt": "hello"}', b"[1, 2]"):
            proc.stdin.write(line + b"\n")
            proc.stdin.flush()
            reply = orjson.loads(proc.stdout.readline())
            assert reply["code"] == "bad_request", line
        proc.stdin.write(orjson.dumps({"text": "héllo " * 2000}) + b"\n")  # long: truncated like encode()
        proc.stdin.flush()
        assert len(orjson.loads(proc.stdout.readline())["vector"]) == 384
    finally:
        proc.stdin.close()  # its stdin closes: it exits on its own
        assert proc.wait(timeout=60) == 0
        proc.stdout.close()


def test_the_child_exits_when_its_parent_dies_without_closing_it(tmp_path):
    # A parent killed outright (no atexit, no close): the child sees its stdin close and exits.
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, django
            django.setup()
            from knowledge.query_process import QueryEmbeddingProcess
            process = QueryEmbeddingProcess()
            process.embed("hello")
            print(process.pid, flush=True)
            os.kill(os.getpid(), 9)
            """
        )
    )
    parent = subprocess.run(
        [sys.executable, str(script)],
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(django_settings.BASE_DIR)},
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr[-2000:]
    child_pid = int(parent.stdout.split()[0])
    assert _wait_until_gone(child_pid), f"query embedding process {child_pid} outlived its parent"


def test_a_damaged_query_graph_is_exported_again(settings, tmp_path, caplog):
    settings.VAR_DIR = tmp_path
    embedder = get_embedder("all-MiniLM-L6-v2")
    model = embedder.load()
    expected = model.encode([QUESTION], normalize_embeddings=True, show_progress_bar=False)[0]
    encoder = load_query_encoder(embedder.load)
    path = query_graph_path()
    assert path.is_relative_to(tmp_path) and path.with_suffix(".sha256").exists()
    assert np.abs(np.array(encoder(QUESTION)) - expected).max() < 1e-5
    with path.open("r+b") as graph:  # one flipped byte in the middle of the weights
        graph.seek(path.stat().st_size // 2)
        byte = graph.read(1)
        graph.seek(-1, os.SEEK_CUR)
        graph.write(bytes([byte[0] ^ 0xFF]))
    encoder = load_query_encoder(embedder.load)
    assert "does not match its recorded hash" in caplog.text
    assert np.abs(np.array(encoder(QUESTION)) - expected).max() < 1e-5
