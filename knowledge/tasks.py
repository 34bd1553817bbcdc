"""Celery entry points: ids in, one service call, queued with transaction.on_commit."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from tenants.context import tenant_task

from . import services
from .ingestion import IngestRetry, document_ingest


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the document's own attempt counter decides when to give up
    soft_time_limit=settings.KNOWLEDGE_INGEST_TIME_LIMIT_SECONDS,
    time_limit=settings.KNOWLEDGE_INGEST_TIME_LIMIT_SECONDS + 60,
)
@tenant_task
def document_ingest_task(self, *, document_id: int, tenant_id: int) -> str:
    try:
        return document_ingest(document_id=document_id)
    except IngestRetry as exc:
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


@shared_task(acks_late=True)
@tenant_task
def knowledge_base_index_task(*, knowledge_base_id: int, tenant_id: int) -> bool:
    from .models import KnowledgeBase

    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    return bool(knowledge_base) and services.knowledge_base_index_ensure(knowledge_base=knowledge_base)


@shared_task(acks_late=True)
@tenant_task
def knowledge_base_reindex_finish_task(*, knowledge_base_id: int, tenant_id: int) -> str:
    from .reindex import knowledge_base_reindex_finish

    return knowledge_base_reindex_finish(knowledge_base_id=knowledge_base_id)


@shared_task
def documents_watchdog() -> dict[str, int]:
    return services.documents_watchdog()


@shared_task
def documents_resync_due() -> dict[str, int]:
    return services.documents_resync_due()
