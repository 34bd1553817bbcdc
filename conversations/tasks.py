"""Celery entry points for conversations: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from tenants.context import tenant_task


@shared_task(acks_late=True, ignore_result=True)
@tenant_task
def conversation_memory_refresh_task(*, tenant_id: int, conversation_id: int) -> None:
    from conversations.pipeline.memory import conversation_memory_refresh

    conversation_memory_refresh(conversation_id=conversation_id)
