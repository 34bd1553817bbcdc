"""Changing a knowledge base's embedding model: a re-index.

Why one swap per knowledge base, not per document: a query is embedded once, with one model,
and compared with chunks of that model's dimension. Swapping document by document would leave
the knowledge base half in 384 and half in 1536 dimensions for the whole re-index, and a query
could only ever search one half. So:
1. `knowledge_base_reindex` records the target model in `reindex_to` and sends every document
   back through the pipeline on the workers (status and progress as for a new document).
2. Each ingestion run embeds with `reindex_to` and *stages* its chunks (`staged_version`)
   instead of publishing them. Retrieval keeps reading the active versions, all made with
   `embedding_model`, which is still the old model: the knowledge base never looks empty.
3. When every document is final, `knowledge_base_reindex_finish` makes each staged version the
   active one, deletes the old model's chunks and sets `embedding_model`, in one transaction
   under the knowledge base's row lock. Retrieval sees either all-old or all-new chunks, and
   `chunk_search` embeds the query with `embedding_model`, the model of the visible chunks.
If a document cannot be re-embedded (the OpenAI key is wrong, say), the re-index stalls with a
message and search stays on the old model, until the document is retried, deleted, or the
re-index is cancelled. The cost is holding both sets of chunks until the swap.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from chatbot_saas.errors import AppError

from .models import EMBEDDING_DIMENSIONS, Chunk, Document, KnowledgeBase

audit = logging.getLogger("knowledge.audit")


def _with_content() -> Q:
    # Documents refused on arrival have nothing to re-embed.
    return ~Q(stored_file="") | ~Q(url="")


def _queue(document_ids: list[int], tenant_id: int) -> None:
    from .tasks import document_ingest_task

    def send() -> None:
        for document_id in document_ids:
            document_ingest_task.delay(document_id=document_id, tenant_id=tenant_id)

    transaction.on_commit(send)


def knowledge_base_reindex(*, knowledge_base: KnowledgeBase, embedding_model: str, started_by: Any = None) -> int:
    """Start re-embedding every document of the knowledge base with `embedding_model`.

    Returns how many documents were queued. Tenant context required. Raises AppError with
    unknown_embedding_model, same_embedding_model, reindex_in_progress or documents_in_progress
    (a document still being processed would be embedded with the old model: wait for it).
    Search keeps working on the old model until the swap (see the module docstring).
    """
    if embedding_model not in KnowledgeBase.EmbeddingModel.values:
        raise AppError(f"Unknown embedding model {embedding_model!r}.", code="unknown_embedding_model")
    with transaction.atomic():
        kb = _locked_idle_knowledge_base(knowledge_base, same_model_refused=embedding_model)
        now = timezone.now()
        kb.reindex_to, kb.reindex_started, kb.reindex_error = embedding_model, now, ""
        kb.save(update_fields=["reindex_to", "reindex_started", "reindex_error"])
        ids = _requeue_documents(kb, now, staged_version=None, staged_chunk_count=0)
        audit.info(
            "knowledge base re-index started tenant=%s kb=%s from=%s to=%s documents=%s by=%s",
            kb.tenant_id,
            kb.pk,
            kb.embedding_model,
            embedding_model,
            len(ids),
            getattr(started_by, "pk", None),
        )
    if not ids:
        knowledge_base_reindex_finish(knowledge_base_id=kb.pk)
    return len(ids)


def knowledge_base_reindex_finish(*, knowledge_base_id: int) -> str:
    """Swap in the re-embedded chunks if every document is done. Idempotent; tenant context required.

    Returns "idle" (no re-index), "waiting" (documents still in the pipeline), "stalled" (some
    document that is searchable now has no re-embedded version: reindex_error says so) or
    "swapped". Holds the knowledge base's row lock, so concurrent callers swap once.
    """
    with transaction.atomic():
        kb = KnowledgeBase.objects.select_for_update().filter(pk=knowledge_base_id).first()
        if kb is None or not kb.is_reindexing:
            return "idle"
        documents = Document.objects.filter(knowledge_base=kb)
        if documents.exclude(status__in=Document.FINAL_STATUSES).exists():
            return "waiting"
        missing = documents.filter(active_version__isnull=False, staged_version__isnull=True).count()
        if missing:
            message = (
                f"{missing} document(s) could not be re-embedded with {kb.reindex_to}. Retry or delete them, "
                f"or cancel the re-index. Search keeps using {kb.embedding_model} meanwhile."
            )
            if kb.reindex_error != message:
                kb.reindex_error = message
                kb.save(update_fields=["reindex_error"])
            return "stalled"
        old_model, new_model = kb.embedding_model, kb.reindex_to
        swapped = documents.filter(staged_version__isnull=False).update(
            active_version=F("staged_version"),
            chunk_count=F("staged_chunk_count"),
            staged_version=None,
            staged_chunk_count=0,
        )
        # The old chunks are invisible from here on (their versions are no longer active);
        # deleting them in the same transaction keeps the table free of orphans.
        dropped, _ = Chunk.objects.filter(knowledge_base=kb).exclude(embedding_model=new_model).delete()
        kb.embedding_model, kb.reindex_to, kb.reindex_error, kb.reindex_started = new_model, "", "", None
        kb.save(update_fields=["embedding_model", "reindex_to", "reindex_error", "reindex_started"])
        kb_id, tenant_id, old_dim = kb.pk, kb.tenant_id, EMBEDDING_DIMENSIONS[old_model]

        def after_commit() -> None:
            from .retrieval import kb_indexes_drop
            from .tasks import knowledge_base_index_task

            if old_dim != kb.embedding_dim:
                kb_indexes_drop(kb_id, [old_dim])
            knowledge_base_index_task.delay(knowledge_base_id=kb_id, tenant_id=tenant_id)

        transaction.on_commit(after_commit)
        audit.info(
            "knowledge base re-index swapped tenant=%s kb=%s from=%s to=%s documents=%s old_chunks_deleted=%s",
            tenant_id,
            kb_id,
            old_model,
            new_model,
            swapped,
            dropped,
        )
    return "swapped"


def reindex_finish_on_commit(*, knowledge_base_id: int, tenant_id: int) -> None:
    """Try the swap on a worker once the current transaction commits (from a web request)."""
    from .tasks import knowledge_base_reindex_finish_task

    transaction.on_commit(
        lambda: knowledge_base_reindex_finish_task.delay(knowledge_base_id=knowledge_base_id, tenant_id=tenant_id)
    )


@transaction.atomic
def knowledge_base_reindex_cancel(*, knowledge_base: KnowledgeBase, cancelled_by: Any = None) -> None:
    """Abandon a re-index: search stays on the current model, staged chunks are deleted.

    Documents whose only version was staged (added during the re-index) are queued again with
    the current model; a run still in flight notices the change when it publishes and re-queues
    itself. Documents that failed to re-embed still show their complete old version, so they
    return to `ready`. Tenant context required. Raises AppError(not_reindexing).
    """
    kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    if not kb.is_reindexing:
        raise AppError("No re-index is under way.", code="not_reindexing")
    target = kb.reindex_to
    kb.reindex_to, kb.reindex_error, kb.reindex_started = "", "", None
    kb.save(update_fields=["reindex_to", "reindex_error", "reindex_started"])
    documents = Document.objects.filter(knowledge_base=kb)
    Chunk.objects.filter(knowledge_base=kb, embedding_model=target).delete()
    orphans = documents.filter(active_version__isnull=True, staged_version__isnull=False, status=Document.Status.READY)
    orphan_ids = list(orphans.values_list("pk", flat=True))
    now = timezone.now()
    orphans.update(status=Document.Status.QUEUED, progress=0, attempts=0, updated=now, status_changed=now)
    documents.update(staged_version=None, staged_chunk_count=0)
    documents.filter(status=Document.Status.FAILED, active_version__isnull=False).update(
        status=Document.Status.READY, progress=100, error_code="", error_message="", updated=now, status_changed=now
    )
    _queue(orphan_ids, kb.tenant_id)
    audit.info(
        "knowledge base re-index cancelled tenant=%s kb=%s target=%s by=%s",
        kb.tenant_id,
        kb.pk,
        target,
        getattr(cancelled_by, "pk", None),
    )


def _locked_idle_knowledge_base(knowledge_base: KnowledgeBase, *, same_model_refused: str = "") -> KnowledgeBase:
    """The knowledge base, locked FOR UPDATE, when no re-index is under way and every document is
    final; AppError reindex_in_progress, same_embedding_model or documents_in_progress otherwise."""
    kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    if kb.is_reindexing:
        raise AppError(
            f"A re-index to {kb.reindex_to} is already under way; cancel it first.", code="reindex_in_progress"
        )
    if same_model_refused and same_model_refused == kb.embedding_model:
        raise AppError(f"This knowledge base already uses {same_model_refused}.", code="same_embedding_model")
    if Document.objects.filter(knowledge_base=kb).exclude(status__in=Document.FINAL_STATUSES).exists():
        raise AppError(
            "Some documents are still being processed. Wait until they are ready, then re-index.",
            code="documents_in_progress",
        )
    return kb


def _requeue_documents(kb: KnowledgeBase, now: Any, **reset: Any) -> list[int]:
    """Queue every document with content for ingestion again (fields in `reset` cleared as well)."""
    todo = Document.objects.filter(knowledge_base=kb).filter(_with_content())
    ids = list(todo.values_list("pk", flat=True))
    todo.update(
        status=Document.Status.QUEUED,
        progress=0,
        attempts=0,
        error_code="",
        error_message="",
        updated=now,
        status_changed=now,
        **reset,
    )
    _queue(ids, kb.tenant_id)
    return ids


def knowledge_base_rebuild(*, knowledge_base: KnowledgeBase, started_by: Any = None) -> int:
    """Re-run ingestion for every document of the knowledge base with its current embedding model
    (an operator's re-index after a parser or chunking fix). Returns how many were queued.

    Each run publishes its new version in one short transaction, as any ingestion does, so search
    never sees a half-written document; the model does not change, so no swap is needed. The
    content hashes are cleared so ingestion's "unchanged content" shortcut does not keep the old
    chunks (each run stores the hash again). Tenant context required. Raises AppError
    reindex_in_progress or documents_in_progress.
    """
    with transaction.atomic():
        kb = _locked_idle_knowledge_base(knowledge_base)
        ids = _requeue_documents(kb, timezone.now(), content_hash="")
        audit.info(
            "knowledge base rebuild started tenant=%s kb=%s model=%s documents=%s by=%s",
            kb.tenant_id,
            kb.pk,
            kb.embedding_model,
            len(ids),
            getattr(started_by, "pk", None),
        )
    return len(ids)
