"""Reads: knowledge bases, documents, and the retrieval contract `chunk_search`."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from tenants.context import get_current_tenant_or_none, tenant_context
from tenants.models import Tenant

from .models import EMBEDDING_DIMENSIONS, Document, KnowledgeBase
from .retrieval import SearchScope, hybrid_search
from .types import RetrievedPassage


def knowledge_base_list() -> QuerySet[KnowledgeBase]:
    """The current tenant's knowledge bases (tenant context required)."""
    return KnowledgeBase.objects.order_by("name")


def document_list_for_kb(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    """The knowledge base's documents, newest first, through the tenant scope."""
    return Document.objects.filter(knowledge_base=knowledge_base).order_by("-created", "-id")


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
) -> list[RetrievedPassage]:
    """Hybrid (vector + full-text, RRF-fused) search over `tenant`'s knowledge bases, best first.

    Returns min(k, available) passages, where available counts the visible chunks whose cosine
    similarity is at least `min_score`. Ids of other tenants' knowledge bases are ignored, and a
    call made while a different tenant is in context returns nothing. Knowledge bases with
    different embedding models are searched per model and merged by fused score.

    `query_vector`, when given, is the query already embedded with the knowledge bases' model
    (the caller overlapped embedding with other work); it is used for the knowledge bases of
    that dimension instead of embedding `query` again.
    """
    current = get_current_tenant_or_none()
    if current is not None and current.pk != tenant.pk:
        return []
    if k <= 0 or not knowledge_base_ids or not query.strip():
        return []
    with tenant_context(tenant):
        # One round trip for the knowledge bases and their visible chunk counts (see scope_available).
        kbs = list(
            KnowledgeBase.objects.filter(pk__in=list(knowledge_base_ids))
            .annotate(
                available=Coalesce(Sum("documents__chunk_count", filter=Q(documents__active_version__isnull=False)), 0)
            )
            .values_list("pk", "embedding_model", "available")
        )
    by_model: dict[str, list[int]] = defaultdict(list)
    available_by_model: dict[str, int] = defaultdict(int)
    for kb_id, model_name, kb_available in kbs:
        by_model[model_name].append(kb_id)
        available_by_model[model_name] += kb_available
    passages: list[RetrievedPassage] = []
    for model_name, kb_ids in sorted(by_model.items()):
        available = available_by_model[model_name]
        if available == 0:
            continue
        scope = SearchScope(tenant.pk, kb_ids, EMBEDDING_DIMENSIONS[model_name], available, model_name)
        vector = query_vector if query_vector is not None and len(query_vector) == scope.dimension else None
        passages.extend(hybrid_search(scope, query=query, query_vector=vector, k=k, min_score=min_score))
    passages.sort(key=lambda p: (-p.score, -(p.similarity or 0.0), p.chunk_id))
    return passages[:k]
