"""`make test` runs on xdist workers; each gets its own Redis database (tests/support/xdist_isolation.py)
so that cache clears, Channels groups and Celery queues of one worker never reach another's."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.support.xdist_isolation import worker_redis_url


def test_worker_k_uses_the_redis_database_after_the_runs_own_plus_k():
    assert worker_redis_url("redis://127.0.0.1:6379/0", "gw0") == "redis://127.0.0.1:6379/1"
    assert worker_redis_url("redis://127.0.0.1:6379/0", "gw1") == "redis://127.0.0.1:6379/2"
    assert worker_redis_url("redis://:secret@cache:6380/3", "gw2") == "redis://:secret@cache:6380/6"
    assert worker_redis_url("redis://127.0.0.1:6379", "gw0") == "redis://127.0.0.1:6379/1"


def test_more_workers_than_redis_databases_is_refused_with_advice():
    with pytest.raises(RuntimeError, match="fewer workers"):
        worker_redis_url("redis://127.0.0.1:6379/0", "gw15")


def test_the_cache_the_channel_layer_celery_and_child_processes_all_use_this_workers_database():
    from chatbot_saas.celery import app

    url = settings.REDIS_URL
    assert os.environ["REDIS_URL"] == url  # what daphne and Celery children inherit
    assert settings.CACHES["default"]["LOCATION"] == url
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] == url
    assert app.conf.broker_url == url
    if os.environ.get("PYTEST_XDIST_WORKER"):
        assert int(urlsplit(url).path.strip("/")) >= 1, "database 0 stays for serial runs"
