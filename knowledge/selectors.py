"""Reads: knowledge bases, documents, and the retrieval contract `chunk_search`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.quotas import current_usage, effective_plan
from chatbot_saas import runtime
from tenants.context import get_current_tenant_or_none, tenant_context
from tenants.models import Tenant

from .models import EMBEDDING_DIMENSIONS, Document, KnowledgeBase
from .retrieval import SearchScope, hybrid_search, knowledge_bases_for_search
from .services import max_upload_bytes
from .types import RetrievedPassage


def knowledge_base_list() -> QuerySet[KnowledgeBase]:
    """The current tenant's knowledge bases (tenant context required)."""
    return KnowledgeBase.objects.order_by("name")


def knowledge_base_list_with_stats() -> QuerySet[KnowledgeBase]:
    """knowledge_base_list, each with its documents counted by state, their total size and the
    last change (a document's update, else the knowledge base's creation), in one query."""
    return (
        knowledge_base_list()
        .annotate(
            document_count=Count("documents"),
            ready_count=Count("documents", filter=Q(documents__status=Document.Status.READY)),
            failed_count=Count("documents", filter=Q(documents__status=Document.Status.FAILED)),
            total_bytes=Coalesce(Sum("documents__size"), 0),
            last_updated=Coalesce(Max("documents__updated"), "created"),
        )
        .annotate(pending_count=F("document_count") - F("ready_count") - F("failed_count"))
    )


# The stages a document goes through, as the knowledge base page shows them. An uploaded file's
# first stage (the upload itself) happens in the browser; "queued" means it has arrived.
DOCUMENT_STAGES: list[tuple[str, str]] = [
    ("queued", "Uploaded"),
    ("parsing", "Parse"),
    ("chunking", "Chunk"),
    ("embedding", "Embed"),
    ("ready", "Ready"),
]
_STAGE_INDEX = {status: i for i, (status, _label) in enumerate(DOCUMENT_STAGES)}


def document_stages(document: Document) -> list[dict[str, str]]:
    """Each stage with its state for this document: done, current, failed or todo."""
    if document.status == Document.Status.FAILED:
        return [
            {"label": label, "state": "failed" if i == 0 else "todo"} for i, (_s, label) in enumerate(DOCUMENT_STAGES)
        ]
    current = _STAGE_INDEX.get(document.status, 0)
    last = len(DOCUMENT_STAGES) - 1
    return [
        {"label": label, "state": "done" if i < current or current == last else "current" if i == current else "todo"}
        for i, (_status, label) in enumerate(DOCUMENT_STAGES)
    ]


def upload_allowance(*, tenant: Tenant) -> dict[str, int | None]:
    """What the next uploads may use under the tenant's plan: the size of one file, and the
    documents and bytes of storage left (None: unlimited). The browser refuses files past these
    before uploading; the server checks them again (knowledge.uploads, billing's quota_check)."""
    plan = effective_plan(tenant=tenant)
    documents_left = storage_left = None
    if plan.max_documents is not None:
        documents_left = max(plan.max_documents - current_usage(tenant=tenant, kind="documents"), 0)
    if plan.max_storage_bytes is not None:
        storage_left = max(plan.max_storage_bytes - current_usage(tenant=tenant, kind="storage_bytes"), 0)
    return {
        "max_file_bytes": max_upload_bytes(tenant=tenant),
        "documents_left": documents_left,
        "storage_left": storage_left,
    }


def document_list_for_kb(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    """The knowledge base's documents, newest first, through the tenant scope."""
    return Document.objects.filter(knowledge_base=knowledge_base).order_by("-created", "-id")


def document_count_for_tenant(*, tenant: Tenant) -> int:
    """The tenant's documents in every state: billing's `documents` quota counts these."""
    with tenant_context(tenant):
        return Document.objects.count()


def document_bytes_for_tenant(*, tenant: Tenant) -> int:
    """The total size of the tenant's documents: billing's `storage_bytes` quota counts these."""
    with tenant_context(tenant):
        total = Document.objects.aggregate(total=Sum("size"))["total"]
    return int(total or 0)


def documents_unfinished_count(*, knowledge_base_ids: Sequence[int]) -> int:
    """Documents of these knowledge bases still on their way to `ready` (queued, parsing, chunking,
    embedding): retrieval cannot use them yet. Tenant scope required."""
    return (
        Document.objects.filter(knowledge_base_id__in=list(knowledge_base_ids))
        .exclude(status__in=Document.FINAL_STATUSES)
        .count()
    )


def knowledge_base_reindex_progress(*, knowledge_base: KnowledgeBase) -> dict | None:
    """A re-index under way, for the dashboard: target model, documents re-embedded of total, error."""
    if not knowledge_base.is_reindexing:
        return None
    documents = Document.objects.filter(knowledge_base=knowledge_base).filter(~Q(stored_file="") | ~Q(url=""))
    counts = documents.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(staged_version__isnull=False, status=Document.Status.READY)),
    )
    return {
        "from": knowledge_base.embedding_model,
        "to": knowledge_base.reindex_to,
        "done": counts["done"],
        "total": counts["total"],
        "error": knowledge_base.reindex_error or None,
    }


