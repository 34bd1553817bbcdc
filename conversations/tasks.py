"""Celery entry points of the conversations app."""

from __future__ import annotations

import logging

from celery import shared_task

from .services import dangerously_settle_stale_streaming

logger = logging.getLogger(__name__)


@shared_task
def settle_stale_streaming() -> int:
    """Beat, every minute: answers left `streaming` by a dead server become `partial`."""
    settled = dangerously_settle_stale_streaming()
    if settled:
        logger.warning("settled %s stale streaming messages as partial", settled)
    return settled
