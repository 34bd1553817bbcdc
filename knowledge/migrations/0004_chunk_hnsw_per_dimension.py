"""One partial HNSW expression index per supported embedding dimension.

The chunk column is an untyped `vector`; HNSW needs a fixed dimension, so each index casts to
its dimension and only covers rows of that dimension. Queries must use the same expression,
`(embedding::vector(N)) <=> q` with `embedding_dim = N`, for the planner to pick the index.
"""

from django.db import migrations

DIMENSIONS = (384, 1536)


def _create(dim: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS kb_chunk_hnsw_{dim} ON knowledge_chunk "
        f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE embedding_dim = {dim}"
    )


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_document_chunk")]

    operations = [
        migrations.RunSQL(_create(dim), reverse_sql=f"DROP INDEX IF EXISTS kb_chunk_hnsw_{dim}") for dim in DIMENSIONS
    ]
