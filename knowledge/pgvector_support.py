"""What the installed pgvector can do. The embedded server ships 0.6.2; managed Postgres may be
newer. Code that wants halfvec (0.7) or iterative index scans (0.8) asks here first and
falls back to what 0.6.2 offers."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


@lru_cache(maxsize=4)
def _version_for(alias: str) -> tuple[int, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("The pgvector extension is not installed; run `manage.py migrate`.")
    return parse_version(row[0])


def pgvector_version() -> tuple[int, ...]:
    return _version_for(connection.alias)


def supports_halfvec() -> bool:
    return pgvector_version() >= (0, 7, 0)


def supports_iterative_scan() -> bool:
    return pgvector_version() >= (0, 8, 0)
