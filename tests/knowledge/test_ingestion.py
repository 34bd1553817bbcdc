"""The ingestion pipeline, run in-process: formats, bad input, versions, dedup, retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from billing.quotas import QuotaExceeded
from knowledge.embeddings import get_embedder
from knowledge.ingestion import IngestRetry, document_ingest
from knowledge.models import Chunk, Document
from knowledge.services import (
    document_create_from_text,
    document_create_from_upload,
    document_create_from_url,
    document_resync,
    document_retry,
    documents_watchdog,
)
from tenants.context import tenant_context
from tests.knowledge.httpserver import serve
from tests.knowledge.samples import docx_bytes, pdf_bytes, pptx_bytes, zip_bomb_docx

OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504


@pytest.fixture
def ingest(world, kb_a, media):
    """Upload bytes as `name` into tenant A's knowledge base and ingest them in-process."""

    def run(name: str, data: bytes) -> Document:
        with tenant_context(world.tenant_a):
            document = document_create_from_upload(knowledge_base=kb_a, uploaded_file=SimpleUploadedFile(name, data))
            if not document.is_final:
                document_ingest(document_id=document.pk)
            document.refresh_from_db()
            return document

    return run


def visible_chunks(document: Document) -> list[Chunk]:
    return list(Chunk.objects.unscoped().filter(document=document, document_version=document.active_version))


def test_a_pdf_is_ingested_with_page_numbers(ingest):
    document = ingest("manual.pdf", pdf_bytes(["Installing the printer driver", "Replacing the toner cartridge"]))
    assert (document.status, document.progress, document.page_count) == ("ready", 100, 2)
    assert document.mime_type == "application/pdf" and document.content_hash
    assert {c.page: c.text for c in visible_chunks(document)} == {
        1: "Installing the printer driver",
        2: "Replacing the toner cartridge",
    }


def test_docx_pptx_markdown_html_and_csv_are_ingested_with_headings(ingest):
    docx = ingest("policy.docx", docx_bytes("Refund policy", ["Refunds are paid within five days."]))
    pptx = ingest("deck.pptx", pptx_bytes([("Roadmap", "Ship the widget"), ("Pricing", "Three plans")]))
    markdown = ingest("notes.md", b"# Setup\n\n## Install\n\nRun make run to start everything.\n")
    html = ingest(
        "page.html",
        b"<!doctype html><html><head><title>T</title></head><body><nav>menu</nav><article><h1>Shipping</h1>"
        b"<p>We ship worldwide within two weeks of your order, tracked and insured.</p></article></body></html>",
    )
    csv = ingest("prices.csv", b"plan,price\nfree,0\npro,20\n")
    assert [d.status for d in (docx, pptx, markdown, html, csv)] == ["ready"] * 5
    assert visible_chunks(docx)[0].heading_path == ["Refund policy"]
    assert {c.page for c in visible_chunks(pptx)} == {1, 2}
    assert visible_chunks(markdown)[0].heading_path == ["Setup", "Install"]
    assert "ship worldwide" in visible_chunks(html)[0].text
    assert "pro" in visible_chunks(csv)[0].text


def test_no_chunk_is_longer_than_the_model_input(world, kb_a, media):
    text = "\n\n".join(f"Paragraph {i}. " + "The quick brown fox jumps over the lazy dog. " * 30 for i in range(4))
    text += "\n\n" + "x" * 5000  # one enormous "word"
    with tenant_context(world.tenant_a):
        document = document_create_from_text(knowledge_base=kb_a, title="Long", text=text)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
    counter = get_embedder().count_tokens
    chunks = visible_chunks(document)
    assert document.status == "ready" and len(chunks) > 4
    assert max(counter(c.text) for c in chunks) <= kb_a.chunk_size_tokens
    assert all(c.token_count == counter(c.text) for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.pdf", b"", "empty_file"),
        ("corrupt.pdf", b"%PDF-1.4\n this is not really a pdf", "corrupt_file"),
        ("encrypted.docx", OLE_HEADER, "encrypted_or_legacy_office"),
        ("program.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 8, "unsupported_type"),
        ("bomb.docx", zip_bomb_docx(), "zip_bomb"),
        ("archive.zip", zip_bomb_docx(1000)[:0] + b"PK\x03\x04garbage", "corrupt_file"),
        ("blank.txt", b"   \n\n   ", "no_text"),
    ],
)
def test_bad_files_end_failed_with_a_clear_message(ingest, name, data, code):
    document = ingest(name, data)
    assert document.status == "failed"
    assert document.error_code == code
    assert document.error_message
    assert not Chunk.objects.unscoped().filter(document=document).exists()


