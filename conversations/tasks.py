"""Celery entry points for conversations: ids in, one service call."""

from __future__ import annotations

import atexit
import logging
import threading

from celery import shared_task
from django.conf import settings

from tenants.context import tenant_task

from .services import dangerously_settle_stale_streaming

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
@tenant_task
def conversation_memory_refresh_task(*, tenant_id: int, conversation_id: int) -> None:
    from conversations.pipeline.memory import conversation_memory_refresh

    conversation_memory_refresh(conversation_id=conversation_id)


@shared_task(acks_late=True, ignore_result=True)
def conversation_memory_refresh_batch_task(*, items: list[list[int]]) -> None:
    """The memory refresh of several conversations, [[tenant id, conversation id], ...]: one failure
    does not stop the others (each refresh is idempotent, and the next turn queues it again)."""
    for tenant_id, conversation_id in items:
        try:
            conversation_memory_refresh_task(tenant_id=tenant_id, conversation_id=conversation_id)
        except Exception:
            logger.exception("memory refresh of conversation %s failed", conversation_id)


# Settled turns whose memory refresh is not queued yet, {conversation id: tenant id}. A Celery
# message per turn cost ~1.5 ms of CPU (and GIL) in the web process, a third of settling a turn;
# one message per MEMORY_REFRESH_BATCH_SECONDS carries every conversation settled meanwhile, once.
MEMORY_REFRESH_BATCH_SECONDS = 0.5
_refresh_pending: dict[int, int] = {}
_refresh_lock = threading.Lock()
_refresh_timer: threading.Timer | None = None


def memory_refresh_enqueue(*, tenant_id: int, conversation_id: int) -> None:
    """Queue the conversation's memory refresh (conversation_memory_refresh) within
    MEMORY_REFRESH_BATCH_SECONDS, batched with the other conversations settled meanwhile. Eager
    Celery (tests, scripts) runs it at once."""
    global _refresh_timer
    if settings.CELERY_TASK_ALWAYS_EAGER:
        conversation_memory_refresh_task.delay(tenant_id=tenant_id, conversation_id=conversation_id)
        return
    with _refresh_lock:
        _refresh_pending[conversation_id] = tenant_id
        if _refresh_timer is None:
            _refresh_timer = threading.Timer(MEMORY_REFRESH_BATCH_SECONDS, memory_refresh_flush)
            _refresh_timer.daemon = True
            _refresh_timer.start()


@atexit.register
def memory_refresh_flush() -> None:
    """Send the queued refreshes now (the timer, and the process's exit)."""
    global _refresh_timer
    with _refresh_lock:
        items = [[tenant_id, conversation_id] for conversation_id, tenant_id in _refresh_pending.items()]
        _refresh_pending.clear()
        _refresh_timer = None
    if not items:
        return
    try:
        conversation_memory_refresh_batch_task.delay(items=items)
    except Exception:  # a broker hiccup: the next turn of each conversation queues it again
        logger.exception("could not queue the memory refresh of %s conversations", len(items))


@shared_task
def settle_stale_streaming() -> int:
    """Beat, every minute: answers left `streaming` by a dead server become `partial`."""
    settled = dangerously_settle_stale_streaming()
    if settled:
        logger.warning("settled %s stale streaming messages as partial", settled)
    return settled


@shared_task(acks_late=True, ignore_result=True)
@tenant_task
def eval_run_task(*, tenant_id: int, run_id: int) -> None:
    """Run one evaluation run of a bot's evaluation set (conversations.evaluation.runner)."""
    from conversations.evaluation.runner import eval_run_execute

    eval_run_execute(run_id=run_id)


def eval_run_queue(run: object) -> None:
    """How bots.evaluation.gate queues a run (registered in ConversationsConfig.ready)."""
    eval_run_task.delay(tenant_id=run.tenant_id, run_id=run.pk)  # type: ignore[attr-defined]
