"""document_ingest: fetch or open, parse, chunk, embed and publish one document.

Guarantees (see document_ingest's docstring): idempotent, safe to run twice at once, never a
half-written or duplicated version visible to retrieval, progress written as it goes, memory
bounded (pages are streamed and embedded in batches).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.services import usage_record

from .chunking import ChunkDraft, Section, chunk_sections
from .egress import EgressRefused, fetch
from .embeddings import EmbeddingError, get_embedder
from .models import Chunk, Document, KnowledgeBase
from .parsing import MIME_TYPES, Limits, ParseError, parse_file, pdf_page_count, sniff, time_limit
from .services import emit_document_final, max_pages, max_upload_bytes
from .sitemaps import crawl_sitemap

logger = logging.getLogger(__name__)


class IngestRetry(Exception):
    """A transient failure: the task should retry later with backoff."""


class IngestFailed(Exception):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Source:
    path: Path
    kind: str
    digest: str
    size: int
    url: str = ""
    title: str = ""
    pages: list[tuple[str, str, Path]] | None = None  # sitemap: (url, title, html file)


def _set(document: Document, **fields: object) -> None:
    """Write progress/status now (autocommit), so the dashboard sees it while we work."""
    now = timezone.now()
    fields["updated"] = now
    if "status" in fields and fields["status"] != document.status:
        fields["status_changed"] = now
    for name, value in fields.items():
        setattr(document, name, value)
    Document.objects.filter(pk=document.pk).update(**fields)


def _claim(document_id: int) -> tuple[Document, int] | None:
    """Start a run: count the attempt and allocate this run's version, under a row lock."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.is_final:
            return None
        if document.attempts >= settings.KNOWLEDGE_INGEST_MAX_ATTEMPTS:
            last = document.error_message or "the worker stopped while processing it"
            _set(
                document,
                status=Document.Status.FAILED,
                error_code=document.error_code or "too_many_attempts",
                error_message=f"Ingestion failed {document.attempts} times; last error: {last}",
            )
            emit_document_final(document)
            return None
        document.attempts += 1
        document.version += 1
        _set(
            document,
            attempts=document.attempts,
            version=document.version,
            status=Document.Status.PARSING,
            progress=1,
        )
        return document, document.version


def _fetch_to(directory: Path, url: str, name: str) -> tuple[Path, bytes, str]:
    result = fetch(url)
    path = directory / name
    path.write_bytes(result.content)
    return path, result.content, result.url


def _open_source(document: Document, directory: Path) -> Source:
    if document.source in (Document.Source.UPLOAD, Document.Source.TEXT):
        path = directory / "source"
        digest = hashlib.sha256()
        with default_storage.open(document.stored_file, "rb") as src, path.open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
        size = path.stat().st_size
        if size > max_upload_bytes(tenant=document.tenant):
            raise IngestFailed("The file is over your plan's upload limit.", code="file_too_large")
        kind = "text" if document.source == Document.Source.TEXT else sniff(path.read_bytes()[:65536], path=path)
        return Source(path=path, kind=kind, digest=digest.hexdigest(), size=size)
    if document.source == Document.Source.URL:
        path, content, final_url = _fetch_to(directory, document.url, "page")
        kind = sniff(content[:65536], path=path)
        return Source(path, kind, hashlib.sha256(content).hexdigest(), len(content), url=final_url)
    # Sitemap: every listed page (up to the cap) becomes sections of this one document.
    crawl = crawl_sitemap(
        document.url,
        fetch=fetch,
        max_pages=settings.KNOWLEDGE_SITEMAP_MAX_PAGES,
        max_depth=settings.KNOWLEDGE_SITEMAP_MAX_DEPTH,
        max_sitemaps=settings.KNOWLEDGE_SITEMAP_MAX_FILES,
        max_bytes=settings.KNOWLEDGE_SITEMAP_MAX_DECOMPRESSED_BYTES,
    )
    urls = crawl.pages
    digest = hashlib.sha256()
    pages: list[tuple[str, str, Path]] = []
    total = 0
    for index, page_url in enumerate(urls):
        try:
            path, page, page_final = _fetch_to(directory, page_url, f"page-{index}")
        except EgressRefused as exc:
            logger.info("sitemap page %s skipped: %s", page_url, exc)
            continue
        digest.update(page_url.encode() + b"\0" + page)
        total += len(page)
        pages.append((page_final, "", path))
    if not pages:
        raise IngestFailed("No page listed in the sitemap could be fetched.", code="sitemap_empty")
    return Source(directory, "sitemap", digest.hexdigest(), total, url=document.url, pages=pages)


