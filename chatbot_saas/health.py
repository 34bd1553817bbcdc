"""/healthz: database, Redis and a Celery worker ping, as JSON. 200 when all are ok, else 503."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _check_celery() -> None:
    from chatbot_saas.celery import app

    replies = app.control.ping(timeout=1.0, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1 s")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "redis": _check_redis,
    "celery": _check_celery,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"status": "ok"}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    healthy = all(r["status"] == "ok" for r in results.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": results}, status=200 if healthy else 503)
