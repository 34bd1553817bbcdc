"""Reads: knowledge bases, documents, and the retrieval contract `chunk_search`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from django.db.models import Count, Q, QuerySet, Sum

from tenants.context import get_current_tenant_or_none
from tenants.models import Tenant

from .models import EMBEDDING_DIMENSIONS, Document, KnowledgeBase
from .retrieval import SearchScope, hybrid_search, knowledge_bases_for_search
from .types import RetrievedPassage


def knowledge_base_list() -> QuerySet[KnowledgeBase]:
    """The current tenant's knowledge bases (tenant context required)."""
    return KnowledgeBase.objects.order_by("name")


def document_list_for_kb(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    """The knowledge base's documents, newest first, through the tenant scope."""
    return Document.objects.filter(knowledge_base=knowledge_base).order_by("-created", "-id")


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
    search_scope: Sequence[tuple[int, str, int]] | None = None,
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

    `search_scope` is what knowledge_bases_for_search would return for these ids, read by a
    caller through the tenant scope (the answer pipeline reads it with the rest of its turn): it
    saves that round trip. It is checked like a scope read here: a knowledge base whose model
    changed since is read again.
    """
    current = get_current_tenant_or_none()
    if current is not None and current.pk != tenant.pk:
        return []
    if k <= 0 or not knowledge_base_ids or not query.strip():
        return []
    # A re-index swap commits a knowledge base's new model together with its new visible chunks.
    # Each search statement reads only chunks of the model read here and reports whether the
    # knowledge bases still have it; when one changed in between, the scope is read again (and
    # the query embedded with the new model) once. No transaction needed: one statement is one
    # snapshot. A second change in a row keeps the second attempt's (consistent) results.
    for attempt in range(2):
        passages, consistent = _search_once(
            tenant=tenant, knowledge_base_ids=knowledge_base_ids, query=query, k=k, min_score=min_score,
            query_vector=query_vector, query_vectors=query_vectors,
            kbs=search_scope if attempt == 0 and search_scope is not None else None,
        )  # fmt: skip
        if consistent:
            break
    passages.sort(key=lambda p: (-p.score, -(p.similarity or 0.0), p.chunk_id))
    return passages[:k]


def _search_once(
    *,
    tenant: Tenant,
    knowledge_base_ids: list[int],
    query: str,
    k: int,
    min_score: float | None,
    query_vector: list[float] | None,
    query_vectors: Mapping[str, Sequence[float]] | None,
    kbs: Sequence[tuple[int, str, int]] | None = None,
) -> tuple[list[RetrievedPassage], bool]:
    if kbs is None:
        kbs = knowledge_bases_for_search(tenant_id=tenant.pk, knowledge_base_ids=knowledge_base_ids)
    by_model: dict[str, list[int]] = defaultdict(list)
    available_by_model: dict[str, int] = defaultdict(int)
    for kb_id, model_name, kb_available in kbs:
        by_model[model_name].append(kb_id)
        available_by_model[model_name] += kb_available
    given = dict(query_vectors or {})
    if query_vector is not None and len(by_model) == 1:
        given.setdefault(next(iter(by_model)), query_vector)
    passages: list[RetrievedPassage] = []
    consistent = True
    for model_name, kb_ids in sorted(by_model.items()):
        available = available_by_model[model_name]
        if available == 0:
            continue
        scope = SearchScope(tenant.pk, kb_ids, EMBEDDING_DIMENSIONS[model_name], available, model_name)
        vector = given.get(model_name)  # a vector of another model's dimension is not this model's
        if vector is not None and len(vector) != scope.dimension:
            vector = None
        result = hybrid_search(
            scope, query=query, query_vector=list(vector) if vector else None, k=k, min_score=min_score
        )
        passages.extend(result.passages)
        consistent = consistent and result.consistent
    return passages, consistent
