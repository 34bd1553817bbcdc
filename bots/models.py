"""Bots, their versioned system prompts and the tenants' own provider keys."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from tenants.scoping import TenantScopedModel


def new_public_id() -> str:
    return "bot_" + secrets.token_urlsafe(12)


def new_identity_secret() -> str:
    return secrets.token_urlsafe(32)


# What a plan's custom_branding buys: the widget without our "Powered by" line (white label).
# Colour, avatar, title, side and scheme are the bot's own look on every plan.
# Title, side and light/dark scheme are basic settings every plan has.
WIDGET_BRANDING_KEYS = ("hide_powered_by",)
DEFAULT_NO_ANSWER = "Sorry, I don't know the answer to that: it isn't in the documentation I have."


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
    # What the bot says when its knowledge has no relevant passage (fallback_message is for outages).
    no_answer_message = models.CharField(max_length=500, blank=True, default=DEFAULT_NO_ANSWER)
    # Where visitors can reach a person (email, phone, page); offered when the bot doesn't know.
    fallback_contact = models.CharField(max_length=200, blank=True, default="")
    max_answer_tokens = models.PositiveIntegerField(default=512)
    temperature = models.FloatField(default=0.2)
    # Ordered list of {"provider": "openai|anthropic|openai_compatible|offline", "model": "...", "params": {...}}
    model_chain = models.JSONField(default=list, blank=True)
    # Widget look: {"primary_color", "position": "right|left", "title", "avatar_url", "scheme": "auto|light|dark",
    # "launcher_label", "suggested_questions": [...]} (checked by bots.validation.check_widget_look).
    # hide_powered_by is branding (WIDGET_BRANDING_KEYS): honoured only on plans with custom_branding.
    widget = models.JSONField(default=dict, blank=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    allow_any_origin = models.BooleanField(default=False)
    # Per-bot secret for signed visitor identity: HMAC-SHA256(secret, user_id).
    identity_secret = models.CharField(max_length=64, default=new_identity_secret, editable=False)
    created = models.DateTimeField(default=timezone.now)
    # Guardrails and retrieval (issue 4).
    # Keywords, or regular expressions written as "re:<pattern>", that get a polite refusal.
    blocked_topics = models.JSONField(default=list, blank=True)
    redact_output = models.BooleanField(
        default=True, help_text="Mask emails, phone numbers, card numbers and API-key-like strings in answers."
    )
    # Off by default: many bots take bookings or support requests where the visitor's email is the point.
    redact_input = models.BooleanField(
        default=False,
        help_text="Mask emails, phone numbers and card numbers in visitors' messages before they are stored "
        "or sent to the model.",
    )
    retrieval_k = models.PositiveSmallIntegerField(default=5)
    # Passages scoring below this are not used; empty means the knowledge service's default.
    min_passage_score = models.FloatField(null=True, blank=True)
    # Publishing gate (issue 15): a change that lowers the evaluation score by more than this many
    # points (0-100) compared with the published version's last run needs an explicit confirmation.
    eval_margin = models.FloatField(default=5.0)
    # Whether the bot has an enabled correction (kept by bots.correction_services): the answer
    # pipeline asks for a matching correction only then, so bots without any pay no extra query.
    has_corrections = models.BooleanField(default=False, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_bot_name_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def no_answer_text(self) -> str:
        """The bot's "I don't know", offering the fallback contact when it has one."""
        message = self.no_answer_message.strip() or DEFAULT_NO_ANSWER
        if self.fallback_contact.strip():
            return f"{message} You can reach our team at {self.fallback_contact.strip()}."
        return f"{message} You could rephrase the question, or contact the team directly."


