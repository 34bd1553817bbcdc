"""Dashboard pages for knowledge bases, under t/<tenant_slug>/knowledge/.

Objects are fetched through the tenant scope, so another tenant's id is a 404 exactly like
a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatbot_saas.errors import AppError
from tenants.decorators import require_role
from tenants.models import Role

from . import reindex, services
from .forms import (
    KnowledgeBaseDeleteForm,
    KnowledgeBaseForm,
    KnowledgeBaseRenameForm,
    ReindexForm,
    SearchForm,
    TextForm,
    UploadForm,
    UrlForm,
)
from .models import Document, KnowledgeBase
from .selectors import (
    chunk_search,
    document_list_for_kb,
    document_status_payload,
    knowledge_base_delete_summary,
    knowledge_base_list,
    knowledge_base_reindex_progress,
)


@require_role(Role.MEMBER)
def kb_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    form = KnowledgeBaseForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            kb = services.knowledge_base_create(tenant=request.tenant, **form.cleaned_data)
        except AppError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Knowledge base “{kb.name}” created.")
            return redirect("kb_detail", tenant_slug=tenant_slug, knowledgebase_id=kb.pk)
    context = {"knowledge_bases": knowledge_base_list(), "form": form}
    return render(request, "knowledge/kb_list.html", context, status=400 if form.errors else 200)


def _kb(knowledgebase_id: int) -> KnowledgeBase:
    return get_object_or_404(KnowledgeBase.objects, pk=knowledgebase_id)


def _document(document_id: int) -> Document:
    return get_object_or_404(Document.objects.select_related("knowledge_base"), pk=document_id)


@require_GET
@require_role(Role.MEMBER)
def kb_detail(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    kb = _kb(knowledgebase_id)
    context = {
        "kb": kb,
        "documents": document_list_for_kb(knowledge_base=kb)[:500],
        "upload_form": UploadForm(),
        "url_form": UrlForm(),
        "text_form": TextForm(),
        "search_form": SearchForm(),
        "rename_form": KnowledgeBaseRenameForm(initial={"name": kb.name, "description": kb.description}),
        "reindex": knowledge_base_reindex_progress(knowledge_base=kb),
    }
    return render(request, "knowledge/kb_detail.html", context)


def _done(request: HttpRequest, tenant_slug: str, kb: KnowledgeBase, document: Document | None = None) -> HttpResponse:
    if document is not None:
        if document.status == Document.Status.FAILED:
            messages.error(request, f"“{document.title}” was refused: {document.error_message}")
        else:
            messages.success(request, f"“{document.title}” was added and is being processed.")
    return redirect("kb_detail", tenant_slug=tenant_slug, knowledgebase_id=kb.pk)


def _form_errors(request: HttpRequest, form: object) -> None:
    for errors in form.errors.values():  # type: ignore[attr-defined]
        for error in errors:
            messages.error(request, error)


def _add_document(
    request: HttpRequest, tenant_slug: str, knowledgebase_id: int, form: Any, create: Callable[..., Document]
) -> HttpResponse:
    """Shared by the three ways to add a document: validate, call the service, report back."""
    kb = _kb(knowledgebase_id)
    if not form.is_valid():
        _form_errors(request, form)
        return _done(request, tenant_slug, kb)
    try:
        document = create(kb, form.cleaned_data)
    except AppError as exc:
        messages.error(request, exc.message)
        return _done(request, tenant_slug, kb)
    return _done(request, tenant_slug, kb, document)


@require_POST
@require_role(Role.MEMBER)
def document_upload(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    return _add_document(
        request,
        tenant_slug,
        knowledgebase_id,
        UploadForm(request.POST, request.FILES),
        lambda kb, data: services.document_create_from_upload(
            knowledge_base=kb, uploaded_file=data["file"], created_by=request.user
        ),
    )


@require_POST
@require_role(Role.MEMBER)
def document_add_url(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    return _add_document(
        request,
        tenant_slug,
        knowledgebase_id,
        UrlForm(request.POST),
        lambda kb, data: services.document_create_from_url(
            knowledge_base=kb, url=data["url"], is_sitemap=data["is_sitemap"]
        ),
    )


@require_POST
@require_role(Role.MEMBER)
def document_add_text(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    return _add_document(
        request,
        tenant_slug,
        knowledgebase_id,
        TextForm(request.POST),
        lambda kb, data: services.document_create_from_text(knowledge_base=kb, title=data["title"], text=data["text"]),
    )


@require_GET
@require_role(Role.MEMBER)
def kb_status(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> JsonResponse:
    """The progress poller's endpoint: every document's status and progress."""
    kb = _kb(knowledgebase_id)
    documents = [document_status_payload(d) for d in document_list_for_kb(knowledge_base=kb)[:500]]
    return JsonResponse({"documents": documents, "reindex": knowledge_base_reindex_progress(knowledge_base=kb)})


@require_GET
@require_role(Role.MEMBER)
def kb_search(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """Try retrieval as the bots will see it."""
    kb = _kb(knowledgebase_id)
    form = SearchForm(request.GET or None)
    hits = []
    if form.is_valid():
        hits = chunk_search(
            tenant=request.tenant,
            knowledge_base_ids=[kb.pk],
            query=form.cleaned_data["q"],
            k=form.cleaned_data["k"] or 5,
        )
    return render(request, "knowledge/kb_search.html", {"kb": kb, "form": form, "hits": hits})


@require_POST
@require_role(Role.MEMBER)
def document_retry(request: HttpRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    try:
        services.document_retry(document=document)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{document.title}” was queued again.")
    return _done(request, tenant_slug, document.knowledge_base)


@require_POST
@require_role(Role.MEMBER)
def document_resync(request: HttpRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    try:
        services.document_resync(document=document)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{document.title}” will be fetched again.")
    return _done(request, tenant_slug, document.knowledge_base)


@require_POST
@require_role(Role.MEMBER)
def document_delete(request: HttpRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    kb = document.knowledge_base
    services.document_delete(document=document, deleted_by=request.user)
    messages.success(request, f"“{document.title}” was deleted.")
    return _done(request, tenant_slug, kb)


@require_POST
@require_role(Role.MEMBER)
def kb_rename(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    kb = _kb(knowledgebase_id)
    form = KnowledgeBaseRenameForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return _done(request, tenant_slug, kb)
    try:
        kb = services.knowledge_base_rename(
            knowledge_base=kb, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
        )
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Renamed to “{kb.name}”.")
    return _done(request, tenant_slug, kb)


@require_http_methods(["GET", "POST"])
@require_role(Role.MEMBER)
def kb_delete(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """GET: what will be removed, and a form asking for the name. POST: delete, if it matches."""
    kb = _kb(knowledgebase_id)
    form = KnowledgeBaseDeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["confirm_name"].strip() != kb.name:
            form.add_error("confirm_name", "The name does not match; nothing was deleted.")
        else:
            removed = services.knowledge_base_delete(knowledge_base=kb, deleted_by=request.user)
            messages.success(
                request,
                f"“{kb.name}” was deleted with its {removed['documents']} document(s); "
                f"{removed['bots']} bot(s) no longer use it.",
            )
            return redirect("kb_list", tenant_slug=tenant_slug)
    context = {"kb": kb, "form": form, "summary": knowledge_base_delete_summary(knowledge_base=kb)}
    return render(request, "knowledge/kb_delete.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@require_role(Role.MEMBER)
def kb_reindex(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """GET: choose the new embedding model and read what a re-index does. POST: start it."""
    kb = _kb(knowledgebase_id)
    others = [choice for choice in KnowledgeBase.EmbeddingModel.choices if choice[0] != kb.embedding_model]
    form = ReindexForm(request.POST if request.method == "POST" else None)
    form.fields["embedding_model"].choices = others
    if request.method == "POST" and form.is_valid():
        try:
            queued = reindex.knowledge_base_reindex(
                knowledge_base=kb, embedding_model=form.cleaned_data["embedding_model"], started_by=request.user
            )
        except AppError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                f"Re-indexing {queued} document(s) with {form.cleaned_data['embedding_model']}. "
                "Search keeps using the current model until every document is done.",
            )
            return redirect("kb_detail", tenant_slug=tenant_slug, knowledgebase_id=kb.pk)
    context = {"kb": kb, "form": form, "reindex": knowledge_base_reindex_progress(knowledge_base=kb)}
    return render(request, "knowledge/kb_reindex.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.MEMBER)
def kb_reindex_cancel(request: HttpRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    kb = _kb(knowledgebase_id)
    try:
        reindex.knowledge_base_reindex_cancel(knowledge_base=kb, cancelled_by=request.user)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Re-index cancelled; “{kb.name}” stays on {kb.embedding_model}.")
    return _done(request, tenant_slug, kb)