def test_a_mislabelled_file_is_parsed_by_its_magic_bytes_not_its_name(ingest):
    document = ingest("actually-a-pdf.txt", pdf_bytes(["Magic bytes decide the format"]))
    assert document.status == "ready" and document.mime_type == "application/pdf"


def test_a_file_over_the_upload_limit_fails_without_being_stored(ingest, settings, media):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    document = ingest("big.txt", b"a" * 101)
    assert (document.status, document.error_code, document.stored_file) == ("failed", "file_too_large", "")


def test_a_pdf_over_the_page_limit_fails(ingest, settings):
    settings.KNOWLEDGE_MAX_PAGES = 2
    document = ingest("long.pdf", pdf_bytes(["one", "two", "three"]))
    assert (document.status, document.error_code) == ("failed", "too_many_pages")


def test_a_hostile_filename_is_only_a_title_never_a_path(ingest, media):
    document = ingest("../../../etc/passwd", b"harmless text about refunds")
    assert document.status == "ready"
    assert document.original_filename == "passwd"
    assert document.stored_file.startswith("knowledge/") and ".." not in document.stored_file


def test_an_identical_upload_returns_the_existing_document(ingest, world):
    first = ingest("a.txt", b"the same content")
    second = ingest("b.txt", b"the same content")
    assert second.pk == first.pk
    with tenant_context(world.tenant_a):
        assert Document.objects.count() == 1


