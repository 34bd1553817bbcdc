"""The record of the embedded services that a local launcher runs for one data directory.

`python -m chatbot_saas.devservices run|exec|test` (behind `make run`/`make test`) writes
`VAR_DIR/services.json` once its Postgres and Redis are up, and removes it when it stops them. It
holds their URLs and the PIDs of the launcher (the owner) and of the two servers. Two readers:

- settings (`adopt_recorded_services`): when DATABASE_URL / REDIS_URL are unset, a process started
  by hand in a second terminal (`python manage.py ...`, celery, daphne) uses the running app's
  database and Redis. A variable that is set is never overridden, and production (DJANGO_DEBUG=false)
  never reads the record;
- a second launcher on the same data directory, which attaches to the running services instead of
  starting new ones (see devservices.py).

A record whose owner has died (a crash, SIGKILL) is stale: the launcher that finds it stops what
survived and starts fresh. Every PID is stored with its process start time, so a PID the system has
since given to another process is not mistaken for ours.

This module is imported by settings: it must stay cheap (no Django, psutil only once a record exists).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORD_FILE = "services.json"
START_LOCK_FILE = "services.lock"
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL")
NO_SERVICES_HINT = (
    "No database or Redis to talk to: DATABASE_URL/REDIS_URL are unset and no `make run` is running "
    "for {var_dir}. Start `make run` in another terminal, or run the command under "
    "`.venv/bin/python -m chatbot_saas.devservices exec -- COMMAND`."
)


@dataclass(frozen=True)
class Proc:
    """A process we started, identified by PID and start time (PIDs are reused)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> Proc:
        import psutil

        return cls(pid=pid, started=psutil.Process(pid).create_time())

    def alive(self) -> bool:
        import psutil

        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) < 0.5 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


@dataclass(frozen=True)
class ServicesRecord:
    owner: Proc
    command: str
    # Only the URLs of servers the owner started (a DATABASE_URL from the environment is not written here).
    urls: dict[str, str] = field(default_factory=dict)
    postgres: Proc | None = None
    redis: Proc | None = None

    def servers(self) -> list[Proc]:
        return [proc for proc in (self.postgres, self.redis) if proc is not None]

    def is_live(self) -> bool:
        """The owner and every server it started are running."""
        return self.owner.alive() and all(proc.alive() for proc in self.servers())

    def is_stale(self) -> bool:
        """The owner is gone: whatever of it survived has nobody to stop it."""
        return not self.owner.alive()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ServicesRecord:
        data = json.loads(text)

        def proc(value: dict | None) -> Proc | None:
            return Proc(pid=int(value["pid"]), started=float(value["started"])) if value else None

        return cls(
            owner=Proc(pid=int(data["owner"]["pid"]), started=float(data["owner"]["started"])),
            command=str(data["command"]),
            urls={str(k): str(v) for k, v in data.get("urls", {}).items()},
            postgres=proc(data.get("postgres")),
            redis=proc(data.get("redis")),
        )


def record_path(var_dir: Path) -> Path:
    return Path(var_dir) / RECORD_FILE


def write_record(var_dir: Path, record: ServicesRecord) -> None:
    """Write atomically (a reader sees the old record or the new one, never half of one), mode 0600."""
    path = record_path(var_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(record.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_record(var_dir: Path) -> ServicesRecord | None:
    """The record, or None when there is none or it cannot be read (then it is treated as absent)."""
    try:
        return ServicesRecord.from_json(record_path(var_dir).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_record(var_dir: Path, *, owner: Proc) -> None:
    """Remove the record if it is still `owner`'s (a later launcher may have replaced it)."""
    record = read_record(var_dir)
    if record is None or record.owner == owner:
        with contextlib.suppress(FileNotFoundError):
            record_path(var_dir).unlink()


@contextlib.contextmanager
def start_lock(
    var_dir: Path, *, timeout: float = 120, while_waiting: Callable[[], None] | None = None
) -> Iterator[None]:
    """Serialize launchers on one data directory while each decides to start or to attach.

    The owner holds it until its record is written (so a second launcher never sees "no record"
    while the first is still starting its servers) and again while it stops them. flock is
    released by the kernel if we crash. `while_waiting` is called between attempts (it may raise)."""
    path = Path(var_dir) / START_LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another launcher is still starting services in {var_dir}") from None
                if while_waiting is not None:
                    while_waiting()
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


class DataDirBusy(RuntimeError):
    """Another server process still holds the lock of this data directory."""


def lock_data_dir(path: Path) -> int:
    """Take the exclusive lock file `path` and return its descriptor (inheritable).

    The server started on the directory inherits the descriptor, so the lock lasts exactly as long as
    that server does, whatever happens to its launcher. Raises DataDirBusy when it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirBusy(f"{path.parent} is in use by another server process") from None
        raise
    os.set_inheritable(fd, True)
    return fd


# --- Read by settings --------------------------------------------------------------------
#: The service variables that neither the environment nor a live record provided in this process.
unresolved: tuple[str, ...] = ()
_var_dir: Path | None = None


def adopt_recorded_services(var_dir: Path) -> str:
    """Fill the unset DATABASE_URL / REDIS_URL from a live record in `var_dir`; never override one.

    Returns "environment" when both were set, "record" when the record supplied at least one, and
    "none" otherwise (no launcher is running for `var_dir`). What is still unset is kept in
    `unresolved`, for the hint below."""
    global unresolved, _var_dir
    _var_dir = Path(var_dir)
    missing = [name for name in SERVICE_VARIABLES if not os.environ.get(name)]
    if not missing:
        unresolved = ()
        return "environment"
    record = read_record(var_dir)
    adopted = [name for name in missing if record is not None and record.urls.get(name)]
    if adopted and record.is_live():
        for name in adopted:
            os.environ[name] = record.urls[name]
    else:
        adopted = []
    unresolved = tuple(name for name in missing if name not in adopted)
    return "record" if adopted else "none"


def no_services_message() -> str:
    return NO_SERVICES_HINT.format(var_dir=_var_dir or "var/")


def warn_if_no_services() -> None:
    """One line on stderr for long-running entry points (celery, daphne) started with nothing to use."""
    if unresolved:
        print(no_services_message(), file=sys.stderr, flush=True)


@contextlib.contextmanager
def explain_unreachable_services() -> Iterator[None]:
    """Turn "connection refused" into the one-line hint, when nothing told us where that service is.

    Only then: with a URL from the environment or a record, the real error is the useful one."""
    try:
        yield
    except Exception as exc:
        if _unresolved_service_of(exc) not in unresolved:
            raise
        raise SystemExit(no_services_message()) from None


def _unresolved_service_of(exc: BaseException) -> str | None:
    """The variable whose service `exc` failed to reach, or None when it is not a connection error."""
    from django.db import OperationalError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, OperationalError):
        return "DATABASE_URL"
    if isinstance(exc, BrokerError | RedisConnectionError):
        return "REDIS_URL"
    return None
