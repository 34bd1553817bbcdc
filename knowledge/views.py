"""Dashboard pages for knowledge bases, under t/<tenant_slug>/knowledge/.

Objects are fetched through the tenant scope, so another tenant's id is a 404 exactly like
a missing one. Members read (lists, documents, search); changes need the Admin role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatbot_saas.errors import AppError
from tenants.decorators import require_role
from tenants.http import TenantRequest
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
from .search_trace import search_trace
from .selectors import (
    document_list_for_kb,
    document_stages,
    document_status_payload,
    knowledge_base_delete_summary,
    knowledge_base_list_with_stats,
    knowledge_base_reindex_progress,
    upload_allowance,
)
from .uploads import ALLOWED_EXTENSIONS, ALLOWED_TYPES_LABEL, extension_check, upload_check


@require_http_methods(["GET", "POST"])
@require_role(Role.MEMBER)
def kb_list(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    """Everyone sees the knowledge bases with their counts and readiness; admins create them."""
    form = KnowledgeBaseForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and not request.membership.has_role(Role.ADMIN):
        return render(request, "tenants/forbidden.html", {"needed_role": Role.ADMIN.label}, status=403)
    if request.method == "POST" and form.is_valid():
        try:
            kb = services.knowledge_base_create(tenant=request.tenant, **form.cleaned_data)
        except AppError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Knowledge base “{kb.name}” created.")
            return redirect("kb_detail", tenant_slug=tenant_slug, knowledgebase_id=kb.pk)
    context = {"knowledge_bases": knowledge_base_list_with_stats(), "form": form}
    return render(request, "knowledge/kb_list.html", context, status=400 if form.errors else 200)


def _kb(knowledgebase_id: int) -> KnowledgeBase:
    return get_object_or_404(KnowledgeBase.objects, pk=knowledgebase_id)


def _document(document_id: int) -> Document:
    return get_object_or_404(Document.objects.select_related("knowledge_base"), pk=document_id)


def _documents_context(request: TenantRequest, kb: KnowledgeBase) -> dict[str, Any]:
    documents = list(document_list_for_kb(knowledge_base=kb)[:500])
    return {
        "kb": kb,
        "rows": [{"doc": d, "stages": document_stages(d)} for d in documents],
        "pending": any(not d.is_final for d in documents),
        "reindex": knowledge_base_reindex_progress(knowledge_base=kb),
        "is_admin": request.membership.has_role(Role.ADMIN),
    }


@require_GET
@require_role(Role.MEMBER)
def kb_detail(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    kb = _kb(knowledgebase_id)
    context = {
        **_documents_context(request, kb),
        "upload_form": UploadForm(),
        "url_form": UrlForm(),
        "text_form": TextForm(),
        "search_form": SearchForm(),
        "rename_form": KnowledgeBaseRenameForm(initial={"name": kb.name, "description": kb.description}),
        "allowance": upload_allowance(tenant=request.tenant),
        "allowed_extensions": ",".join(ALLOWED_EXTENSIONS),
        "allowed_types": ALLOWED_TYPES_LABEL,
    }
    return render(request, "knowledge/kb_detail.html", context)


@require_GET
@require_role(Role.MEMBER)
def kb_documents(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """The documents table alone: htmx polls it while any document is still being processed
    (the partial stops asking once every one is ready or failed)."""
    kb = _kb(knowledgebase_id)
    return render(request, "knowledge/_documents.html", _documents_context(request, kb))


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


def _upload_one(request: TenantRequest, kb: KnowledgeBase, uploaded: UploadedFile) -> dict[str, Any]:
    """Check and store one file of a batch; its refusal is its own, never the batch's."""
    name = (uploaded.name or "upload").rsplit("/", 1)[-1]
    try:
        extension_check(filename=name)
        upload_check(knowledge_base=kb, uploaded_file=uploaded)
        document = services.document_create_from_upload(
            knowledge_base=kb, uploaded_file=uploaded, created_by=request.user
        )
    except AppError as exc:
        return {"file": name, "status": exc.status, **exc.as_dict()}
    return {"file": name, "status": 201, "document": document_status_payload(document)}


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_POST
@require_role(Role.ADMIN)
def document_upload(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """One or several files (field `file`), each checked on its own: type, size, plan quotas.

    The page's script sends one file per request and asks for JSON: 201 with the document, or the
    file's error status with {"error": {"code", "message"}}. A batch answers {"results": [...]},
    201 when all were taken, 200 when some were, else the first refusal's status and error.
    The plain form (no script) gets a message per file and goes back to the page.
    """
    kb = _kb(knowledgebase_id)
    files = request.FILES.getlist("file")
    if files:
        results = [_upload_one(request, kb, f) for f in files]
    else:
        missing = AppError("Choose at least one file to upload.", code="no_file")
        results = [{"file": "", "status": 400, **missing.as_dict()}]
    if _wants_json(request):
        return _upload_json(results)
    for result in results:
        if "error" in result:
            messages.error(request, result["error"]["message"])
        else:
            messages.success(request, f"“{result['file']}” was added and is being processed.")
    return redirect("kb_detail", tenant_slug=tenant_slug, knowledgebase_id=kb.pk)


def _upload_json(results: list[dict[str, Any]]) -> JsonResponse:
    refused = [r for r in results if "error" in r]
    if len(results) == 1:
        only = results[0]
        return JsonResponse({k: v for k, v in only.items() if k != "status"}, status=only["status"])
    body: dict[str, Any] = {"results": [{k: v for k, v in r.items() if k != "status"} for r in results]}
    if len(refused) == len(results):
        return JsonResponse({**body, "error": refused[0]["error"]}, status=refused[0]["status"])
    return JsonResponse(body, status=200 if refused else 201)


@require_POST
@require_role(Role.ADMIN)
def document_add_url(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
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
@require_role(Role.ADMIN)
def document_add_text(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    return _add_document(
        request,
        tenant_slug,
        knowledgebase_id,
        TextForm(request.POST),
        lambda kb, data: services.document_create_from_text(knowledge_base=kb, title=data["title"], text=data["text"]),
    )


@require_GET
@require_role(Role.MEMBER)
def kb_status(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> JsonResponse:
    """The progress poller's endpoint: every document's status and progress."""
    kb = _kb(knowledgebase_id)
    documents = [document_status_payload(d) for d in document_list_for_kb(knowledge_base=kb)[:500]]
    return JsonResponse({"documents": documents, "reindex": knowledge_base_reindex_progress(knowledge_base=kb)})


@require_GET
@require_role(Role.MEMBER)
def kb_search(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    """Try retrieval as the bots see it: each passage with its vector, keyword and fused scores,
    and whether the relevance gate would keep it. htmx gets the results alone."""
    kb = _kb(knowledgebase_id)
    form = SearchForm(request.GET or None)
    results = None
    if form.is_valid():
        results = search_trace(
            tenant=request.tenant, knowledge_base=kb, query=form.cleaned_data["q"], k=form.cleaned_data["k"] or 5
        )
    context = {"kb": kb, "form": form, "results": results}
    template = "knowledge/_search_results.html" if request.htmx else "knowledge/kb_search.html"
    return render(request, template, context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def document_retry(request: TenantRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    try:
        services.document_retry(document=document)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{document.title}” was queued again.")
    return _done(request, tenant_slug, document.knowledge_base)


@require_POST
@require_role(Role.ADMIN)
def document_resync(request: TenantRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    try:
        services.document_resync(document=document)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{document.title}” will be fetched again.")
    return _done(request, tenant_slug, document.knowledge_base)


@require_POST
@require_role(Role.ADMIN)
def document_delete(request: TenantRequest, tenant_slug: str, document_id: int) -> HttpResponse:
    document = _document(document_id)
    kb = document.knowledge_base
    services.document_delete(document=document, deleted_by=request.user)
    messages.success(request, f"“{document.title}” was deleted.")
    return _done(request, tenant_slug, kb)


@require_POST
@require_role(Role.ADMIN)
def kb_rename(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
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
@require_role(Role.ADMIN)
def kb_delete(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
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
@require_role(Role.ADMIN)
def kb_reindex(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
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
@require_role(Role.ADMIN)
def kb_reindex_cancel(request: TenantRequest, tenant_slug: str, knowledgebase_id: int) -> HttpResponse:
    kb = _kb(knowledgebase_id)
    try:
        reindex.knowledge_base_reindex_cancel(knowledge_base=kb, cancelled_by=request.user)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Re-index cancelled; “{kb.name}” stays on {kb.embedding_model}.")
    return _done(request, tenant_slug, kb)
