"""Celery entry points for webhooks: ids in, one service call each."""

from __future__ import annotations

from celery import shared_task

from tenants.context import tenant_task

from . import services


@shared_task(acks_late=True)
@tenant_task
def delivery_attempt_task(*, delivery_id: int, tenant_id: int) -> str:
    # Retries are not Celery retries: a long countdown outlives the broker's visibility timeout.
    # The delivery stores when its next attempt is due, and deliveries_due_task queues it then.
    return services.delivery_attempt(delivery_id=delivery_id)


@shared_task
def deliveries_due_task() -> int:
    """Every 30 s (beat): queue the deliveries whose next attempt is due."""
    return services.deliveries_queue_due()
