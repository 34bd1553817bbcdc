"""Refuse an upload at the door, for callers that answer at once (the REST API).

The dashboard keeps a refused file as a `failed` document that shows its reason in the list
(knowledge.services.document_create_from_upload). An API client wants a 4xx with a code
instead, and no failed row left behind, so the API checks here first and stores nothing when
the file is refused.

The kind is read from the first bytes with the same `sniff` the ingestion uses; zip-based
formats (DOCX, PPTX, XLSX) need the whole file, so their verdict stays with the ingestion.
"""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import filesizeformat

from chatbot_saas.errors import AppError

from .models import KnowledgeBase
from .parsing import ParseError, sniff
from .services import max_upload_bytes

# The names the dashboard accepts, in the browser (the file input's `accept`) and on the server
# (extension_check). The API decides by content alone (upload_check) and keeps doing so.
ALLOWED_EXTENSIONS = (".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md", ".markdown", ".csv", ".txt")
ALLOWED_TYPES_LABEL = "PDF, DOCX, PPTX, XLSX, HTML, Markdown, CSV or plain text"

SNIFF_BYTES = 65536
ZIP_MAGIC = b"PK\x03\x04"


class UploadRefused(AppError):
    status = 400


def extension_check(*, filename: str) -> None:
    """Raise UploadRefused(unsupported_type, 415) for a name the dashboard does not accept."""
    if not filename.lower().endswith(ALLOWED_EXTENSIONS):
        raise UploadRefused(
            f"“{filename}” is not a supported type. Upload {ALLOWED_TYPES_LABEL} files.",
            code="unsupported_type",
            status=415,
        )


def upload_check(*, knowledge_base: KnowledgeBase, uploaded_file: Any) -> None:
    """Raise UploadRefused: empty_file (400), file_too_large (413), unsupported_type or
    encrypted_or_legacy_office (415). Reads the file's head and rewinds it; writes nothing."""
    size = int(getattr(uploaded_file, "size", 0) or 0)
    if size == 0:
        raise UploadRefused("The file is empty. Upload a document with some content.", code="empty_file")
    limit = max_upload_bytes(tenant=knowledge_base.tenant)
    if size > limit:
        raise UploadRefused(
            f"The file is {filesizeformat(size)}; your plan allows {filesizeformat(limit)} per file. "
            "Split it or upgrade your plan on the Billing page.",
            code="file_too_large",
            status=413,
        )
    uploaded_file.seek(0)
    head = uploaded_file.read(SNIFF_BYTES)
    uploaded_file.seek(0)
    if head.startswith(ZIP_MAGIC):
        return
    try:
        sniff(head)
    except ParseError as exc:
        raise UploadRefused(str(exc), code=exc.code, status=415) from None
