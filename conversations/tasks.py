"""Celery entry points for conversations: ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from tenants.context import tenant_task

from .services import dangerously_settle_stale_streaming

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
@tenant_task
def conversation_memory_refresh_task(*, tenant_id: int, conversation_id: int) -> None:
    from conversations.pipeline.memory import conversation_memory_refresh

    conversation_memory_refresh(conversation_id=conversation_id)


@shared_task
def settle_stale_streaming() -> int:
    """Beat, every minute: answers left `streaming` by a dead server become `partial`."""
    settled = dangerously_settle_stale_streaming()
    if settled:
        logger.warning("settled %s stale streaming messages as partial", settled)
    return settled
