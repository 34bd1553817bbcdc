"""Writes for knowledge bases and documents. Ingestion itself lives in knowledge.ingestion.

Every service expects the tenant in context (tenant_context / TenantMiddleware / tenant_task)
and only touches rows through the scoped managers.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from billing.quotas import effective_plan, quota_check
from billing.services import usage_record
from chatbot_saas.errors import AppError
from tenants.events import event_emit
from tenants.models import Tenant

from .embeddings import get_embedder
from .models import Chunk, Document, KnowledgeBase, new_storage_name

UPLOAD_CHUNK = 1 << 20

# Deletions and renames are logged here for the audit trail (who, which tenant, what, how much).
audit = logging.getLogger("knowledge.audit")


def max_upload_bytes(*, tenant: Tenant) -> int:
    """The per-plan upload limit, capped by the KNOWLEDGE_MAX_UPLOAD_BYTES default."""
    return min(effective_plan(tenant=tenant).max_upload_bytes, settings.KNOWLEDGE_MAX_UPLOAD_BYTES)


def max_pages(*, tenant: Tenant) -> int:
    return min(effective_plan(tenant=tenant).max_pages_per_document, settings.KNOWLEDGE_MAX_PAGES)


def knowledge_base_create(
    *,
    tenant: Tenant,
    name: str,
    description: str = "",
    embedding_model: str = KnowledgeBase.EmbeddingModel.MINILM,
    chunk_size_tokens: int = 200,
    chunk_overlap_tokens: int = 30,
) -> KnowledgeBase:
    """Create a knowledge base. Names are unique per tenant; the chunk size must fit the model.

    Raises AppError (kb_name_taken, invalid_chunking, unknown_embedding_model).
    """
    name = name.strip()
    if not name:
        raise AppError("Give the knowledge base a name.", code="invalid_name")
    if embedding_model not in KnowledgeBase.EmbeddingModel.values:
        raise AppError(f"Unknown embedding model {embedding_model!r}.", code="unknown_embedding_model")
    limit = get_embedder(embedding_model).max_input_tokens
    if not 32 <= chunk_size_tokens <= limit:
        raise AppError(
            f"Chunk size must be between 32 and {limit} tokens for {embedding_model}.", code="invalid_chunking"
        )
    if not 0 <= chunk_overlap_tokens <= chunk_size_tokens // 2:
        raise AppError("Chunk overlap must be between 0 and half the chunk size.", code="invalid_chunking")
    try:
        with transaction.atomic():
            return KnowledgeBase.objects.create(
                tenant=tenant,
                name=name,
                description=description,
                embedding_model=embedding_model,
                chunk_size_tokens=chunk_size_tokens,
                chunk_overlap_tokens=chunk_overlap_tokens,
            )
    except IntegrityError:
        raise AppError(f"A knowledge base named {name!r} already exists.", code="kb_name_taken") from None


def _queue_ingest(document: Document) -> None:
    from .tasks import document_ingest_task

    document_id, tenant_id = document.pk, document.tenant_id
    transaction.on_commit(lambda: document_ingest_task.delay(document_id=document_id, tenant_id=tenant_id))


def _hash_and_size(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: stream.read(UPLOAD_CHUNK), b""):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    return digest.hexdigest(), size


def _failed_on_arrival(*, knowledge_base: KnowledgeBase, code: str, message: str, **fields: Any) -> Document:
    document = Document.objects.create(
        tenant=knowledge_base.tenant,
        knowledge_base=knowledge_base,
        status=Document.Status.FAILED,
        error_code=code,
        error_message=message,
        **fields,
    )
    emit_document_final(document)
    return document


def emit_document_final(document: Document) -> None:
    """Emit document.ready or document.failed (tenants.events) once the current transaction
    commits. Call where a document reaches that status."""
    payload = {
        "document_id": document.pk,
        "knowledge_base_id": document.knowledge_base_id,
        "title": document.title,
        "status": document.status,
        "error_code": document.error_code,
        "error_message": document.error_message,
    }
    name, tenant_id = f"document.{document.status}", document.tenant_id
    transaction.on_commit(lambda: event_emit(name=name, tenant_id=tenant_id, payload=payload))


def _store_and_queue(
    *, knowledge_base: KnowledgeBase, content: File, digest: str, size: int, **fields: Any
) -> Document:
    tenant = knowledge_base.tenant
    quota_check(tenant=tenant, kind="documents", amount=1)
    quota_check(tenant=tenant, kind="storage_bytes", amount=size)
    # The stored name is random: user-supplied file names never reach the filesystem.
    stored = default_storage.save(new_storage_name(), content)
    document = Document.objects.create(
        tenant=tenant, knowledge_base=knowledge_base, stored_file=stored, content_hash=digest, size=size, **fields
    )
    usage_record(tenant=tenant, documents=1, storage_bytes=size)
    _queue_ingest(document)
    return document


@transaction.atomic
def document_create_from_upload(
    *, knowledge_base: KnowledgeBase, uploaded_file: Any, created_by: Any = None
) -> Document:
    """Store an uploaded file and queue its ingestion on commit.

    - An identical file (same SHA-256) already in this knowledge base is returned as is:
      nothing is stored, counted or embedded twice.
    - A 0-byte file or one over the plan's upload limit becomes a `failed` document with the
      reason, without storing its bytes.
    - Raises QuotaExceeded (quota_exceeded) when the plan's document or storage quota is used up.
    The format is decided later, by the file's magic bytes, not by its name or Content-Type.
    """
    filename = (getattr(uploaded_file, "name", "") or "upload").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:255]
    size = int(getattr(uploaded_file, "size", 0) or 0)
    common = {"source": Document.Source.UPLOAD, "title": filename[:300], "original_filename": filename}
    if created_by is not None and getattr(created_by, "is_authenticated", False):
        common["created_by"] = created_by
    limit = max_upload_bytes(tenant=knowledge_base.tenant)
    if size == 0:
        return _failed_on_arrival(
            knowledge_base=knowledge_base, code="empty_file", message="The file is empty.", **common
        )
    if size > limit:
        return _failed_on_arrival(
            knowledge_base=knowledge_base,
            code="file_too_large",
            message=f"The file is {filesizeformat(size)}; your plan allows {filesizeformat(limit)} per file.",
            size=0,
            **common,
        )
    uploaded_file.seek(0)
    digest, size = _hash_and_size(uploaded_file)
    existing = Document.objects.filter(knowledge_base=knowledge_base, content_hash=digest).first()
    if existing is not None:
        return existing
    return _store_and_queue(
        knowledge_base=knowledge_base, content=File(uploaded_file), digest=digest, size=size, **common
    )


@transaction.atomic
def document_create_from_text(*, knowledge_base: KnowledgeBase, title: str, text: str) -> Document:
    """Store pasted text as a document and queue its ingestion. Same guarantees as uploads."""
    data = text.encode("utf-8")
    title = (title.strip() or "Pasted text")[:300]
    common = {"source": Document.Source.TEXT, "title": title, "mime_type": "text/plain"}
    if not text.strip():
        return _failed_on_arrival(
            knowledge_base=knowledge_base, code="empty_file", message="The text is empty.", **common
        )
    limit = max_upload_bytes(tenant=knowledge_base.tenant)
    if len(data) > limit:
        return _failed_on_arrival(
            knowledge_base=knowledge_base,
            code="file_too_large",
            message=f"The text is {filesizeformat(len(data))}; your plan allows {filesizeformat(limit)} per document.",
            **common,
        )
    digest = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(knowledge_base=knowledge_base, content_hash=digest).first()
    if existing is not None:
        return existing
    return _store_and_queue(
        knowledge_base=knowledge_base, content=ContentFile(data), digest=digest, size=len(data), **common
    )


@transaction.atomic
def document_create_from_url(*, knowledge_base: KnowledgeBase, url: str, is_sitemap: bool = False) -> Document:
    """Register a web page (or a sitemap of pages) and queue its fetch and ingestion.

    The URL is checked by the egress guard now (scheme, and the host must resolve to public
    addresses only), and again before every connection and redirect at fetch time.
    Raises AppError(url_refused / url_invalid / url_unresolvable) or QuotaExceeded.
    """
    from .egress import EgressRefused, check_url

    url = url.strip()
    try:
        check_url(url)
    except EgressRefused as exc:
        raise AppError(str(exc), code=exc.code) from None
    existing = Document.objects.filter(knowledge_base=knowledge_base, url=url).first()
    if existing is not None:
        return existing
    quota_check(tenant=knowledge_base.tenant, kind="documents", amount=1)
    document = Document.objects.create(
        tenant=knowledge_base.tenant,
        knowledge_base=knowledge_base,
        source=Document.Source.SITEMAP if is_sitemap else Document.Source.URL,
        title=url[:300],
        url=url,
    )
    usage_record(tenant=knowledge_base.tenant, documents=1)
    _queue_ingest(document)
    return document


def _requeue(document: Document) -> None:
    now = timezone.now()
    document.status = Document.Status.QUEUED
    document.progress = 0
    document.attempts = 0
    document.error_code = ""
    document.error_message = ""
    document.updated = document.status_changed = now
    document.save(
        update_fields=["status", "progress", "attempts", "error_code", "error_message", "updated", "status_changed"]
    )
    _queue_ingest(document)


@transaction.atomic
def document_requeue_unfinished(*, document: Document) -> bool:
    """Queue a document again if it is not final; True when queued.

    For start-up code that runs while no worker can hold the document (make run's bootstrap):
    the embedded Redis does not keep messages across runs, so an unfinished document would
    otherwise wait for the watchdog.
    """
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.is_final:
        return False
    _requeue(document)
    return True


@transaction.atomic
def document_retry(*, document: Document) -> Document:
    """Queue a failed document again with a fresh attempt budget. Raises AppError otherwise."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.status != Document.Status.FAILED:
        raise AppError("Only failed documents can be retried.", code="not_failed")
    if not document.stored_file and not document.url:
        raise AppError(
            "This document was refused on arrival and has nothing to retry; upload it again.", code="nothing_to_retry"
        )
    _requeue(document)
    return document


@transaction.atomic
def document_resync(*, document: Document) -> Document:
    """Fetch a URL or sitemap document again. Unchanged content (same hash) is not re-embedded."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if not document.can_resync:
        raise AppError("Only web pages and sitemaps can be re-synced.", code="not_resyncable")
    if not document.is_final:
        raise AppError("This document is already being processed.", code="in_progress")
    _requeue(document)
    return document


def _counted(document: Document) -> bool:
    """Whether the document was added to the usage counter (documents refused on arrival are not)."""
    return bool(document.stored_file or document.url)


def _usage_give_back(*, tenant: Tenant, documents: list[Document]) -> None:
    counted = [d for d in documents if _counted(d)]
    if counted:
        usage_record(tenant=tenant, documents=-len(counted), storage_bytes=-sum(d.size for d in counted))


@transaction.atomic
def document_delete(*, document: Document, deleted_by: Any = None) -> None:
    """Delete a document, its chunks (cascade) and its stored file (after commit).

    Gives its quota back: the document and storage quotas count Document rows, and the period's
    usage counter is decremented by what document creation added. During a re-index the
    knowledge base may be waiting only for this document, so the swap is tried after commit.
    Tenant context required; the row is re-read under lock through the scope.
    """
    document = Document.objects.select_for_update().filter(pk=document.pk).first()
    if document is None:
        return  # already gone (a double click): nothing to give back twice
    stored, kb_id, document_id = document.stored_file, document.knowledge_base_id, document.pk
    document.delete()
    _usage_give_back(tenant=document.tenant, documents=[document])
    audit.info(
        "document deleted tenant=%s kb=%s document=%s title=%r size=%s by=%s",
        document.tenant_id,
        kb_id,
        document_id,
        document.title,
        document.size,
        getattr(deleted_by, "pk", None),
    )
    if stored:
        transaction.on_commit(lambda: default_storage.delete(stored))
    if KnowledgeBase.objects.filter(pk=kb_id).exclude(reindex_to="").exists():
        from .reindex import reindex_finish_on_commit

        reindex_finish_on_commit(knowledge_base_id=kb_id, tenant_id=document.tenant_id)


@transaction.atomic
def knowledge_base_rename(*, knowledge_base: KnowledgeBase, name: str, description: str | None = None) -> KnowledgeBase:
    """Rename a knowledge base (and optionally change its description). Tenant context required.

    Raises AppError(invalid_name, kb_name_taken). Bots refer to it by id, so nothing else changes.
    """
    name = name.strip()
    if not name:
        raise AppError("Give the knowledge base a name.", code="invalid_name")
    kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    old = kb.name
    kb.name = name[:120]
    fields = ["name"]
    if description is not None:
        kb.description = description
        fields.append("description")
    try:
        with transaction.atomic():
            kb.save(update_fields=fields)
    except IntegrityError:
        raise AppError(f"A knowledge base named {name!r} already exists.", code="kb_name_taken") from None
    if old != kb.name:
        audit.info("knowledge base renamed tenant=%s kb=%s from=%r to=%r", kb.tenant_id, kb.pk, old, kb.name)
    return kb


@transaction.atomic
def knowledge_base_delete(*, knowledge_base: KnowledgeBase, deleted_by: Any = None) -> dict[str, int]:
    """Delete a knowledge base with its documents, chunks, stored files and partial indexes.

    - Only the current tenant's knowledge base can be deleted: it is re-read through the scope
      under lock, so another tenant's object raises KnowledgeBase.DoesNotExist.
    - Bots lose the attachment (the M2M rows go with it) and keep answering per their policy.
    - The documents' quota is given back; stored files and the partial HNSW index (a large
      knowledge base's own) are removed after commit, so a rollback loses nothing.
    - A worker still ingesting one of its documents finds the document gone and stops.
    Returns what was removed, for the caller's message and the audit log.
    """
    kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    documents = list(Document.objects.filter(knowledge_base=kb).only("pk", "stored_file", "url", "size", "tenant_id"))
    bots = kb.bots.count()
    # One statement each: Chunk has nothing cascading from it, so Django deletes it in bulk.
    chunks, _ = Chunk.objects.filter(knowledge_base=kb).delete()
    Document.objects.filter(knowledge_base=kb).delete()
    kb_id, tenant = kb.pk, kb.tenant
    kb.delete()  # also removes the bots' attachments (the M2M through rows)
    _usage_give_back(tenant=tenant, documents=documents)
    stored = [d.stored_file for d in documents if d.stored_file]

    def after_commit() -> None:
        from .retrieval import kb_indexes_drop

        kb_indexes_drop(kb_id)
        for name in stored:
            default_storage.delete(name)

    transaction.on_commit(after_commit)
    audit.info(
        "knowledge base deleted tenant=%s kb=%s name=%r documents=%s chunks=%s bots_detached=%s by=%s",
        tenant.pk,
        kb_id,
        kb.name,
        len(documents),
        chunks,
        bots,
        getattr(deleted_by, "pk", None),
    )
    return {"documents": len(documents), "chunks": chunks, "bots": bots}


@transaction.atomic
def document_replace_content(*, document: Document, data: bytes) -> bool:
    """Replace an upload/text document's content if it changed; True when re-queued.

    Used by the demo bootstrap: unchanged content (same SHA-256) is skipped.
    """
    digest = hashlib.sha256(data).hexdigest()
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.content_hash == digest and document.status != Document.Status.FAILED:
        return False
    old = document.stored_file
    document.stored_file = default_storage.save(new_storage_name(), ContentFile(data))
    document.content_hash = digest
    document.size = len(data)
    document.save(update_fields=["stored_file", "content_hash", "size"])
    if old:
        transaction.on_commit(lambda: default_storage.delete(old))
    _requeue(document)
    return True


def documents_watchdog(*, stuck_after: timedelta | None = None) -> dict[str, int]:
    """Operator sweep over every tenant: re-queue documents stuck in a non-final status.

    A document counts as stuck when nothing was written to it for `stuck_after` (default
    KNOWLEDGE_STUCK_AFTER_SECONDS): its worker died or its message was lost. Ingestion counts
    attempts, so a document that kills its worker every time ends `failed` after the limit.
    """
    from .tasks import document_ingest_task

    stuck_after = stuck_after if stuck_after is not None else timedelta(seconds=settings.KNOWLEDGE_STUCK_AFTER_SECONDS)
    cutoff = timezone.now() - stuck_after
    stuck = (
        Document.objects.unscoped()
        .exclude(status__in=Document.FINAL_STATUSES)
        .filter(updated__lte=cutoff)
        .values_list("pk", "tenant_id")
    )
    requeued = 0
    for document_id, tenant_id in stuck:
        Document.objects.unscoped().filter(pk=document_id).update(updated=timezone.now())
        document_ingest_task.delay(document_id=document_id, tenant_id=tenant_id)
        requeued += 1
    return {"requeued": requeued}


def documents_resync_due() -> dict[str, int]:
    """Operator sweep: queue a re-sync of URL and sitemap documents older than KNOWLEDGE_RESYNC_HOURS."""
    from tenants.context import tenant_context

    cutoff = timezone.now() - timedelta(hours=settings.KNOWLEDGE_RESYNC_HOURS)
    due = (
        Document.objects.unscoped()
        .filter(source__in=[Document.Source.URL, Document.Source.SITEMAP], status=Document.Status.READY)
        .filter(last_synced__lte=cutoff)
        .select_related("tenant")
    )
    count = 0
    for document in due:
        with tenant_context(document.tenant):
            document_resync(document=document)
        count += 1
    return {"queued": count}


def knowledge_base_index_ensure(*, knowledge_base: KnowledgeBase) -> bool:
    """Give a knowledge base larger than KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS its own partial HNSW
    index (idempotent; True when it exists afterwards, False also while another worker builds
    it). Small ones are searched exactly instead.
    An index built with other KNOWLEDGE_HNSW_M / _EF_CONSTRUCTION than today's is rebuilt.
    """
    from .retrieval import kb_index_create, kb_index_current, kb_index_exists, scope_available

    dim = knowledge_base.embedding_dim
    if kb_index_current(knowledge_base.pk, dim):
        return True
    if not kb_index_exists(knowledge_base.pk, dim):
        available = scope_available(tenant_id=knowledge_base.tenant_id, knowledge_base_ids=[knowledge_base.pk])
        if available <= settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS:
            return False
    return kb_index_create(knowledge_base.pk, dim)


def chunk_delete_stale(*, document: Document, keep_versions: set[int]) -> int:
    """Remove chunks of abandoned ingestion runs (never visible to retrieval)."""
    deleted, _ = Chunk.objects.filter(document=document).exclude(document_version__in=keep_versions).delete()
    return deleted