class PromptVersion(TenantScopedModel):
    """One immutable version of a bot's system prompt. Exactly one per bot is published."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="prompt_versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    note = models.CharField(max_length=200, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    is_published = models.BooleanField(default=False)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["bot", "number"], name="uniq_prompt_version_number"),
            models.UniqueConstraint(
                fields=["bot"], condition=models.Q(is_published=True), name="one_published_prompt_per_bot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bot_id} v{self.number}"


class PromptPublication(TenantScopedModel):
    """The audit log of publishing: who put which version live, and when."""

    class Action(models.TextChoices):
        PUBLISH = "publish", "Published"
        ROLLBACK = "rollback", "Rolled back"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="prompt_publications")
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="publications")
    previous = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.PUBLISH)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    # The evaluation run that gated this publication, the score drop it found (points, positive
    # = worse) and whether the admin confirmed publishing despite it; note says why not gated.
    eval_run = models.ForeignKey(
        "EvalRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="publications"
    )
    score_drop = models.FloatField(null=True, blank=True)
    confirmed_drop = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.action} v{self.version_id} of bot {self.bot_id}"


class ProviderCredential(TenantScopedModel):
    """A tenant's own key for a provider (bring-your-own-key), encrypted at rest with Fernet."""

    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"

    provider = models.CharField(max_length=32, choices=Provider.choices)
    encrypted_key = models.TextField()
    # Shown in the dashboard so owners can tell keys apart; the key itself is never shown again.
    key_hint = models.CharField(max_length=12, blank=True)
    base_url = models.URLField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="uniq_credential_per_provider")]
        ordering = ["provider"]

    def __str__(self) -> str:
        return f"{self.provider} key …{self.key_hint}"


# Evaluation sets (issue 15). The cases and runs live here, beside the bot and its prompt
# versions they judge; running a case needs the answer pipeline, so the runner lives in
# conversations/evaluation/ (imports go conversations -> bots, never back).


class EvalCase(TenantScopedModel):
    """One question of a bot's evaluation set and what a good answer to it looks like."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="eval_cases")
    question = models.CharField(max_length=1000)
    # [{"id": <document id>, "title": <its title when the case was saved>}]. Ids, not a
    # foreign key: a deleted document must stay visible on the case so it can be flagged.
    expected_documents = models.JSONField(default=list, blank=True)
    expected_keywords = models.JSONField(default=list, blank=True)
    should_refuse = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.question[:80]


class EvalRun(TenantScopedModel):
    """One run of a bot's evaluation set through the answer pipeline, with its scores."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Purpose(models.TextChoices):
        CHECK = "check", "Check"
        PUBLISH = "publish", "Before publishing a prompt"
        KNOWLEDGE = "knowledge", "Before changing knowledge bases"

    class Gate(models.TextChoices):
        NONE = "", "Not a gate"
        WAITING = "waiting", "Waiting for the run"
        APPLIED = "applied", "Applied"
        NEEDS_CONFIRMATION = "needs_confirmation", "Needs confirmation"
        CONFIRMED = "confirmed", "Applied after confirmation"
        CANCELLED = "cancelled", "Cancelled"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="eval_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CHECK)
    gate = models.CharField(max_length=24, choices=Gate.choices, default=Gate.NONE, blank=True)
    # The prompt version the run answered with (the candidate for a publish gate).
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs"
    )
    # The knowledge bases the run answered from when they differ from the bot's (a knowledge gate).
    knowledge_base_ids = models.JSONField(null=True, blank=True)
    # The run this one is compared with: the last finished run of the published version.
    baseline = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # {"hit_at_k", "mrr", "citation_accuracy", "refusal_correctness", "keyword_coverage",
    #  "latency_ms_p50", "cost", "cases", "flagged"}; score is 0-100, the mean of the cases' scores.
    scores = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"Evaluation run {self.pk} of bot {self.bot_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class EvalResult(TenantScopedModel):
    """One case's outcome in one run. The question is copied so history survives edits."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(EvalCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    question = models.CharField(max_length=1000)
    answer = models.TextField(blank=True)
    refused = models.BooleanField(default=False)
    retrieved_document_ids = models.JSONField(default=list, blank=True)
    cited_document_ids = models.JSONField(default=list, blank=True)
    # Each None when the case gives nothing to judge it by (no expected documents, no keywords).
    hit = models.BooleanField(null=True)
    reciprocal_rank = models.FloatField(null=True)
    citation_accuracy = models.FloatField(null=True)
    refusal_correct = models.BooleanField(default=False)
    keyword_coverage = models.FloatField(null=True)
    score = models.FloatField(default=0)  # 0-1
    latency_ms = models.FloatField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # ["deleted_document:<id>", "turn_error:<code>"]: what makes this result suspect.
    flags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Result of run {self.run_id}: {self.question[:40]}"


class WidgetOrigin(TenantScopedModel):
    """A page origin the bot's widget asked for a session from: the designer's install check.

    Written by the widget session endpoint at most once per origin every few minutes
    (conversations.services.widget_origin_note), for allowed and refused origins alike, so an
    admin sees where the snippet is pasted and which sites still need adding."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="widget_origins")
    origin = models.CharField(max_length=300)
    # Whether the origin was allowed when last seen (the designer also compares with today's list).
    allowed = models.BooleanField(default=False)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.UniqueConstraint(fields=["bot", "origin"], name="uniq_widget_origin_per_bot")]

    def __str__(self) -> str:
        return f"{self.bot_id} seen on {self.origin}"


