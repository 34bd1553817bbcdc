"""Knowledge bases. Documents and chunks are added by the ingestion work (issue 3)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedModel


class KnowledgeBase(TenantScopedModel):
    class EmbeddingModel(models.TextChoices):
        MINILM = "all-MiniLM-L6-v2", "all-MiniLM-L6-v2 (local, 384 dims)"
        OPENAI_SMALL = "text-embedding-3-small", "OpenAI text-embedding-3-small (1536 dims)"

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Fixed at creation: changing it means re-embedding every chunk (a re-index).
    embedding_model = models.CharField(max_length=64, choices=EmbeddingModel.choices, default=EmbeddingModel.MINILM)
    chunk_size_tokens = models.PositiveIntegerField(default=200)
    chunk_overlap_tokens = models.PositiveIntegerField(default=30)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_kb_name_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
