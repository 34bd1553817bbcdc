"""Real processes for integration tests: a Celery worker and an ASGI server (daphne or uvicorn), pointed at
the pytest-django test database and the test run's Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL with its database swapped for the test database pytest-django created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ManagedProcess:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _spawn(args: list[str], log_name: str, env: dict[str, str]) -> ManagedProcess:
    # One directory per xdist worker: both workers start "celery-session.log" and the like.
    log_dir = BASE_DIR / "var" / "test-logs" / os.environ.get("PYTEST_XDIST_WORKER", "main")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / log_name
    handle = log_path.open("wb")
    process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return ManagedProcess(process, log_path)


@contextmanager
def celery_worker(
    name: str = "test", concurrency: int = 1, queues: str | None = None, **env_extra: str
) -> Iterator[ManagedProcess]:
    """A real `celery worker` subprocess, ready when it answers a ping. `queues` (comma-separated)
    keeps it to those queues, so a test's tasks are not taken by the session's live_worker."""
    from chatbot_saas.celery import app

    hostname = f"{name}-{os.getpid()}-{time.monotonic_ns()}@localhost"
    worker = _spawn(
        [
            str(BIN / "celery"),
            "-A",
            "chatbot_saas",
            "worker",
            "-l",
            "info",
            "-c",
            str(concurrency),
            "-n",
            hostname,
            "--without-gossip",
            "--without-mingle",
            *(["-Q", queues] if queues else []),
        ],
        f"celery-{name}.log",
        child_env(**env_extra),
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{worker.log()[-3000:]}")
        yield worker
    finally:
        worker.stop()


def asgi_server_command(server: str, port: int, max_frame_bytes: str, workers: int = 1) -> list[str]:
    """The web process as the Procfile starts it (chatbot_saas/asgi_server.py), on `port`."""
    from chatbot_saas.asgi_server import launcher_command, server_command

    if workers > 1:
        return launcher_command(
            server, host="127.0.0.1", port=port, max_frame_bytes=int(max_frame_bytes), workers=workers
        )
    return server_command(server, host="127.0.0.1", port=port, max_frame_bytes=int(max_frame_bytes))


@contextmanager
def daphne_server(**env_extra: str) -> Iterator[tuple[str, ManagedProcess]]:
    """A real daphne serving the ASGI app; yields (base_url, process)."""
    with asgi_server("daphne", **env_extra) as running:
        yield running


@contextmanager
def asgi_server(server: str, workers: int = 1, **env_extra: str) -> Iterator[tuple[str, ManagedProcess]]:
    """A real ASGI server (`daphne` or `uvicorn`) serving the app, in `workers` processes on one
    port (WEB_WORKERS); yields (base_url, process)."""
    # Most live tests never search a knowledge base: load the embedding model only when asked.
    env_extra.setdefault("KNOWLEDGE_PRELOAD_EMBEDDER", "false")
    port = free_port()
    # The same WebSocket message cap as the Procfile: bigger frames are closed with 1009.
    args = asgi_server_command(server, port, env_extra.get("WS_MAX_FRAME_BYTES", "16384"), workers)
    server_process = _spawn(args, f"{server}-{port}.log", child_env(**env_extra))
    try:
        # Generous: on a loaded 2-core machine (xdist workers beside other suites) two daphne
        # processes importing Django took longer than 30 s to bind.
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server_process.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not start:\n{server_process.log()[-3000:]}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", server_process
    finally:
        server_process.stop()
