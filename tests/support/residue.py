"""Residue scans for the privacy tests: what is left, in Postgres and Redis, that mentions a string.

Postgres: every text, varchar, json and jsonb column of every table in the schema, read with raw
SQL (no scoped manager, no model: a table nobody thought of is scanned too). Redis: every key name.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection

TEXT_TYPES = ("text", "character varying", "json", "jsonb")


def text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = ANY(%s) ORDER BY table_name, column_name",
            [list(TEXT_TYPES)],
        )
        return list(cursor.fetchall())


def rows_mentioning(needle: str) -> list[tuple[str, str, int]]:
    """[(table, column, rows)] for every column holding `needle` anywhere in its text."""
    found = []
    with connection.cursor() as cursor:
        for table, column in text_columns():
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE strpos("{column}"::text, %s) > 0',  # names from the catalogue
                [needle],
            )
            count = cursor.fetchone()[0]
            if count:
                found.append((table, column, count))
    return found


def redis_keys() -> list[str]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [k.decode() for k in client.scan_iter("*", count=1000)]
    finally:
        client.close()
