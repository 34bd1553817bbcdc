"""Conversations, messages and per-turn traces."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

from tenants.scoping import TenantScopedModel

# The model recorded on the relevance gate's "I don't know" answer (pipeline/service.py): no
# passage passed the gate, so the bot answered with its no_answer_text without calling a model.
NO_ANSWER_MODEL = "policy:no_passages"


class SearchVectorOf(models.Func):
    """to_tsvector('simple', <column>): the expression of the full-text index, and of the explorer's
    search, written once so that the two match (Postgres uses the index only for the same expression)."""

    template = "to_tsvector('simple'::regconfig, COALESCE(%(expressions)s, ''))"
    output_field = SearchVectorField()


class HandoffStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    ASSIGNED = "assigned", "Assigned"
    CLOSED = "closed", "Closed"
    # Handed back to the bot by an agent: the bot answers again.
    RETURNED = "returned", "Back with the bot"


class Conversation(TenantScopedModel):
    class Channel(models.TextChoices):
        WIDGET = "widget"
        API = "api"
        PLAYGROUND = "playground"
        CLI = "cli"
        # Evaluation runs (bots' evaluation sets): real turns, kept out of visitor analytics.
        EVAL = "eval"

    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WIDGET)
    visitor_id = models.CharField(max_length=80, blank=True, db_index=True)
    # Set when the tenant passed a signed visitor identity (HMAC-verified).
    external_user_id = models.CharField(max_length=200, blank=True)
    api_key = models.ForeignKey("tenants.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started = models.DateTimeField(default=timezone.now)
    last_active = models.DateTimeField(default=timezone.now)
    # Memory, refreshed by Celery after each turn (never in the request path).
    summary = models.TextField(blank=True)
    summary_upto_message_id = models.BigIntegerField(null=True, blank=True)
    visitor_facts = models.JSONField(default=dict, blank=True)
    # Human handoff (issue 18): empty while the bot answers; the bot stays quiet while waiting/assigned.
    handoff_status = models.CharField(max_length=16, choices=HandoffStatus.choices, blank=True, default="")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handoff_requested = models.DateTimeField(null=True, blank=True)
    handoff_closed = models.DateTimeField(null=True, blank=True)
    first_agent_reply = models.DateTimeField(null=True, blank=True)
    page_url = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-last_active"]
        indexes = [
            models.Index(fields=["tenant", "bot", "-last_active"]),
            models.Index(fields=["tenant", "handoff_status"]),
        ]

    @property
    def with_human(self) -> bool:
        return self.handoff_status in (HandoffStatus.WAITING, HandoffStatus.ASSIGNED)

    def __str__(self) -> str:
        return f"Conversation {self.pk} with {self.bot_id}"


class Message(TenantScopedModel):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        # A team member answering in the inbox (human handoff); `author` says who.
        AGENT = "agent"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        PARTIAL = "partial"
        FAILED = "failed"

    class Feedback(models.TextChoices):
        UP = "up"
        DOWN = "down"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # [{"n": 1, "chunk_id": .., "document_id": .., "title": .., "page": .., "url": .., "snippet": ..}]
    citations = models.JSONField(default=list, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    model = models.CharField(max_length=120, blank=True, help_text="provider:model that produced the answer")
    # {"retrieval_ms": .., "first_token_ms": .., "total_ms": .., "embedding_ms": ..}
    latency = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    feedback = models.CharField(max_length=8, choices=Feedback.choices, blank=True)
    feedback_comment = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    # A visitor's question: the client's key for it (widget frame, API Idempotency-Key), so a
    # retried send joins or replays its answer instead of asking twice. Null when none was sent.
    idempotency_key = models.CharField(max_length=80, null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            # Per tenant: two tenants' clients may pick the same key; one tenant's retry may not
            # store a second question, even racing the first in another process.
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="conversations_msg_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created"]),
            models.Index(fields=["status", "updated"]),
            # The explorer's full-text search: a functional index, so every write keeps it current
            # without a column or trigger of our own ('simple': no stemming, any language).
            GinIndex(SearchVectorOf("content"), name="conversations_msg_content_fts"),
            # The overview's "latest unanswered" and the explorer's unanswered filter read only
            # the relevance gate's "I don't know" answers: a small partial index.
            models.Index(
                fields=["tenant", "-created"],
                name="conversations_msg_unanswered",
                condition=models.Q(model=NO_ANSWER_MODEL),
            ),
            # The rollup task finds the days of late and re-settled messages by `updated`.
            models.Index(fields=["updated"], name="conversations_msg_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk} ({self.status})"


class Trace(TenantScopedModel):
    """Everything that happened in one turn, for the dashboard and for debugging."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="trace")
    # [{"chunk_id": .., "score": .., "document_id": ..}]
    retrieved = models.JSONField(default=list, blank=True)
    # {"query": .., "rewrite": {"original", "rewritten", "method"} | None,
    #  "verdicts": [{"chunk_id", "document_id", "document_title", "relevant", "kept", "reason", "signals"}]}
    retrieval = models.JSONField(default=dict, blank=True)
    prompt = models.JSONField(default=list, blank=True, help_text="The assembled messages sent to the model")
    # [{"provider": .., "model": .., "outcome": "ok|error|skipped_open_breaker", "error": .., "latency_ms": .., "retryable": ..}]
    attempts = models.JSONField(default=list, blank=True)
    # [{"check": "injection|blocked_topic|redaction|canary|length", "where": "input|retrieved|output", "detail": ..}]
    guardrail_hits = models.JSONField(default=list, blank=True)
    # Time per stage, for the trace inspector's waterfall: {"begin_ms", "retrieve_ms", "assemble_ms",
    # "first_token_ms", "generate_ms", "settle_ms", "total_ms", "spans": {stage: [start_ms, ms]}},
    # every offset counted from the turn's start.
    timings = models.JSONField(default=dict, blank=True)
    # The prompt version the turn answered with (a draft one in the playground); None: the default prompt.
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Trace for message {self.message_id}"