def test_identical_content_from_another_source_reuses_chunks_instead_of_embedding(world, kb_a, media, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    body = b"Opening hours are nine to five on weekdays."
    with tenant_context(world.tenant_a):
        uploaded = document_create_from_upload(knowledge_base=kb_a, uploaded_file=SimpleUploadedFile("h.txt", body))
        document_ingest(document_id=uploaded.pk)
        with serve({"/hours": (200, {"Content-Type": "text/plain"}, body)}) as base:
            page = document_create_from_url(knowledge_base=kb_a, url=base + "/hours")
            document_ingest(document_id=page.pk)
        page.refresh_from_db()
    assert page.status == "ready" and page.chunk_count == 1
    copied = visible_chunks(page)[0]
    original = Chunk.objects.unscoped().get(document=uploaded)
    assert copied.text == original.text and list(copied.embedding) == list(original.embedding)


def test_reingesting_replaces_the_chunks_with_one_new_version(world, kb_a, media, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    pages = {
        "body": b"<html><body><article><p>Version one of the page text, long enough to keep.</p></article></body></html>"
    }
    routes = {"/p": lambda: (200, {"Content-Type": "text/html"}, pages["body"])}
    with serve(routes) as base, tenant_context(world.tenant_a):
        document = document_create_from_url(knowledge_base=kb_a, url=base + "/p")
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
        first_version, first_synced = document.active_version, document.last_synced
        # Unchanged content: nothing is re-embedded, the same version stays visible.
        document_resync(document=document)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
        assert document.active_version == first_version and document.last_synced > first_synced
        pages["body"] = pages["body"].replace(b"Version one", b"Version two")
        document_resync(document=document)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
    chunks = list(Chunk.objects.unscoped().filter(document=document))
    assert document.status == "ready" and document.active_version > first_version
    assert {c.document_version for c in chunks} == {document.active_version}
    assert "Version two" in chunks[0].text and chunks[0].source_url == base + "/p"


def test_a_sitemap_ingests_each_listed_page_up_to_the_cap(world, kb_a, media, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    settings.KNOWLEDGE_SITEMAP_MAX_PAGES = 2
    page = "<html><body><article><p>This is page {} with enough words to be main text.</p></article></body></html>"
    routes: dict = {}
    with serve(routes) as base:
        urls = "".join(f"<url><loc>{base}/p{i}</loc></url>" for i in range(3))
        routes["/sitemap.xml"] = (
            200,
            {"Content-Type": "application/xml"},
            f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(),
        )
        for i in range(3):
            routes[f"/p{i}"] = (200, {"Content-Type": "text/html"}, page.format(i).encode())
        with tenant_context(world.tenant_a):
            document = document_create_from_url(knowledge_base=kb_a, url=base + "/sitemap.xml", is_sitemap=True)
            document_ingest(document_id=document.pk)
            document.refresh_from_db()
    assert document.status == "ready"
    assert sorted(c.source_url for c in visible_chunks(document)) == [base + "/p0", base + "/p1"]


def test_a_hostile_sitemap_with_entities_fails_cleanly(world, kb_a, media, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><urlset>&b;</urlset>'
    with serve({"/s.xml": (200, {}, bomb)}) as base, tenant_context(world.tenant_a):
        document = document_create_from_url(knowledge_base=kb_a, url=base + "/s.xml", is_sitemap=True)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
    assert (document.status, document.error_code) == ("failed", "invalid_sitemap")


def test_a_url_to_a_private_address_is_refused_when_added(world, kb_a):
    from chatbot_saas.errors import AppError

    with tenant_context(world.tenant_a), pytest.raises(AppError) as info:
        document_create_from_url(knowledge_base=kb_a, url="http://169.254.169.254/latest/meta-data/")
    assert info.value.code == "url_refused"


def test_a_transient_failure_retries_then_ends_failed_with_its_error_kept(world, kb_a, media, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    settings.KNOWLEDGE_INGEST_MAX_ATTEMPTS = 2
    # The page answers, but the knowledge base's embedding service is unreachable (a closed port).
    settings.KNOWLEDGE_OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.KNOWLEDGE_OPENAI_MAX_RETRIES = 0
    with tenant_context(world.tenant_a):
        from knowledge.services import knowledge_base_create

        openai_kb = knowledge_base_create(
            tenant=world.tenant_a, name="Remote", embedding_model="text-embedding-3-small"
        )
        document = document_create_from_text(knowledge_base=openai_kb, title="t", text="some text to embed")
        for _ in range(2):
            with pytest.raises(IngestRetry):
                document_ingest(document_id=document.pk)
            document.refresh_from_db()
            assert document.status == "queued" and document.error_code == "embedding_rate_limited"
        assert document_ingest(document_id=document.pk) == "failed"
        document.refresh_from_db()
    assert document.attempts == 2 and "embedding service" in document.error_message
    with tenant_context(world.tenant_a):
        document_retry(document=document)
        document.refresh_from_db()
    assert (document.status, document.attempts, document.error_code) == ("queued", 0, "")


def test_the_watchdog_requeues_documents_stuck_in_a_working_status(
    world, kb_a, media, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        document = document_create_from_text(knowledge_base=kb_a, title="t", text="stuck text")
    Document.objects.unscoped().filter(pk=document.pk).update(
        status="embedding", updated=timezone.now() - timedelta(hours=2)
    )
    fresh = Document.objects.unscoped().filter(pk=document.pk).first()
    assert documents_watchdog(stuck_after=timedelta(minutes=15)) == {"requeued": 1}
    assert documents_watchdog(stuck_after=timedelta(minutes=15)) == {"requeued": 0}
    fresh.refresh_from_db()
    assert fresh.updated > timezone.now() - timedelta(minutes=1)


def test_the_document_quota_is_enforced_when_a_document_is_created(world, kb_a, media):
    from billing.quotas import effective_plan

    plan = effective_plan(tenant=world.tenant_a)
    plan.max_documents = 1
    plan.save(update_fields=["max_documents"])
    with tenant_context(world.tenant_a):
        document_create_from_text(knowledge_base=kb_a, title="one", text="first")
        with pytest.raises(QuotaExceeded):
            document_create_from_text(knowledge_base=kb_a, title="two", text="second")


def test_the_scheduled_resync_queues_only_web_documents_that_are_due(world, kb_a, media, settings):
    from knowledge.services import documents_resync_due
    from tests.knowledge.factories import DocumentFactory

    old = timezone.now() - timedelta(hours=settings.KNOWLEDGE_RESYNC_HOURS + 1)
    due = DocumentFactory(
        tenant=world.tenant_a, knowledge_base=kb_a, source="url", url="https://example.com/a", last_synced=old
    )
    DocumentFactory(
        tenant=world.tenant_a,
        knowledge_base=kb_a,
        source="url",
        url="https://example.com/b",
        last_synced=timezone.now(),
    )
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, source="text", last_synced=old)
    assert documents_resync_due() == {"queued": 1}
    due.refresh_from_db()
    assert due.status == "queued"
    with tenant_context(world.tenant_a), pytest.raises(Exception, match="Only web pages"):
        document_resync(document=Document.objects.get(source="text"))
