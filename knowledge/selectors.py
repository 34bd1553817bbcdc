"""Reads: knowledge bases, documents, and the retrieval contract `chunk_search`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from django.db.models import QuerySet

from tenants.context import get_current_tenant_or_none, tenant_context
from tenants.models import Tenant

from .embeddings import get_embedder
from .models import EMBEDDING_DIMENSIONS, Document, KnowledgeBase
from .retrieval import SearchScope, hybrid_search, scope_available
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
    query_vectors: Mapping[str, Sequence[float]] | None = None,
) -> list[RetrievedPassage]:
    """Hybrid (vector + full-text, RRF-fused) search over `tenant`'s knowledge bases, best first.

    Returns min(k, available) passages, where available counts the visible chunks whose cosine
    similarity is at least `min_score`. Ids of other tenants' knowledge bases are ignored, and a
    call made while a different tenant is in context returns nothing. Knowledge bases with
    different embedding models are searched per model and merged by fused score.

    `query_vectors` maps an embedding model's name to the query's vector under that model, for a
    caller that embedded the query already (the answer pipeline does it while it stores the
    messages); models without an entry are embedded here.
    """
    current = get_current_tenant_or_none()
    if current is not None and current.pk != tenant.pk:
        return []
    if k <= 0 or not knowledge_base_ids or not query.strip():
        return []
    with tenant_context(tenant):
        kbs = list(KnowledgeBase.objects.filter(pk__in=list(knowledge_base_ids)).values_list("pk", "embedding_model"))
    by_model: dict[str, list[int]] = defaultdict(list)
    for kb_id, model_name in kbs:
        by_model[model_name].append(kb_id)
    passages: list[RetrievedPassage] = []
    for model_name, kb_ids in sorted(by_model.items()):
        available = scope_available(tenant_id=tenant.pk, knowledge_base_ids=kb_ids)
        if available == 0:
            continue
        scope = SearchScope(tenant.pk, kb_ids, EMBEDDING_DIMENSIONS[model_name], available)
        query_vector = (query_vectors or {}).get(model_name) or get_embedder(model_name).embed_query(query)
        passages.extend(hybrid_search(scope, query=query, query_vector=query_vector, k=k, min_score=min_score))
    passages.sort(key=lambda p: (-p.score, -(p.similarity or 0.0), p.chunk_id))
    return passages[:k]
