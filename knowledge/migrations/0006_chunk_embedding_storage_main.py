"""Keep each chunk's vector inside its heap row (storage MAIN) instead of pgvector's default
EXTERNAL, which moved it out to the TOAST table whenever the row passed ~2 kB (384 floats are
1.5 kB, plus the text and its tsvector): an exact scan then fetched every vector through the
TOAST index. Measured on a 5,000-chunk knowledge base (EXPLAIN ANALYZE, one query): 15,474
buffers and 26-30 ms before, 1,306 buffers and 5.5-7.5 ms after. The text and tsvector are
compressed or moved out instead; a 1,536-float vector (6 kB) still fits a page.

Applies to rows written from now on; existing rows move when rewritten (re-ingestion, a
re-index, or `VACUUM FULL knowledge_chunk` in a maintenance window).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0005_kb_reindex_staging")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET STORAGE MAIN",
            reverse_sql="ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET STORAGE EXTERNAL",
        )
    ]
