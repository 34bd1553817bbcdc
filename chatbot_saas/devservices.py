"""One launcher for local runs and tests: `python -m chatbot_saas.devservices run|test|exec`.

When DATABASE_URL / REDIS_URL are unset it provides an embedded PostgreSQL 16 + pgvector and a
Redis 6.2 (chatbot_saas/embedded.py, data in VAR_DIR), exports their URLs to its child, and stops
them when the child exits.

  run   migrate, create the demo tenant, then `honcho start` (Procfile: web, worker, beat, demo)
  test  migrate-free: run pytest with the given arguments (pytest-django builds test DBs); data in VAR_DIR/test
  exec  run any command with the services up, e.g. `exec -- python manage.py shell`

One set of services per data directory. The launcher that starts them (the owner) records them in
VAR_DIR/services.json (chatbot_saas/devrecord.py). Another launcher on the same directory (a
second `make run`, or `exec` beside `make run`) attaches to them instead, and leaves them running
when it exits; `python manage.py ...` started by hand finds them through settings.

SIGTERM, SIGINT and SIGHUP, to the launcher or to its whole process group, stop everything the
launcher started: the child first (honcho stops web, worker, beat and demo), then Redis and
Postgres, within 15 s.
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

from . import devrecord, embedded
from .devrecord import SERVICE_VARIABLES, DataDirBusy, Proc, ServicesRecord

BASE_DIR = Path(__file__).resolve().parent.parent
# Tests get their own data directory, so `make test` never touches `make run`'s data.
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
PYTHON = sys.executable
# Seconds the child gets to stop after a signal before it is killed (honcho itself kills its
# processes after 5 s). Redis then gets at most 3.5 s and Postgres 4.5 s (embedded.redis_stop,
# postgres_stop): the whole stop stays within 15 s, and usually takes 5-7 s.
CHILD_STOP_SECONDS = 7
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def log(message: str) -> None:
    print(f"[devservices] {message}", flush=True)


class Stopped(Exception):
    """A stop signal arrived while the services were starting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP all mean "stop everything this launcher started".

    The handler only notes the signal and passes it on to the current child: the main thread stops
    the rest in order (see _run_foreground and services()). Python's default SIGTERM/SIGHUP action
    would kill the launcher at once and leave Redis and Postgres running in their own sessions."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.at = 0.0
        self.child: subprocess.Popen | None = None
        self.child_in_our_group = False
        self.child_sigint = signal.SIGINT  # what the child is sent for our SIGINT

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def check(self) -> None:
        if self.received is not None:
            raise Stopped(self.received)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received, self.at = signum, time.monotonic()
        child = self.child
        if child is None or child.poll() is not None:
            return
        if signum == signal.SIGINT and self.child_in_our_group and _in_terminal_foreground():
            return  # Ctrl-C: the terminal sent it to the child as well; a second one would interrupt its clean-up
        # honcho knows SIGINT and SIGTERM; SIGHUP means the same as SIGTERM here.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(self.child_sigint if signum == signal.SIGINT else signal.SIGTERM)


