"""The embedded Postgres that `devservices` starts carries its configured settings."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from chatbot_saas.embedded import EMBEDDED_PG_SETTINGS, configure_postgres

pytestmark = pytest.mark.skipif(
    "/pgdata" not in os.environ.get("DATABASE_URL", "").replace("%2F", "/"),
    reason="an external DATABASE_URL: its settings are the operator's",
)


def test_the_embedded_server_runs_with_the_configured_memory_settings(db):
    with connection.cursor() as cursor:
        for name, value in EMBEDDED_PG_SETTINGS.items():
            if os.environ.get(f"EMBEDDED_PG_{name.upper()}"):
                continue
            if name.endswith("_mem") or name in ("shared_buffers", "effective_cache_size"):
                cursor.execute("SELECT pg_size_bytes(current_setting(%s)) = pg_size_bytes(%s)", [name, value])
            else:
                cursor.execute("SELECT current_setting(%s) = %s", [name, value])
            assert cursor.fetchone()[0], name


def test_applying_the_settings_again_needs_no_restart():
    assert configure_postgres(os.environ["DATABASE_URL"]) is False
