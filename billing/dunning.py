from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Subscription


def in_grace_period(subscription: Subscription) -> bool:
    """A past_due subscription keeps its plan for BILLING_GRACE_DAYS, then drops to free limits."""
    if subscription.past_due_since is None:
        return True
    grace = timedelta(days=getattr(settings, "BILLING_GRACE_DAYS", 7))
    return timezone.now() - subscription.past_due_since < grace
