"""Keep a typical chunk row whole in the heap: TOAST starts at 4 kB of row instead of ~2 kB.

With the vector kept in the row (0006), a 384-dimension row (1.5 kB vector, ~0.5 kB text, ~0.6
kB tsvector) still passed ~2 kB, so Postgres compressed the text and moved it and the tsvector
out to the TOAST table: the full-text rank and the snippets of a search then fetched them through
the TOAST index instead. Rows up to 4 kB now stay as they are; a longer row (a 1,536-dimension
vector) still has its text and tsvector compressed or moved out, and its vector stays in the row.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0006_chunk_embedding_storage_main")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE knowledge_chunk SET (toast_tuple_target = 4080)",
            reverse_sql="ALTER TABLE knowledge_chunk RESET (toast_tuple_target)",
        )
    ]