def _sections(source: Source, limits: Limits) -> Iterator[Section]:
    if source.kind != "sitemap":
        yield from parse_file(source.path, source.kind, limits, url=source.url)
        return
    for page_url, _title, path in source.pages or []:
        try:
            kind = sniff(path.read_bytes()[:65536], path=path)
        except ParseError:
            continue
        yield from parse_file(path, kind, limits, url=page_url)


def _timed(sections: Iterator[Section], seconds: int) -> Iterator[Section]:
    """Apply one wall-clock parse budget across all the lazy parsing steps."""
    remaining = float(seconds)
    while True:
        started = time.monotonic()
        with time_limit(max(1, int(remaining + 0.999))):
            item = next(sections, None)
        remaining -= time.monotonic() - started
        if item is None:
            return
        yield item
        if remaining <= 0:
            raise ParseError(f"Parsing took longer than {seconds} seconds and was stopped.", code="parse_timeout")


def _copy_duplicate(document: Document, version: int, digest: str) -> int | None:
    """Reuse the chunks of an identical ready document in the same knowledge base.

    Only chunks made with the model this run embeds with: during a re-index that is the twin's
    staged version, otherwise its active one.
    """
    model = document.knowledge_base.ingest_model
    staging = document.knowledge_base.is_reindexing
    twins = Document.objects.filter(
        knowledge_base_id=document.knowledge_base_id, content_hash=digest, status=Document.Status.READY
    ).exclude(pk=document.pk)
    twin = twins.exclude(**{"staged_version" if staging else "active_version": None}).first()
    if twin is None:
        return None
    twin_version = twin.staged_version if staging else twin.active_version
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO knowledge_chunk (tenant_id, knowledge_base_id, document_id, document_version, position, text,
                token_count, page, heading_path, source_url, embedding_model, embedding_dim, embedding)
            SELECT tenant_id, knowledge_base_id, %s, %s, position, text, token_count, page, heading_path, source_url,
                embedding_model, embedding_dim, embedding
            FROM knowledge_chunk
            WHERE document_id = %s AND document_version = %s AND tenant_id = %s AND embedding_model = %s
            """,
            [document.pk, version, twin.pk, twin_version, document.tenant_id, model],
        )
        return cursor.rowcount or None


def _embed_and_write(document: Document, version: int, drafts: list[ChunkDraft], start: int) -> None:
    kb = document.knowledge_base
    embedder = get_embedder(kb.ingest_model)
    vectors = embedder.embed_documents([draft.text for draft in drafts])
    Chunk.objects.bulk_create(
        [
            Chunk(
                tenant_id=document.tenant_id,  # bulk_create skips save(): tenant stated explicitly
                knowledge_base_id=kb.pk,
                document_id=document.pk,
                document_version=version,
                position=start + offset,
                text=draft.text,
                token_count=draft.token_count,
                page=draft.page,
                heading_path=draft.heading_path,
                source_url=draft.url[:2000],
                embedding_model=embedder.model_name,
                embedding_dim=embedder.dimension,
                embedding=vector,
            )
            for offset, (draft, vector) in enumerate(zip(drafts, vectors, strict=True))
        ]
    )


def _process(document: Document, version: int, source: Source) -> int:
    """Parse, chunk, embed and write this run's chunks; returns how many."""
    kb = document.knowledge_base
    embedder = get_embedder(kb.ingest_model)
    limits = Limits(
        max_pages=max_pages(tenant=document.tenant),
        max_text_chars=settings.KNOWLEDGE_MAX_TEXT_CHARS,
        max_unzipped_bytes=settings.KNOWLEDGE_MAX_UNZIPPED_BYTES,
        max_zip_ratio=settings.KNOWLEDGE_MAX_ZIP_RATIO,
    )
    chunk_size = min(kb.chunk_size_tokens, embedder.max_input_tokens)
    sections = _timed(_sections(source, limits), settings.KNOWLEDGE_PARSE_TIMEOUT_SECONDS)
    drafts = chunk_sections(
        sections, chunk_size=chunk_size, overlap=kb.chunk_overlap_tokens, count_tokens=embedder.count_tokens
    )
    page_total: int | None = None
    total: int | None = None
    if source.kind == "pdf":
        page_total = pdf_page_count(source.path)
        _set(document, page_count=page_total)
        iterator: Iterator[ChunkDraft] = drafts  # streamed: one page at a time
    else:
        # Non-PDF text is bounded by KNOWLEDGE_MAX_TEXT_CHARS, so its chunks fit in memory and
        # give an exact denominator for the progress bar.
        _set(document, status=Document.Status.CHUNKING, progress=5)
        materialised = list(drafts)
        total = len(materialised)
        iterator = iter(materialised)
        _set(document, progress=10)
    batch: list[ChunkDraft] = []
    written = 0
    batch_size = settings.KNOWLEDGE_EMBED_BATCH_SIZE
    for draft in iterator:
        batch.append(draft)
        if len(batch) >= batch_size:
            written = _flush(document, version, batch, written, total, page_total)
            batch = []
    if batch:
        written = _flush(document, version, batch, written, total, page_total)
    return written


