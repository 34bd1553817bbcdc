"""Metering: is Postgres alone fast enough for per-message usage counters, or do we need Redis?

Each answered message costs one `usage_record` (an UPDATE of the tenant's period row) and one
`quota_check` (a read). This measures both against Redis HINCRBY counters (what a
"Redis counters flushed to Postgres" design would pay per message), single-threaded and with
several threads hammering the same tenant's row, which is the worst case for row locks.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from .common import percentile

TITLE = "Billing metering: Postgres counters vs Redis counters"


def _tenant():
    from billing.services import subscription_start_free
    from tenants.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(slug="bench-billing", defaults={"name": "Bench billing"})
    subscription_start_free(tenant=tenant)
    return tenant


def _timed(op: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        op()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _row(name: str, samples: list[float], wall: float, threads: int = 1) -> dict:
    return {
        "operation": name,
        "threads": threads,
        "ops": len(samples),
        "ops_per_s": len(samples) / wall,
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
    }


def _single(name: str, op: Callable[[], object], n: int) -> dict:
    op()  # warm up connections and caches
    started = time.perf_counter()
    samples = _timed(op, n)
    return _row(name, samples, time.perf_counter() - started)


def _concurrent(name: str, op: Callable[[], object], n: int, threads: int) -> dict:
    samples: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        try:
            op()
            barrier.wait()
            mine = _timed(op, n // threads)
            with lock:
                samples.extend(mine)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return _row(name, samples, time.perf_counter() - started, threads)


def run(args: argparse.Namespace) -> list[dict]:
    from billing.models import UsageCounter
    from billing.quotas import quota_check
    from billing.services import current_period, usage_record

    call_command("migrate", verbosity=0)
    tenant = _tenant()
    n = 200 if args.quick else 2000
    threads = 4
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"bench:usage:{tenant.pk}:{current_period():%Y-%m}"

    def pg_record() -> None:
        usage_record(tenant=tenant, messages=1, tokens_in=300, tokens_out=150, cost=0.0004)

    def redis_record() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(key, "messages", 1).hincrby(key, "tokens_in", 300).hincrby(key, "tokens_out", 150)
        pipe.hincrbyfloat(key, "cost", 0.0004).execute()

    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def check() -> None:
        quota_check(tenant=tenant, kind="messages", amount=0)

    UsageCounter.objects.unscoped().filter(tenant=tenant).delete()
    rows = [
        _single("baseline: postgres SELECT 1", select_one, n),
        _single("quota_check messages (read, under 80 %)", check, n),
        _single("postgres usage_record (UPDATE)", pg_record, n),
        _concurrent("postgres usage_record, same tenant row", pg_record, n, threads),
        _single("redis HINCRBY x4 (pipelined)", redis_record, n),
        _concurrent("redis HINCRBY x4, same tenant key", redis_record, n, threads),
    ]
    counted = UsageCounter.objects.unscoped().get(tenant=tenant, period=current_period()).messages
    expected = 1 + n + threads + (n // threads) * threads  # warm-ups included
    if counted != expected:
        raise RuntimeError(f"Postgres counters lost increments: {counted} != {expected}")
    UsageCounter.objects.unscoped().filter(tenant=tenant).delete()
    client.delete(key)
    client.close()
    return rows