# Field limits of a correction, for forms, the CSV import and the services alike.
CORRECTION_QUESTION_MAX = 1000
CORRECTION_ANSWER_MAX = 4000
CORRECTION_URL_MAX = 500


class Correction(TenantScopedModel):
    """A curated question and answer in a bot's knowledge, written by the support team.

    The current version's text lives on this row (what the answer pipeline matches against);
    every edit also adds a CorrectionVersion, like prompt versions. `embedding` is the question
    embedded with the bot's knowledge-base model (`embedding_model`), untyped like the chunks'."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="corrections")
    question = models.TextField()
    answer = models.TextField()
    source_url = models.URLField(max_length=CORRECTION_URL_MAX, blank=True)
    version = models.PositiveIntegerField(default=1)
    enabled = models.BooleanField(default=True)
    embedding = VectorField()
    embedding_model = models.CharField(max_length=64)
    # Questions answered from it since it was written (counted when a turn matches it).
    uses = models.PositiveIntegerField(default=0)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["bot", "enabled", "embedding_model"], name="bots_correction_match")]

    def __str__(self) -> str:
        return f"Correction {self.pk} of bot {self.bot_id}"


class CorrectionVersion(TenantScopedModel):
    """One immutable version of a correction; the highest number is the live one."""

    correction = models.ForeignKey(Correction, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    question = models.TextField()
    answer = models.TextField()
    source_url = models.URLField(max_length=CORRECTION_URL_MAX, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["correction", "number"], name="uniq_correction_version")]

    def __str__(self) -> str:
        return f"{self.correction_id} v{self.number}"


class HandoffSettings(TenantScopedModel):
    """Human handoff and lead capture for one bot (issue 18). No row: handoff is off."""

    class LeadWhen(models.TextChoices):
        NEVER = "never", "Never"
        HANDOFF = "handoff", "When the visitor asks for a person"
        BEFORE = "before", "Before the chat"

    class FieldMode(models.TextChoices):
        OFF = "off", "Not asked"
        OPTIONAL = "optional", "Optional"
        REQUIRED = "required", "Required"

    bot = models.OneToOneField(Bot, on_delete=models.CASCADE, related_name="handoff")
    enabled = models.BooleanField(default=False)
    # Trigger: the visitor asks for a person (the widget's button, or "talk to a human").
    on_request = models.BooleanField(default=True)
    # Trigger: the bot gave its "I don't know" (the relevance gate found nothing) this many times in a row.
    on_unanswered = models.BooleanField(default=False)
    unanswered_count = models.PositiveSmallIntegerField(default=2)
    # Trigger: the visitor rated an answer thumbs-down.
    on_thumbs_down = models.BooleanField(default=False)
    hours_enabled = models.BooleanField(default=False)
    timezone = models.CharField(max_length=64, default="UTC")
    # Weekdays with business hours, Monday = 0.
    hours_days = models.JSONField(default=list, blank=True)
    hours_start = models.TimeField(default="09:00")
    hours_end = models.TimeField(default="17:00")
    outside_hours_message = models.CharField(
        max_length=500,
        default="Our team is away right now. Leave your contact details and your question, and we will get back to you.",
    )
    # Nobody took the conversation in this many minutes: the visitor is asked to leave a lead instead.
    pickup_timeout_minutes = models.PositiveSmallIntegerField(default=5)
    lead_when = models.CharField(max_length=16, choices=LeadWhen.choices, default=LeadWhen.HANDOFF)
    name_field = models.CharField(max_length=16, choices=FieldMode.choices, default=FieldMode.OPTIONAL)
    email_field = models.CharField(max_length=16, choices=FieldMode.choices, default=FieldMode.REQUIRED)
    phone_field = models.CharField(max_length=16, choices=FieldMode.choices, default=FieldMode.OFF)
    # Labels of extra optional text fields, e.g. ["Company", "Order number"].
    custom_fields = models.JSONField(default=list, blank=True)
    # When set, the form shows a required consent checkbox with this text.
    consent_text = models.CharField(max_length=300, blank=True, default="")

    def __str__(self) -> str:
        return f"Handoff settings of bot {self.bot_id}"