def knowledge_base_delete_summary(*, knowledge_base: KnowledgeBase) -> dict:
    """What deleting the knowledge base removes, for the confirmation page."""
    counts = Document.objects.filter(knowledge_base=knowledge_base).aggregate(
        documents=Count("pk"), chunks=Sum("chunk_count", default=0)
    )
    return {
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "bots": list(knowledge_base.bots.order_by("name").values_list("name", flat=True)),
    }


def document_status_payload(document: Document) -> dict:
    """What the dashboard's progress poller and the API show for one document."""
    return {
        "id": document.pk,
        "title": document.title,
        "status": document.status,
        "progress": document.progress,
        "error_code": document.error_code or None,
        "error_message": document.error_message or None,
        "attempts": document.attempts,
        "chunk_count": document.chunk_count,
        "size": document.size,
        "updated": document.updated.isoformat(),
    }


def chunk_search(
    *,
    tenant: Tenant,
    knowledge_base_ids: list[int],
    query: str,
    k: int = 5,
    min_score: float | None = None,
    query_vector: list[float] | None = None,
    query_vectors: Mapping[str, Sequence[float]] | None = None,
) -> list[RetrievedPassage]:
    """Hybrid (vector + full-text, RRF-fused) search over `tenant`'s knowledge bases, best first.

    Returns min(k, available) passages, where available counts the visible chunks whose cosine
    similarity is at least `min_score`. Ids of other tenants' knowledge bases are ignored, and a
    call made while a different tenant is in context returns nothing. Knowledge bases with
    different embedding models are searched per model and merged by fused score.

    A caller that embedded the query already (the answer pipeline does it while it stores the
    messages) passes `query_vectors`, the query's vector by embedding model name; models without
    an entry are embedded here. `query_vector` is the same for callers that search knowledge
    bases of a single model (benchmarks, scripts): it is used only when every knowledge base
    searched shares one model of its dimension.

    """
    current = get_current_tenant_or_none()
    if current is not None and current.pk != tenant.pk:
        return []
    if k <= 0 or not knowledge_base_ids or not query.strip():
        return []
    # A re-index swap commits a knowledge base's new model together with its new visible chunks.
    # Each search statement reads only chunks of the model of the scope it was planned with, and
    # reports the knowledge bases' models and sizes as of its own snapshot; when they differ from
    # that scope, the search runs again (the query embedded with the new model) with the scope
    # the statement saw, once. No transaction needed: one statement is one snapshot. A second
    # change in a row keeps the second attempt's results (each read only its model's chunks).
    # The scope a search plans with is the one the last search of these knowledge bases saw
    # (read once when there is none): a search is then one statement, and a stale one costs
    # a second statement, never a wrong plan.
    key = (tenant.pk, tuple(sorted({int(kb_id) for kb_id in knowledge_base_ids})))
    kbs = runtime.retrieval_scopes.get(key)
    if kbs is None or not any(available for _kb_id, _model, available in kbs):
        # Nothing to search means no statement to check the remembered scope with: read it.
        kbs = knowledge_bases_for_search(tenant_id=tenant.pk, knowledge_base_ids=key[1])
    for _attempt in range(2):
        passages, seen = _search_once(
            tenant=tenant,
            kb_ids=key[1],
            kbs=kbs,
            query=query,
            k=k,
            min_score=min_score,
            query_vector=query_vector,
            query_vectors=query_vectors,
        )
        if seen is None or seen == kbs:
            break
        kbs = seen
    runtime.remember_scope(key, kbs)
    passages.sort(key=lambda p: (-p.score, -(p.similarity or 0.0), p.chunk_id))
    return passages[:k]


def _search_once(
    *,
    tenant: Tenant,
    kb_ids: tuple[int, ...],
    kbs: list[tuple[int, str, int]],
    query: str,
    k: int,
    min_score: float | None,
    query_vector: list[float] | None,
    query_vectors: Mapping[str, Sequence[float]] | None,
) -> tuple[list[RetrievedPassage], list[tuple[int, str, int]] | None]:
    """The search planned with `kbs`, and the knowledge bases as its statements saw them where
    they differ from `kbs` (else `kbs`; None when no statement ran)."""
    by_model: dict[str, list[int]] = defaultdict(list)
    available_by_model: dict[str, int] = defaultdict(int)
    for kb_id, model_name, kb_available in kbs:
        by_model[model_name].append(kb_id)
        available_by_model[model_name] += kb_available
    given = dict(query_vectors or {})
    if query_vector is not None and len(by_model) == 1:
        given.setdefault(next(iter(by_model)), query_vector)
    passages: list[RetrievedPassage] = []
    seen: list[tuple[int, str, int]] | None = None
    for model_name, model_kb_ids in sorted(by_model.items()):
        available = available_by_model[model_name]
        if available == 0:
            continue
        scope = SearchScope(tenant.pk, model_kb_ids, EMBEDDING_DIMENSIONS[model_name], available, model_name)
        vector = given.get(model_name)  # a vector of another model's dimension is not this model's
        if vector is not None and len(vector) != scope.dimension:
            vector = None
        result = hybrid_search(
            scope,
            query=query,
            query_vector=list(vector) if vector else None,
            k=k,
            min_score=min_score,
            scope_kb_ids=kb_ids,
        )
        passages.extend(result.passages)
        if seen is None or result.knowledge_bases != kbs:
            seen = result.knowledge_bases
    return passages, seen
