"""Parsing: bytes in, text sections (with page numbers and headings) out.

- The format is decided by magic bytes and content, never by the file name or Content-Type.
- PDFs are read page by page with pypdfium2 (Apache-2.0/BSD), so a 300-page PDF is never
  held as text all at once; DOCX/PPTX/XLSX/CSV go through markitdown; HTML through trafilatura.
- Zip containers are inspected before any parser opens them (zip bombs); every parse runs
  under a wall-clock limit; a page limit and a text-size limit apply.
"""

from __future__ import annotations

import contextlib
import csv
import re
import signal
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .chunking import Section


class ParseError(Exception):
    """The document cannot be parsed; `code` is stable and the message tells the user why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    max_pages: int
    max_text_chars: int
    max_unzipped_bytes: int
    max_zip_ratio: int


MIME_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "text": "text/plain",
}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc/.xls, and password-protected OOXML
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE | re.DOTALL)
_MARKDOWN_HINT = re.compile(r"^(#{1,6} |\s*[-*] |\s*\d+\. |```)", re.MULTILINE)


def _zip_kind(names: set[str]) -> str | None:
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (or UTF-16 with a BOM) text; binary data is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data[:8192]:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    raise ParseError(
        "This file is not a supported format (PDF, DOCX, PPTX, XLSX, HTML, Markdown, CSV or plain UTF-8 text).",
        code="unsupported_type",
    )


def _looks_like_csv(text: str) -> bool:
    sample = text[:4096]
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return False
    counts = {len(row) for row in csv.reader(lines[:20], dialect)}
    return len(counts) == 1 and counts.pop() > 1


def sniff(head: bytes, *, path: Path | None = None) -> str:
    """The document kind, from its first bytes (and, for zips, its directory)."""
    if not head:
        raise ParseError("The file is empty.", code="empty_file")
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if path is None:
            raise ParseError("Zip documents must be parsed from a file.", code="unsupported_type")
        try:
            with zipfile.ZipFile(path) as archive:
                kind = _zip_kind(set(archive.namelist()))
        except zipfile.BadZipFile as exc:
            raise ParseError("The file is a damaged zip archive.", code="corrupt_file") from exc
        if kind is None:
            raise ParseError("Zip archives are not supported; upload DOCX, PPTX or XLSX.", code="unsupported_type")
        return kind
    if head.startswith(_OLE_MAGIC):
        raise ParseError(
            "This is a password-protected or legacy (.doc/.xls/.ppt) Office file. Remove the password, "
            "or save it as DOCX/XLSX/PPTX, and upload it again.",
            code="encrypted_or_legacy_office",
        )
    if _HTML_START.match(head[:2048]):
        return "html"
    text = decode_text(head[:65536].rsplit(b"\n", 1)[0] if len(head) > 65536 else head)
    if _looks_like_csv(text):
        return "csv"
    return "markdown" if _MARKDOWN_HINT.search(text) else "text"


def check_zip(path: Path, limits: Limits) -> None:
    """Refuse zip bombs and encrypted members before a parser inflates anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError("The file is a damaged zip archive.", code="corrupt_file") from exc
    if len(infos) > 10_000:
        raise ParseError("The document contains too many parts.", code="zip_bomb")
    total = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos) or 1
    if any(info.flag_bits & 0x1 for info in infos):
        raise ParseError("The document is encrypted; remove the password and upload it again.", code="encrypted")
    if total > limits.max_unzipped_bytes or total / compressed > limits.max_zip_ratio:
        raise ParseError(
            "The document expands to far more data than its size suggests (a zip bomb?), so it was not opened.",
            code="zip_bomb",
        )


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise ParseError(timeout) if the block runs longer than `seconds`.

    Uses SIGALRM, which only the main thread of a process can receive: true in a prefork
    Celery child and in management commands. Elsewhere the Celery task time limit still applies.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise ParseError(f"Parsing took longer than {seconds} seconds and was stopped.", code="parse_timeout")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _open_pdf(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseError(
                "The PDF is password-protected; remove the password and upload it again.", code="encrypted"
            ) from exc
        raise ParseError("The PDF is damaged and could not be read.", code="corrupt_file") from exc


def pdf_page_count(path: Path) -> int:
    pdf = _open_pdf(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def iter_pdf_pages(path: Path, limits: Limits) -> Iterator[Section]:
    """One section per page, read lazily so memory stays bounded by a single page."""
    pdf = _open_pdf(path)
    try:
        pages = len(pdf)
        if pages > limits.max_pages:
            raise ParseError(
                f"The PDF has {pages} pages; your plan allows {limits.max_pages} per document.", code="too_many_pages"
            )
        for index in range(pages):
            page = pdf[index]
            textpage = page.get_textpage()
            try:
                text = textpage.get_text_range()
            finally:
                textpage.close()
                page.close()
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text.strip():
                yield Section(text=text, page=index + 1)
    finally:
        pdf.close()


def _markitdown(path: Path, extension: str) -> str:
    from markitdown import MarkItDown, StreamInfo

    try:
        with path.open("rb") as handle:
            result = MarkItDown(enable_plugins=False).convert_stream(
                handle, stream_info=StreamInfo(extension=extension)
            )
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"The {extension.lstrip('.').upper()} file could not be read.", code="corrupt_file") from exc
    return result.markdown or ""


_SLIDE = re.compile(r"<!-- Slide number: (\d+) -->")


def _pptx_sections(markdown: str, limits: Limits) -> Iterator[Section]:
    parts = _SLIDE.split(markdown)
    slides = (len(parts) - 1) // 2
    if slides > limits.max_pages:
        raise ParseError(
            f"The presentation has {slides} slides; your plan allows {limits.max_pages} per document.",
            code="too_many_pages",
        )
    if parts[0].strip():
        yield Section(text=parts[0])
    for number, body in zip(parts[1::2], parts[2::2], strict=True):
        if body.strip():
            yield Section(text=body, page=int(number))


def html_to_markdown(html: str | bytes, *, url: str = "") -> tuple[str, str]:
    """(title, main text as markdown) of a web page, boilerplate removed."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url or None, output_format="markdown", include_comments=False, include_tables=True, favor_recall=True
    )
    metadata = trafilatura.extract_metadata(html)
    title = (metadata.title if metadata and metadata.title else "") or ""
    return title.strip(), (text or "")


def parse_file(path: Path, kind: str, limits: Limits, *, url: str = "") -> Iterator[Section]:
    """Sections of the document at `path`, lazily where the format allows."""
    if kind == "pdf":
        yield from iter_pdf_pages(path, limits)
        return
    if kind in ("docx", "pptx", "xlsx"):
        check_zip(path, limits)
        markdown = _markitdown(path, f".{kind}")
        _check_text_size(markdown, limits)
        if kind == "pptx":
            yield from _pptx_sections(markdown, limits)
        else:
            yield Section(text=markdown)
        return
    if kind == "csv":
        markdown = _markitdown(path, ".csv")
        _check_text_size(markdown, limits)
        yield Section(text=markdown)
        return
    text = decode_text(path.read_bytes())
    _check_text_size(text, limits)
    if kind == "html":
        _title, text = html_to_markdown(text, url=url)
    yield Section(text=text, url=url)


def _check_text_size(text: str, limits: Limits) -> None:
    if len(text) > limits.max_text_chars:
        raise ParseError(
            f"The document holds more than {limits.max_text_chars:,} characters of text; split it into smaller files.",
            code="too_much_text",
        )


def read_head(path: Path, size: int = 65536) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)