def _in_terminal_foreground() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send SIGTERM to this child if the launcher dies without stopping it (SIGKILL)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Children (honcho's daphne/celery, test subprocesses) find the venv's executables first.
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VAR_DIR"] = str(VAR_DIR)
    env.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def _clean_up_after(record: ServicesRecord | None) -> None:
    """Stop the servers a launcher that died (SIGKILL, a crash) left behind, and forget its record."""
    if record is not None:
        log(f"the launcher that started the services in {VAR_DIR} (pid {record.owner.pid}) is gone; cleaning up")
        for proc in record.servers():
            if proc.alive():
                log(f"stopping its server pid {proc.pid}")
                if proc == record.postgres:
                    embedded.postgres_stop(proc)
                else:
                    embedded.redis_stop(proc)
        with contextlib.suppress(FileNotFoundError):
            devrecord.record_path(VAR_DIR).unlink()
    # A redis-server with no record at all (the record deleted by hand): it still holds the lock.
    for proc in embedded.stray_redis_servers(VAR_DIR / "redis"):
        log(f"stopping a redis-server left running on {VAR_DIR / 'redis'} (pid {proc.pid})")
        embedded.redis_stop(proc)


def _start_servers(
    owned: contextlib.ExitStack, missing: list[str], command: str, signals: StopSignals
) -> dict[str, str]:
    """Start what `missing` asks for, each stopped by `owned` on exit, then write the record."""
    urls: dict[str, str] = {}
    postgres = redis = None
    if "DATABASE_URL" in missing:
        urls["DATABASE_URL"], postgres = embedded.postgres_start(VAR_DIR / "pgdata", log)
        owned.callback(lambda: (embedded.postgres_stop(postgres), log("postgres stopped")))
        signals.check()
    if "REDIS_URL" in missing:
        try:
            urls["REDIS_URL"], process = embedded.redis_start(VAR_DIR / "redis", log)
        except DataDirBusy as exc:
            raise SystemExit(f"[devservices] {exc}: another redis-server still runs there; stop it first") from None
        redis = Proc.of(process.pid)
        owned.callback(lambda: (embedded.redis_stop(redis), process.poll(), log("redis stopped")))
        signals.check()
    owner = Proc.of(os.getpid())
    devrecord.write_record(
        VAR_DIR, ServicesRecord(owner=owner, command=command, urls=urls, postgres=postgres, redis=redis)
    )
    # Registered last, so it runs first: nobody finds the record once the servers start stopping.
    owned.callback(devrecord.remove_record, VAR_DIR, owner=owner)
    return urls


@contextlib.contextmanager
def services(command: str, signals: StopSignals) -> Iterator[dict[str, str]]:
    """The environment for the child: the URLs from the environment, from running services, or new ones."""
    env = _base_env()
    missing = [name for name in SERVICE_VARIABLES if not env.get(name)]
    for name in SERVICE_VARIABLES:
        if name not in missing:
            log(f"using {name} from the environment")
    with contextlib.ExitStack() as owned:  # the stops of the servers this launcher started
        if missing:
            with devrecord.start_lock(VAR_DIR, while_waiting=signals.check):
                record = devrecord.read_record(VAR_DIR)
                if record is not None and record.is_live():
                    env.update(_attach(record, missing))
                else:
                    if record is not None and not record.is_stale():
                        raise SystemExit(
                            f"[devservices] the launcher pid {record.owner.pid} for {VAR_DIR} is running but one of "
                            f"its servers has stopped; stop it (kill {record.owner.pid}) and start again"
                        )
                    _clean_up_after(record)
                    env.update(_start_servers(owned, missing, command, signals))
        (VAR_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)
        signals.check()
        try:
            yield env
        finally:
            # Stop under the start lock: a launcher starting meanwhile waits, then starts afresh,
            # instead of adopting a Postgres that is about to go away.
            with contextlib.suppress(TimeoutError), devrecord.start_lock(VAR_DIR, timeout=2):
                owned.close()


def _attach(record: ServicesRecord, missing: list[str]) -> dict[str, str]:
    absent = [name for name in missing if not record.urls.get(name)]
    if absent:
        raise SystemExit(
            f"[devservices] the services in {VAR_DIR} (pid {record.owner.pid}) were started with "
            f"{' and '.join(absent)} from the environment; set it here too"
        )
    log(
        f"attached to the services of `devservices {record.command}` (pid {record.owner.pid}) in {VAR_DIR}; "
        "they keep running when this exits"
    )
    return {name: record.urls[name] for name in missing}


def _kill_tree(process: subprocess.Popen) -> None:
    import psutil

    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    process.wait()


def _run_foreground(
    cmd: list[str],
    env: dict[str, str],
    signals: StopSignals,
    *,
    own_session: bool = False,
    sigint_as: int = signal.SIGINT,
) -> int:
    """Run the child until it exits; after a stop signal, kill it if it takes too long.

    own_session (honcho, migrate): the terminal's Ctrl-C and a signal to our process group reach only
    us, and we pass it on once, as `sigint_as` for a SIGINT. Otherwise (exec, test) the child stays
    in the foreground group, so an interactive command reads the terminal and handles its own Ctrl-C."""
    process = subprocess.Popen(
        cmd,
        env=env,
        cwd=BASE_DIR,
        start_new_session=own_session,
        preexec_fn=_die_with_parent if own_session and sys.platform == "linux" else None,
    )
    signals.child, signals.child_in_our_group, signals.child_sigint = process, not own_session, sigint_as
    if signals.received is not None:  # arrived while it was being started
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(timeout=0.2)
            if signals.received is not None and time.monotonic() - signals.at > CHILD_STOP_SECONDS:
                log(f"{Path(cmd[0]).name} did not stop within {CHILD_STOP_SECONDS}s; killing it")
                _kill_tree(process)
    finally:
        signals.child = None


def manage(env: dict[str, str], signals: StopSignals, *args: str) -> None:
    # SIGTERM, not SIGINT, on Ctrl-C: a KeyboardInterrupt would print migrate's traceback.
    code = _run_foreground([PYTHON, "manage.py", *args], env, signals, own_session=True, sigint_as=signal.SIGTERM)
    signals.check()
    if code != 0:
        raise SystemExit(f"[devservices] manage.py {' '.join(args)} failed (exit code {code})")


def app_urls(env: dict[str, str]) -> tuple[str, str]:
    """The web app's and the demo host page's URLs, as the Procfile binds them."""
    ports = []
    for name, default in (("WEB_PORT", 8000), ("WIDGET_DEMO_PORT", 8001)):
        raw = env.get(name) or str(default)
        if not raw.isdigit():
            raise SystemExit(f"[devservices] {name} must be a port number, got {raw!r}")
        ports.append(int(raw))
    return f"http://127.0.0.1:{ports[0]}/", f"http://127.0.0.1:{ports[1]}/"


def _check_ports_free(env: dict[str, str]) -> None:
    """A second `make run` on the same ports would only fail later, in daphne; say it at once."""
    for name, url in zip(("WEB_PORT", "WIDGET_DEMO_PORT"), app_urls(env), strict=True):
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise SystemExit(
                    f"[devservices] port {port} ({name}) is in use, by another `make run`? To run a second app "
                    "on the same services, set WEB_PORT and WIDGET_DEMO_PORT to free ports."
                ) from None


def cmd_run(extra: list[str], signals: StopSignals) -> int:
    _check_ports_free(dict(os.environ))
    with services("run", signals) as env:
        web_url, demo_url = app_urls(env)
        started = time.perf_counter()
        manage(env, signals, "migrate", "--noinput", "-v", "0")
        manage(env, signals, "bootstrap_demo")
        log(f"database ready ({time.perf_counter() - started:.1f}s); starting web, worker, beat and demo")
        log(f"open {web_url}  (demo host page: {demo_url}; Ctrl-C stops everything)")
        honcho = shutil.which("honcho", path=str(Path(PYTHON).parent)) or "honcho"
        return _run_foreground(
            [honcho, "start", "-f", str(BASE_DIR / "Procfile"), *extra], env, signals, own_session=True
        )


def cmd_test(extra: list[str], signals: StopSignals) -> int:
    global VAR_DIR
    VAR_DIR = VAR_DIR / "test"
    with services("test", signals) as env:
        return _run_foreground([PYTHON, "-m", "pytest", *extra], env, signals)


def cmd_exec(extra: list[str], signals: StopSignals) -> int:
    if extra and extra[0] == "--":
        extra = extra[1:]
    if not extra:
        raise SystemExit("usage: python -m chatbot_saas.devservices exec -- COMMAND [ARGS...]")
    with services("exec", signals) as env:
        return _run_foreground(extra, env, signals)


def main(argv: list[str]) -> int:
    commands = {"run": cmd_run, "test": cmd_test, "exec": cmd_exec}
    if not argv or argv[0] not in commands:
        raise SystemExit(__doc__)
    signals = StopSignals()
    signals.install()
    try:
        code = commands[argv[0]](argv[1:], signals)
    except Stopped as stopped:
        code = 128 + stopped.signum
    if signals.received is not None:
        log("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