# Knowledge gaps are grouped with the local embedding model, whatever model a bot's knowledge
# uses: grouping is analytics, it must not call a paid API, and one fixed dimension lets the
# centroids carry an HNSW index.
GAP_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
GAP_DIMENSIONS = 384


class GapGroup(TenantScopedModel):
    """A topic of questions the bot failed: unanswered, or answered and thumbed down.

    `centroid` is the running mean of its items' vectors (conversations.gaps.gap_item_add), and
    `representative` its item nearest to that mean."""

    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="gap_groups")
    centroid = VectorField(dimensions=GAP_DIMENSIONS)
    size = models.PositiveIntegerField(default=0)
    representative = models.ForeignKey("GapItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dismissed = models.BooleanField(default=False)
    # The correction written from this group, if any (it stays listed, marked as answered).
    correction = models.ForeignKey(
        "bots.Correction", null=True, blank=True, on_delete=models.SET_NULL, related_name="gap_groups"
    )
    created = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen", "-id"]
        indexes = [
            models.Index(fields=["tenant", "dismissed", "-last_seen"], name="conv_gapgroup_list"),
            HnswIndex(
                name="conv_gapgroup_centroid",
                fields=["centroid"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"Gap group {self.pk} of bot {self.bot_id}"


class GapItem(TenantScopedModel):
    """One failed visitor question, at most once per answer."""

    class Kind(models.TextChoices):
        UNANSWERED = "unanswered"
        THUMBS_DOWN = "thumbs_down"

    group = models.ForeignKey(GapGroup, on_delete=models.CASCADE, related_name="items")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="gap_item")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    embedding = VectorField(dimensions=GAP_DIMENSIONS)
    created = models.DateTimeField(default=timezone.now)  # when the visitor asked

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["group", "created"])]

    def __str__(self) -> str:
        return f"Gap item for message {self.message_id}"


class GapScan(models.Model):
    """The gap scanner's watermark (one row): answers settled or rated after `upto` are new.
    Not tenant-scoped: the scan runs over every tenant, each answer under its own tenant."""

    upto = models.DateTimeField()

    def __str__(self) -> str:
        return f"Gap scan up to {self.upto}"


class DailyRollup(TenantScopedModel):
    """One bot's visitor activity on one day (UTC), recomputed from its messages by
    conversations/insights/rollups.py. Playground and evaluation turns (TEST_CHANNELS) are left out.
    The dashboards read these rows, never the message table."""

    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    conversations = models.PositiveIntegerField(default=0)
    messages = models.PositiveIntegerField(default=0)  # both roles
    questions = models.PositiveIntegerField(default=0)  # the visitors' messages
    visitors = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    unanswered = models.PositiveIntegerField(default=0)  # the relevance gate's "I don't know"
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    handoffs = models.PositiveIntegerField(default=0)  # conversations that asked for a person that day
    # Of those, how many a person answered, and the sum of their waits for that first human reply
    # (a sum, not an average, so days and bots add up; the average is the sum over the count).
    handoffs_answered = models.PositiveIntegerField(default=0)
    first_human_reply_s = models.FloatField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))
    ttft_p50_ms = models.FloatField(null=True, blank=True)
    ttft_p95_ms = models.FloatField(null=True, blank=True)
    provider_errors = models.PositiveIntegerField(default=0)  # failed provider attempts (traces)
    computed = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "bot", "day"], name="insights_rollup_one_per_day")]
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self) -> str:
        return f"Rollup of bot {self.bot_id} on {self.day}"


class DailyQuestion(TenantScopedModel):
    """How often visitors asked one question (normalised text) of one bot on one day: the most
    frequent QUESTIONS_PER_DAY per bot and day, kept by the same rollup, for the overview's top questions."""

    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    text = models.CharField(max_length=300)
    count = models.PositiveIntegerField(default=0)
    # One conversation where it was asked, for the overview's link.
    conversation_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self) -> str:
        return f"{self.text!r} x{self.count} on {self.day}"


class Lead(TenantScopedModel):
    """A visitor's contact details and question, from the widget's lead form."""

    class Reason(models.TextChoices):
        FORM = "form", "Lead form"
        OUTSIDE_HOURS = "outside_hours", "Outside business hours"
        NO_PICKUP = "no_pickup", "Nobody picked up"

    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="leads")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    visitor_id = models.CharField(max_length=80, blank=True)
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    # {"Company": "Acme"}: the bot's custom fields, by label.
    fields = models.JSONField(default=dict, blank=True)
    question = models.TextField(blank=True)
    consent = models.BooleanField(default=False)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.FORM)
    page_url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["tenant", "-created"])]

    def __str__(self) -> str:
        return f"Lead {self.pk} ({self.email or self.name or 'anonymous'})"
