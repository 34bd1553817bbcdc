"""Knowledge bases, their documents and the embedded chunks retrieval searches."""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from tenants.scoping import TenantScopedModel

# The dimension each supported embedding model produces. The chunk table keeps an untyped
# `vector` column plus one partial HNSW expression index per dimension (migration 0004).
EMBEDDING_DIMENSIONS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "text-embedding-3-small": 1536,
}


class KnowledgeBase(TenantScopedModel):
    class EmbeddingModel(models.TextChoices):
        MINILM = "all-MiniLM-L6-v2", "all-MiniLM-L6-v2 (local, 384 dims)"
        OPENAI_SMALL = "text-embedding-3-small", "OpenAI text-embedding-3-small (1536 dims)"

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The model every *visible* chunk was embedded with, so retrieval embeds the query with it.
    # Changing it is a re-index (services.knowledge_base_reindex): documents are re-embedded
    # with `reindex_to` into staged versions, and one transaction swaps them all in and sets
    # this field (see knowledge_base_reindex_finish).
    embedding_model = models.CharField(max_length=64, choices=EmbeddingModel.choices, default=EmbeddingModel.MINILM)
    reindex_to = models.CharField(max_length=64, choices=EmbeddingModel.choices, blank=True)
    reindex_started = models.DateTimeField(null=True, blank=True)
    reindex_error = models.TextField(blank=True)
    chunk_size_tokens = models.PositiveIntegerField(default=200)
    chunk_overlap_tokens = models.PositiveIntegerField(default=30)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_kb_name_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def embedding_dim(self) -> int:
        return EMBEDDING_DIMENSIONS[self.embedding_model]

    @property
    def is_reindexing(self) -> bool:
        return bool(self.reindex_to)

    @property
    def ingest_model(self) -> str:
        """The model new ingestion runs embed with: the re-index target while one is under way."""
        return self.reindex_to or self.embedding_model


class Document(TenantScopedModel):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded file"
        URL = "url", "Web page"
        SITEMAP = "sitemap", "Sitemap"
        TEXT = "text", "Pasted text"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        CHUNKING = "chunking", "Chunking"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = (Status.READY, Status.FAILED)

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    source = models.CharField(max_length=16, choices=Source.choices)
    title = models.CharField(max_length=300)
    # Shown to users only; storage paths are generated (see stored_file), never built from it.
    original_filename = models.CharField(max_length=255, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    # Uploads and pasted text are kept here; URL sources are fetched at ingestion.
    stored_file = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)  # bytes; the storage quota sums it
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)  # sha-256 hex
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)  # 0-100
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    # `version` is bumped by every ingestion run; chunks written by a run carry it, and only the
    # chunks of `active_version` are visible to retrieval. Switching versions is one short
    # transaction, so a re-run never shows duplicates or a half-written document.
    version = models.PositiveIntegerField(default=0)
    active_version = models.PositiveIntegerField(null=True, blank=True)
    # During a knowledge base re-index, a run embeds with the new model into `staged_version`
    # instead of publishing it; the knowledge base's swap makes it the active version.
    staged_version = models.PositiveIntegerField(null=True, blank=True)
    staged_chunk_count = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    status_changed = models.DateTimeField(default=timezone.now)
    ingested = models.DateTimeField(null=True, blank=True)
    last_synced = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["status", "status_changed"], name="kb_doc_status_changed")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def can_resync(self) -> bool:
        return self.source in (self.Source.URL, self.Source.SITEMAP)


def new_storage_name() -> str:
    return f"knowledge/{uuid.uuid4().hex}"


class Chunk(TenantScopedModel):
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    document_version = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    heading_path = models.JSONField(default=list, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    embedding_model = models.CharField(max_length=64)
    embedding_dim = models.PositiveSmallIntegerField()
    # Untyped `vector` so knowledge bases of different dimensions share the table.
    embedding = VectorField()
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"), output_field=SearchVectorField(), db_persist=True
    )

    class Meta:
        ordering = ["document_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "document_version", "position"], name="uniq_chunk_position_per_version"
            )
        ]
        indexes = [
            models.Index(fields=["knowledge_base", "embedding_dim"], name="kb_chunk_kb_dim"),
            GinIndex(fields=["search_vector"], name="kb_chunk_search_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
