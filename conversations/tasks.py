"""Celery entry points for conversations: ids in, one service call."""

from __future__ import annotations

import atexit
import logging
import threading

from celery import shared_task
from django.conf import settings

from chatbot_saas import runtime
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


# A Celery message per turn cost ~1.5 ms of CPU (and GIL) in the web process, a third of settling
# a turn: one message per MEMORY_REFRESH_BATCH_SECONDS carries every conversation settled
# meanwhile, once. The batch and its timer are process state (chatbot_saas.runtime).
MEMORY_REFRESH_BATCH_SECONDS = 0.5


def memory_refresh_enqueue(*, tenant_id: int, conversation_id: int) -> None:
    """Queue the conversation's memory refresh (conversation_memory_refresh) within
    MEMORY_REFRESH_BATCH_SECONDS, batched with the other conversations settled meanwhile. Eager
    Celery (tests, scripts) runs it at once."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        conversation_memory_refresh_task.delay(tenant_id=tenant_id, conversation_id=conversation_id)
        return
    with runtime.refresh_lock:
        runtime.refresh_pending[conversation_id] = tenant_id
        if runtime.refresh_timer is None:
            runtime.refresh_timer = threading.Timer(MEMORY_REFRESH_BATCH_SECONDS, memory_refresh_flush)
            runtime.refresh_timer.daemon = True
            runtime.refresh_timer.start()


@atexit.register
def memory_refresh_flush() -> None:
    """Send the queued refreshes now (the timer, and the process's exit)."""
    with runtime.refresh_lock:
        items = [[tenant_id, conversation_id] for conversation_id, tenant_id in runtime.refresh_pending.items()]
        runtime.refresh_pending.clear()
        runtime.refresh_timer = None
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


@shared_task(acks_late=True, ignore_result=True)
def knowledge_gaps_scan_task() -> None:
    """Celery beat, every minute: group the failed answers settled or rated since the last scan."""
    from .gaps import gaps_scan

    gaps_scan()


@shared_task(acks_late=True, ignore_result=True)
def insights_rollup_refresh_task() -> None:
    """Celery beat, every INSIGHTS_ROLLUP_SECONDS: recompute today's and yesterday's rollups and the
    days of recently changed messages, for every tenant (idempotent: a retry or overlap is harmless)."""
    from .insights.rollups import rollup_refresh

    rollup_refresh()


@shared_task(acks_late=True, ignore_result=True)
@tenant_task
def handoff_pickup_check_task(*, tenant_id: int, conversation_id: int) -> None:
    from .handoff import handoff_pickup_check

    handoff_pickup_check(conversation_id=conversation_id)


@shared_task(acks_late=True, ignore_result=True)
def retention_enforce_task() -> dict[str, int]:
    """Nightly (beat): delete conversations past each workspace's retention period."""
    from .privacy_services import retention_enforce

    return retention_enforce()
