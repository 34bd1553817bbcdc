from __future__ import annotations

import pytest


@pytest.mark.integration
def test_healthz_is_green_with_a_worker_running(client, transactional_db, live_worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
        "celery": "ok",
    }


def test_healthz_reports_each_failing_check(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    from chatbot_saas import health

    original = health.CHECKS["celery"]
    health.CHECKS["celery"] = lambda: None  # isolate the redis failure from broker timing
    try:
        response = client.get("/healthz")
    finally:
        health.CHECKS["celery"] = original
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "error"
    assert "Connection" in body["checks"]["redis"]["error"]
