"""The knowledge base page's upload endpoint: several files, each checked on its own, refused
with the standard error when its type, size or the plan's quotas say no."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing.models import Plan
from billing.services import plan_default
from knowledge.models import Document

JSON = {"HTTP_ACCEPT": "application/json"}


def _file(name: str, content: bytes = b"# Notes\n\nOpen from nine to five.\n") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


@pytest.fixture
def upload_url(kb_a):
    return reverse("kb_document_upload", args=["acme", kb_a.pk])


def test_two_files_in_one_request_become_two_queued_documents(world, kb_a, media, upload_url):
    client = world.client_for(world.alice)
    files = [_file("faq.md"), _file("hours.txt", b"We are open on Sundays too.\n")]
    response = client.post(upload_url, {"file": files}, **JSON)
    assert response.status_code == 201
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["faq.md", "hours.txt"]
    assert all(r["document"]["status"] == "queued" for r in results)
    titles = set(Document.objects.unscoped().filter(knowledge_base=kb_a).values_list("title", flat=True))
    assert titles == {"faq.md", "hours.txt"}


def test_one_bad_file_does_not_sink_the_others_in_a_batch(world, kb_a, media, upload_url, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 200
    client = world.client_for(world.alice)
    files = [_file("good.md"), _file("photo.png", b"\x89PNG\r\n\x1a\n"), _file("huge.md", b"# Big\n" + b"w " * 200)]
    response = client.post(upload_url, {"file": files}, **JSON)
    assert response.status_code == 200
    by_file = {r["file"]: r for r in response.json()["results"]}
    assert by_file["good.md"]["document"]["status"] == "queued"
    assert by_file["photo.png"]["error"]["code"] == "unsupported_type"
    assert by_file["huge.md"]["error"] == {
        "code": "file_too_large",
        "message": "The file is 406\xa0bytes; your plan allows 200\xa0bytes per file. "
        "Split it or upgrade your plan on the Billing page.",
    }
    assert list(Document.objects.unscoped().filter(knowledge_base=kb_a).values_list("title", flat=True)) == ["good.md"]


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("huge.md", b"# Big\n" + b"w " * 200, 413, "file_too_large"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", 415, "unsupported_type"),
        ("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", 415, "unsupported_type"),
        ("empty.txt", b"", 400, "empty_file"),
    ],
)
def test_a_refused_file_answers_the_standard_error_and_stores_nothing(
    world, kb_a, media, upload_url, settings, name, content, status, code
):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 200
    response = world.client_for(world.alice).post(upload_url, {"file": _file(name, content)}, **JSON)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"].endswith(".")
    assert not Document.objects.unscoped().filter(knowledge_base=kb_a).exists()


def test_the_document_quota_refuses_the_file_past_it(world, kb_a, media, upload_url):
    Plan.objects.filter(pk=plan_default().pk).update(max_documents=1)
    files = [_file("one.md"), _file("two.md", b"Second file.\n")]
    response = world.client_for(world.alice).post(upload_url, {"file": files}, **JSON)
    by_file = {r["file"]: r for r in response.json()["results"]}
    assert "document" in by_file["one.md"]
    assert by_file["two.md"]["error"]["code"] == "quota_exceeded"
    assert Document.objects.unscoped().filter(knowledge_base=kb_a).count() == 1


def test_the_plain_form_reports_each_file_and_returns_to_the_page(world, kb_a, media, upload_url):
    files = [_file("good.md"), _file("notes.exe", b"MZ")]
    response = world.client_for(world.alice).post(upload_url, {"file": files}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("kb_detail", args=["acme", kb_a.pk])
    assert "“good.md” was added" in page and "“notes.exe” is not a supported type" in page


def test_an_upload_without_files_is_refused_in_plain_words(world, kb_a, media, upload_url):
    response = world.client_for(world.alice).post(upload_url, {}, **JSON)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "no_file", "message": "Choose at least one file to upload."}


def test_the_page_states_the_limits_the_browser_enforces(world, kb_a, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 5 * 1024 * 1024
    Plan.objects.filter(pk=plan_default().pk).update(max_documents=20, max_storage_bytes=50 * 1024 * 1024)
    page = world.client_for(world.alice).get(reverse("kb_detail", args=["acme", kb_a.pk])).content.decode()
    assert f'data-max-file-bytes="{5 * 1024 * 1024}"' in page
    assert 'data-documents-left="20"' in page and f'data-storage-left="{50 * 1024 * 1024}"' in page
    assert 'data-allowed-extensions=".pdf,.docx' in page and "multiple" in page
    assert "up to 5.0\xa0MB each" in page and "50.0\xa0MB of storage left" in page
    assert "<script>" not in page


def test_a_member_sees_documents_without_upload_or_edit_controls_and_gets_403(world, kb_a, media, upload_url):
    client = world.client_for(world.bob)
    page = client.get(reverse("kb_detail", args=["acme", kb_a.pk])).content.decode()
    assert "Try a search" in page
    for control in ("data-upload", "Paste text", "Save name", "Delete this knowledge base"):
        assert control not in page
    assert client.post(upload_url, {"file": _file("faq.md")}).status_code == 403
    assert client.post(reverse("kb_rename", args=["acme", kb_a.pk]), {"name": "Mine"}).status_code == 403
    assert client.post(reverse("kb_list", args=["acme"]), {"name": "Mine"}).status_code == 403
    assert not Document.objects.unscoped().filter(knowledge_base=kb_a).exists()
