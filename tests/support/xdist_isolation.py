"""Per-worker isolation for `pytest -n N` (pytest-xdist), loaded with `-p` from pyproject's addopts.

pytest-django already gives each xdist worker its own test database (test_<name>_gw0, ...).
Everything else the tests share lives in Redis: the cache (rate-limit counters, cleared between
tests), the Channels layer, and Celery's queues and control broadcasts (a test that pauses "the
other workers" must not pause another xdist worker's Celery worker). So each xdist worker gets
its own Redis database number (tests/support/servers.py also gives it its own log directory).
The rest of var/test is shared on purpose: the exported query graph is a cache written
atomically, and uploaded files get unique names from Django's storage.

This runs at import, before pytest-django imports the settings (which read REDIS_URL once), and
before any daphne or Celery child is started (they inherit the environment).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

# Redis ships with 16 databases (0-15). Database N of the run stays for a serial run; xdist
# worker gwK uses N + 1 + K.
REDIS_DATABASES = 16


def worker_redis_url(url: str, worker: str) -> str:
    """`url` with its database number moved to the one reserved for xdist worker `worker`."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    database = base + 1 + int(worker.removeprefix("gw"))
    if database >= REDIS_DATABASES:
        raise RuntimeError(
            f"xdist worker {worker} would need Redis database {database}; Redis has {REDIS_DATABASES}. "
            "Run with fewer workers (-n)."
        )
    return urlunsplit(parts._replace(path=f"/{database}"))


def _isolate_this_worker() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], worker)
    # Explicit broker/result URLs would bypass REDIS_URL; they follow the same rule.
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        if os.environ.get(name, "").startswith("redis"):
            os.environ[name] = worker_redis_url(os.environ[name], worker)


_isolate_this_worker()
