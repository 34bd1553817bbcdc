"""Operators' admin for knowledge bases, documents and chunks (every tenant, so .unscoped()).

Actions run the knowledge services in each row's own tenant context, as a request would."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from chatbot_saas.errors import AppError
from tenants.admin import UnscopedAdmin, operator_audit
from tenants.admin_actions import action_form
from tenants.context import tenant_context

from .models import Chunk, Document, KnowledgeBase
from .reindex import knowledge_base_rebuild, knowledge_base_reindex
from .services import document_retry

SAME_MODEL = ""


class ReindexForm(forms.Form):
    embedding_model = forms.ChoiceField(
        label="Embedding model",
        choices=[(SAME_MODEL, "The knowledge base's current model (rebuild every document)")]
        + list(KnowledgeBase.EmbeddingModel.choices),
        required=False,
    )


def documents_retry_failed(request: HttpRequest, documents: QuerySet[Document]) -> tuple[int, list[str]]:
    """Queue each failed document again in its tenant's context; (queued, refusals). Audited."""
    queued, refused = 0, []
    for document in documents.filter(status=Document.Status.FAILED).select_related("tenant"):
        with tenant_context(document.tenant):
            try:
                document_retry(document=document)
            except AppError as exc:
                refused.append(f"{document}: {exc.message}")
                continue
        operator_audit(request, action="document.retry", target=document, details={"error_code": document.error_code})
        queued += 1
    return queued, refused


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(UnscopedAdmin):
    list_display = ["name", "tenant", "embedding_model", "reindex_to", "reindex_started", "created"]
    list_filter = ["embedding_model"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["tenant", "embedding_model", "reindex_to", "reindex_started", "reindex_error", "created"]
    actions = ["reindex"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # knowledge_base_delete frees files and usage; the dashboard does it

    @admin.action(description="Re-index selected knowledge bases")
    def reindex(self, request: HttpRequest, queryset: QuerySet[KnowledgeBase]) -> TemplateResponse | None:
        form, page = action_form(
            self,
            request,
            queryset,
            form_class=ReindexForm,
            action="reindex",
            title="Re-index knowledge bases",
            submit_label="Re-index",
        )
        if form is None:
            return page
        target = form.cleaned_data["embedding_model"]
        for kb in queryset:
            model = target or kb.embedding_model
            with tenant_context(kb.tenant):
                try:
                    if model == kb.embedding_model:
                        queued = knowledge_base_rebuild(knowledge_base=kb, started_by=request.user)
                    else:
                        queued = knowledge_base_reindex(
                            knowledge_base=kb, embedding_model=model, started_by=request.user
                        )
                except AppError as exc:
                    messages.error(request, f"{kb} ({kb.tenant.slug}): {exc.message}")
                    continue
            operator_audit(
                request,
                action="knowledge_base.reindex",
                target=kb,
                details={"from": kb.embedding_model, "to": model, "documents": queued},
            )
            messages.success(request, f"{kb} ({kb.tenant.slug}): {queued} document(s) queued with {model}.")
        return None


@admin.register(Document)
class DocumentAdmin(UnscopedAdmin):
    list_display = ["title", "tenant", "knowledge_base", "source", "status", "error_code", "attempts", "updated"]
    list_filter = ["status", "source", "error_code"]
    list_select_related = ["tenant", "knowledge_base"]
    search_fields = ["title", "url", "original_filename", "tenant__slug", "error_code"]
    readonly_fields = [f.name for f in Document._meta.fields]
    actions = ["retry_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # documents come in through the services (quotas, parsing, storage)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # document_delete frees the file and the usage; the dashboard does it

    @admin.action(description="Retry selected failed documents")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        queued, refused = documents_retry_failed(request, queryset)
        messages.success(request, f"Queued {queued} failed document(s) again.")
        for line in refused:
            messages.warning(request, line)


@admin.register(Chunk)
class ChunkAdmin(UnscopedAdmin):
    """Read-only: chunks are ingestion's output, rebuilt by re-indexing, never edited by hand."""

    list_display = ["id", "tenant", "knowledge_base", "document", "document_version", "position", "embedding_model"]
    list_filter = ["embedding_model"]
    list_select_related = ["tenant", "knowledge_base", "document"]
    search_fields = ["text", "tenant__slug", "document__title"]
    exclude = ["embedding"]
    readonly_fields = [f.name for f in Chunk._meta.fields if f.name not in ("embedding", "search_vector")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
