"""Bots. Prompt versions, the model chain validation and services come with issue 4."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedModel


def new_public_id() -> str:
    return "bot_" + secrets.token_urlsafe(12)


def new_identity_secret() -> str:
    return secrets.token_urlsafe(32)


class Bot(TenantScopedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    class AnswerPolicy(models.TextChoices):
        KNOWLEDGE_ONLY = "knowledge_only", "Answer only from the knowledge"
        GENERAL = "general", "Allow general knowledge"

    name = models.CharField(max_length=100)
    # Safe to put in a web page: it identifies the bot, it grants nothing by itself.
    public_id = models.CharField(max_length=40, unique=True, default=new_public_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    knowledge_bases = models.ManyToManyField("knowledge.KnowledgeBase", blank=True, related_name="bots")
    welcome_message = models.CharField(max_length=500, default="Hi! Ask me anything about our documentation.")
    fallback_message = models.CharField(
        max_length=500, default="Sorry, I can't answer right now. Please try again in a moment."
    )
    answer_policy = models.CharField(max_length=20, choices=AnswerPolicy.choices, default=AnswerPolicy.KNOWLEDGE_ONLY)
    max_answer_tokens = models.PositiveIntegerField(default=512)
    temperature = models.FloatField(default=0.2)
    # Ordered list of {"provider": "openai|anthropic|openai_compatible|offline", "model": "...", "params": {...}}
    model_chain = models.JSONField(default=list, blank=True)
    # Widget look: {"primary_color", "position": "right|left", "title", "avatar_url", "scheme": "auto|light|dark"}
    widget = models.JSONField(default=dict, blank=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    allow_any_origin = models.BooleanField(default=False)
    # Per-bot secret for signed visitor identity: HMAC-SHA256(secret, user_id).
    identity_secret = models.CharField(max_length=64, default=new_identity_secret, editable=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_bot_name_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
