"""The knowledge part of the REST API under /api/v1/ (a Django Ninja router).

Mounted, with authentication and plan checks, in chatbot_saas/api.py. A route that names a
knowledge base fetches it through the tenant scope first, so another tenant's id is a 404.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import BaseModel, Field

from chatbot_saas.errors import AppError, NotFound
from tenants.apiauth import scope_require

from .models import Document, KnowledgeBase
from .selectors import document_list_for_kb
from .services import document_create_from_upload
from .uploads import upload_check

router = Router(tags=["knowledge"])


class DocumentOut(Schema):
    id: int
    title: str
    status: str
    created: str | None = None


class UploadDoc(BaseModel):
    file: bytes = Field(json_schema_extra={"format": "binary"})


async def _knowledge_base_or_404(knowledgebase_id: int) -> KnowledgeBase:
    kb = await KnowledgeBase.objects.filter(pk=knowledgebase_id).afirst()
    if kb is None:
        raise NotFound("No such knowledge base.")
    return kb


def _document_out(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "title": document.title or "",
        "status": str(document.status),
        "created": document.created.isoformat() if document.created else None,
    }


@router.get("/knowledge-bases/{knowledgebase_id}/documents", response=list[DocumentOut])
async def documents_list(request: HttpRequest, knowledgebase_id: int) -> Any:
    scope_require(request.auth, "knowledge:read")
    kb = await _knowledge_base_or_404(knowledgebase_id)
    documents = await sync_to_async(lambda: list(document_list_for_kb(knowledge_base=kb)))()
    return [_document_out(d) for d in documents]


@router.post(
    "/knowledge-bases/{knowledgebase_id}/documents",
    response={201: DocumentOut},
    summary="Upload a document (multipart, field `file`); it is ingested in the background",
    description="An empty file answers 400 `empty_file`, one over the plan's size limit 413 `file_too_large`, "
    "and one in no supported format 415 `unsupported_type`; nothing is stored then.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": UploadDoc.model_json_schema()}},
        }
    },
)
async def document_upload(request: HttpRequest, knowledgebase_id: int) -> Any:
    scope_require(request.auth, "knowledge:write")
    kb = await _knowledge_base_or_404(knowledgebase_id)
    uploaded = request.FILES.get("file")
    if uploaded is None:
        raise AppError("Send the document as a multipart form field named 'file'.", code="file_missing", status=422)
    await sync_to_async(upload_check)(knowledge_base=kb, uploaded_file=uploaded)
    document = await sync_to_async(document_create_from_upload)(knowledge_base=kb, uploaded_file=uploaded)
    return 201, _document_out(document)