def _flush(
    document: Document, version: int, batch: list[ChunkDraft], written: int, total: int | None, page_total: int | None
) -> int:
    if document.status != Document.Status.EMBEDDING:
        _set(document, status=Document.Status.EMBEDDING)
    _embed_and_write(document, version, batch, written)
    written += len(batch)
    if total:
        fraction = written / total
    elif page_total:
        fraction = (batch[-1].page or 0) / page_total
    else:
        fraction = 0.5
    _set(document, progress=max(document.progress, min(99, 10 + int(89 * fraction))))
    return written


def _publish(document: Document, version: int, source: Source, count: int) -> bool:
    """Make this run's chunks the visible version (or, during a re-index, the staged one) in
    one short transaction. True when this run's chunks were kept."""
    model = document.knowledge_base.ingest_model  # what this run embedded with
    with transaction.atomic():
        # Re-read the knowledge base: a re-index may have started, finished or been cancelled
        # while this run embedded. Chunks of the wrong model must never become visible or staged.
        # FOR SHARE (knowledge base first, then the document: the order the re-index services
        # lock in) keeps a swap or cancel from committing between this check and our write;
        # publishers of one knowledge base do not block each other.
        kb = _kb_for_share(document)
        locked = Document.objects.select_for_update().filter(pk=document.pk).first()
        if kb is None or locked is None:
            return False  # deleted while this run worked
        if locked.version != version:
            return False  # a newer run started; it will publish its own version
        if kb.ingest_model != model:
            Chunk.objects.filter(document=locked, document_version=version).delete()
            _set(locked, status=Document.Status.QUEUED, progress=0)
            _queue_again(locked)
            return False
        staging = kb.is_reindexing
        size_delta = source.size - locked.size if locked.source in (Document.Source.URL, Document.Source.SITEMAP) else 0
        now = timezone.now()
        fields = {
            "status": Document.Status.READY,
            "progress": 100,
            "error_code": "",
            "error_message": "",
            "content_hash": source.digest,
            "size": source.size,
            "mime_type": MIME_TYPES.get(source.kind, "text/html" if source.kind == "sitemap" else ""),
            "ingested": now,
        }
        if staging:
            fields |= {"staged_version": version, "staged_chunk_count": count}
            keep = {version} | ({locked.active_version} if locked.active_version is not None else set())
        else:
            fields |= {"active_version": version, "chunk_count": count}
            keep = {version}
        if locked.can_resync:
            fields["last_synced"] = now
        _set(locked, **fields)
        Chunk.objects.filter(document=locked).exclude(document_version__in=keep).delete()
        emit_document_final(locked)
    if size_delta:
        usage_record(tenant=document.tenant, storage_bytes=size_delta)
    if not staging:
        _maybe_index_large_kb(document)
    return True


def _kb_for_share(document: Document) -> KnowledgeBase | None:
    # Django has no select_for_share(); raw SQL is not scoped, so the tenant is named here.
    rows = KnowledgeBase.objects.raw(
        "SELECT * FROM knowledge_knowledgebase WHERE id = %s AND tenant_id = %s FOR SHARE",
        [document.knowledge_base_id, document.tenant_id],
    )
    return next(iter(rows), None)


def _queue_again(document: Document) -> None:
    from .tasks import document_ingest_task

    document_id, tenant_id = document.pk, document.tenant_id
    transaction.on_commit(lambda: document_ingest_task.delay(document_id=document_id, tenant_id=tenant_id))


