from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedModel


class Plan(models.Model):
    """A price point and its limits. Editable by operators in admin. Not tenant-owned."""

    name = models.CharField(max_length=60)
    slug = models.SlugField(unique=True)
    stripe_price_ids = models.JSONField(default=list, blank=True, help_text="Stripe price ids for this plan")
    price_monthly_cents = models.PositiveIntegerField(default=0)
    trial_days = models.PositiveIntegerField(default=0)
    is_default = models.BooleanField(default=False, help_text="The free plan every new tenant starts on")
    is_public = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)
    # Limits. 0 means "none allowed"; None means unlimited.
    max_bots = models.PositiveIntegerField(null=True, blank=True, default=1)
    max_documents = models.PositiveIntegerField(null=True, blank=True, default=20)
    max_storage_bytes = models.PositiveBigIntegerField(null=True, blank=True, default=50 * 1024 * 1024)
    max_messages_per_month = models.PositiveIntegerField(null=True, blank=True, default=200)
    max_members = models.PositiveIntegerField(null=True, blank=True, default=3)
    max_upload_bytes = models.PositiveBigIntegerField(default=20 * 1024 * 1024)
    max_pages_per_document = models.PositiveIntegerField(default=500)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty: every model")
    # Features.
    custom_branding = models.BooleanField(default=False)
    api_access = models.BooleanField(default=False)
    webhooks = models.BooleanField(default=False)
    allows_overage = models.BooleanField(
        default=False,
        help_text="Messages over the monthly limit are let through and reported to Stripe as meter events",
    )

    class Meta:
        ordering = ["sort_order", "price_monthly_cents"]

    def __str__(self) -> str:
        return self.name

    @property
    def checkout_price_id(self) -> str:
        """The price a new Checkout uses: the first of stripe_price_ids (older ones still map here)."""
        return self.stripe_price_ids[0] if self.stripe_price_ids else ""

    @property
    def price_display(self) -> str:
        dollars = f"{self.price_monthly_cents / 100:,.2f}"
        return "$" + dollars.removesuffix(".00")

    @property
    def is_purchasable(self) -> bool:
        return bool(self.checkout_price_id) and not self.is_default


class Subscription(TenantScopedModel):
    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"
        INCOMPLETE = "incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired"
        UNPAID = "unpaid"
        PAUSED = "paused"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ACTIVE)
    stripe_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_end = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last re-sync from the Stripe API")
    updated = models.DateTimeField(default=timezone.now)
    # An operator's comp: this plan applies until `comp_until`, over whatever the subscription says
    # (Stripe's sync never touches these two), then the subscription's own plan applies again.
    comp_plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Given by an operator"
    )
    comp_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="one_subscription_per_tenant"),
            # A webhook finds its tenant by customer id, so one customer must mean one tenant.
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="one_tenant_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.plan} ({self.status})"

    @property
    def comp_active(self) -> bool:
        return self.comp_plan_id is not None and self.comp_until is not None and self.comp_until > timezone.now()

    @property
    def is_live(self) -> bool:
        """A paid subscription that still grants its plan (past_due counts during the grace period)."""
        return bool(self.stripe_subscription_id) and self.status in LIVE_STATUSES


LIVE_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE)


class UsageCounter(TenantScopedModel):
    """What a tenant used in one billing period (calendar month, UTC)."""

    period = models.DateField(help_text="First day of the month")
    messages = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    documents = models.PositiveIntegerField(default=0)
    storage_bytes = models.PositiveBigIntegerField(default=0)
    warned_kinds = models.JSONField(default=list, blank=True, help_text="Limits already warned at 80% this period")
    overage_reported = models.PositiveIntegerField(
        default=0, help_text="Messages over the limit already reported to Stripe as meter events"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period"], name="one_counter_per_period")]
        ordering = ["-period"]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.period:%Y-%m}"


class StripeEvent(models.Model):
    """Every webhook delivery, stored before it is processed. Not tenant-owned: an event for an
    unknown customer has no tenant, and operators must still see it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (type not handled)"
        UNMATCHED = "unmatched", "Unmatched (unknown customer)"
        FAILED = "failed", "Failed"

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    received = models.DateTimeField(default=timezone.now)
    processed = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received"]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type} ({self.status})"