def _maybe_index_large_kb(document: Document) -> None:
    """Queue a partial HNSW index once a knowledge base outgrows exact search (see retrieval), or
    its rebuild when the index was built with other parameters than today's settings."""
    from .retrieval import kb_index_current, scope_available
    from .tasks import knowledge_base_index_task

    kb = document.knowledge_base
    available = scope_available(tenant_id=kb.tenant_id, knowledge_base_ids=[kb.pk])
    if available > settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS and not kb_index_current(kb.pk, kb.embedding_dim):
        kb_id, tenant_id = kb.pk, kb.tenant_id
        transaction.on_commit(lambda: knowledge_base_index_task.delay(knowledge_base_id=kb_id, tenant_id=tenant_id))


def _fail(document: Document, version: int, code: str, message: str) -> None:
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        Chunk.objects.filter(document=locked, document_version=version).delete()
        if locked.version == version:
            _set(locked, status=Document.Status.FAILED, error_code=code, error_message=message[:2000])
            emit_document_final(locked)


def document_ingest(*, document_id: int) -> str:
    """Ingest one document; returns its status afterwards. Tenant context required.

    - Idempotent: a final (ready/failed) document is left alone; a re-delivered message resumes
      by starting a new run.
    - Each run counts an attempt and writes chunks under its own version. Only the version
      published by `_publish` is visible to retrieval, and publishing deletes the older ones in
      the same transaction: no duplicates, no half-written document, even if a worker is
      SIGKILLed mid-way or two workers run the same document at once (the newer run wins).
    - Bad input (ParseError, EgressRefused, non-retryable EmbeddingError) ends `failed` with its
      code and message. Transient errors raise IngestRetry after recording the error; after
      KNOWLEDGE_INGEST_MAX_ATTEMPTS attempts the document ends `failed` with that error kept.
    """
    claimed = _claim(document_id)
    if claimed is None:
        document = Document.objects.filter(pk=document_id).first()
        return document.status if document else "missing"
    document, version = claimed
    keep = {version} | {v for v in (document.active_version, document.staged_version) if v is not None}
    Chunk.objects.filter(document=document).exclude(document_version__in=keep).delete()
    kb = document.knowledge_base
    try:
        with tempfile.TemporaryDirectory(prefix="kb-ingest-") as tmp:
            source = _open_source(document, Path(tmp))
            # During a re-index the published chunks are of the old model: re-embed regardless.
            unchanged = (
                document.active_version is not None and source.digest == document.content_hash and not kb.is_reindexing
            )
            if unchanged:
                # Re-sync of identical content: keep the published chunks, embed nothing.
                with transaction.atomic():
                    _set(document, status=Document.Status.READY, progress=100, last_synced=timezone.now())
                return Document.Status.READY
            count = _copy_duplicate(document, version, source.digest)
            if count is None:
                count = _process(document, version, source)
            if count == 0:
                raise IngestFailed("No text could be extracted from this document.", code="no_text")
            _publish(document, version, source, count)
    except (ParseError, EgressRefused, IngestFailed) as exc:
        _fail(document, version, exc.code, str(exc))
    except SoftTimeLimitExceeded:
        _fail(document, version, "ingest_timeout", "Ingestion took longer than the time limit and was stopped.")
    except EmbeddingError as exc:
        if not exc.retryable:
            _fail(document, version, exc.code, str(exc))
        else:
            _record_transient(document, version, exc.code, str(exc))
            raise IngestRetry(str(exc)) from exc
    except Exception as exc:
        # Unexpected: keep the error visible on the document and let the task retry; the
        # attempt limit turns a persistent bug into a `failed` document, not a retry loop.
        logger.exception("ingestion of document %s failed", document_id)
        _record_transient(document, version, "internal_error", f"{exc.__class__.__name__}: {exc}")
        raise IngestRetry(str(exc)) from exc
    if kb.is_reindexing:
        # This document is final now; it may have been the last one the re-index waited for.
        from .reindex import knowledge_base_reindex_finish

        knowledge_base_reindex_finish(knowledge_base_id=kb.pk)
    return Document.objects.filter(pk=document_id).values_list("status", flat=True).first() or "missing"


def _record_transient(document: Document, version: int, code: str, message: str) -> None:
    Chunk.objects.filter(document=document, document_version=version).delete()
    Document.objects.filter(pk=document.pk, version=version).filter(~Q(status=Document.Status.READY)).update(
        status=Document.Status.QUEUED, error_code=code, error_message=message[:2000], updated=timezone.now()
    )
