"""Operators retry failed documents and re-index knowledge bases from the admin (a staff superuser
POSTing the real admin actions); the work is queued in each tenant's scope and audited."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.services import document_create_from_text
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.knowledge.factories import DocumentFactory

REFUNDS = "Refunds are paid back to the original card within five business days of the request."
PASSWORDS = "To reset your password, open the login page and click Forgot password to get an email link."


@pytest.fixture
def op_client(db: None) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123"))
    return client


@pytest.fixture
def handbook(world, kb_a, media) -> list[Document]:
    documents = []
    with tenant_context(world.tenant_a):
        for title, text in (("Refunds", REFUNDS), ("Passwords", PASSWORDS)):
            document = document_create_from_text(knowledge_base=kb_a, title=title, text=text)
            document_ingest(document_id=document.pk)
            document.refresh_from_db()
            documents.append(document)
    return documents


def run_queued(tenant) -> None:
    """Run what the action queued: the ingestion the worker would run for each queued document."""
    with tenant_context(tenant):
        for document in Document.objects.filter(status=Document.Status.QUEUED):
            document_ingest(document_id=document.pk)


def test_retrying_failed_documents_from_the_admin_ingests_them_again_and_audits_each(
    op_client, world, handbook, django_capture_on_commit_callbacks
):
    refunds, passwords = handbook
    Document.objects.unscoped().filter(pk=passwords.pk).update(
        status=Document.Status.FAILED, error_code="embedding_failed", error_message="The embedder timed out."
    )
    with django_capture_on_commit_callbacks(execute=False):
        op_client.post(
            "/admin/knowledge/document/", {"action": "retry_failed", "_selected_action": [refunds.pk, passwords.pk]}
        )
    passwords.refresh_from_db()
    assert (passwords.status, passwords.error_code) == ("queued", "")
    run_queued(world.tenant_a)
    passwords.refresh_from_db()
    assert passwords.status == "ready" and passwords.chunk_count > 0
    [row] = AuditEvent.objects.filter(action="document.retry")
    assert (row.target_id, row.tenant_id, row.details) == (
        str(passwords.pk),
        world.tenant_a.pk,
        {"error_code": "embedding_failed"},
    )
    refunds.refresh_from_db()
    assert refunds.status == "ready", "a ready document is not retried"


def test_the_tenant_action_retries_only_that_tenants_failed_documents(op_client, world, media):
    mine = DocumentFactory(tenant=world.tenant_a, status=Document.Status.FAILED, stored_file="knowledge/a")
    theirs = DocumentFactory(tenant=world.tenant_b, status=Document.Status.FAILED, stored_file="knowledge/b")
    op_client.post(
        "/admin/tenants/tenant/", {"action": "retry_failed_documents", "_selected_action": [world.tenant_a.pk]}
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == ("queued", "failed")
    assert [r.target_id for r in AuditEvent.objects.filter(action="document.retry")] == [str(mine.pk)]


def test_re_indexing_a_knowledge_base_from_the_admin_re_embeds_every_document_and_audits_it(
    op_client, world, kb_a, handbook, django_capture_on_commit_callbacks
):
    url = "/admin/knowledge/knowledgebase/"
    before = {d.pk: d.version for d in handbook}
    form = op_client.post(url, {"action": "reindex", "_selected_action": [kb_a.pk]})
    assert form.status_code == 200 and "Embedding model" in form.content.decode()

    with django_capture_on_commit_callbacks(execute=False):
        op_client.post(url, {"action": "reindex", "apply": "1", "_selected_action": [kb_a.pk], "embedding_model": ""})
    assert set(Document.objects.unscoped().filter(knowledge_base=kb_a).values_list("status", flat=True)) == {"queued"}
    run_queued(world.tenant_a)

    for document in Document.objects.unscoped().filter(knowledge_base=kb_a):
        assert document.status == "ready" and document.active_version > before[document.pk]
        visible = Chunk.objects.unscoped().filter(document=document, document_version=document.active_version)
        assert visible.count() == document.chunk_count > 0
    [row] = AuditEvent.objects.filter(action="knowledge_base.reindex")
    assert row.details == {"from": "all-MiniLM-L6-v2", "to": "all-MiniLM-L6-v2", "documents": 2}
    assert row.tenant_id == world.tenant_a.pk


def test_a_re_index_refused_by_the_service_says_why_and_is_not_audited(op_client, world, kb_a, handbook):
    Document.objects.unscoped().filter(pk=handbook[0].pk).update(status=Document.Status.EMBEDDING)
    response = op_client.post(
        "/admin/knowledge/knowledgebase/",
        {"action": "reindex", "apply": "1", "_selected_action": [kb_a.pk], "embedding_model": ""},
        follow=True,
    )
    assert "Some documents are still being processed" in response.content.decode()
    assert not AuditEvent.objects.filter(action="knowledge_base.reindex").exists()
    assert KnowledgeBase.objects.unscoped().get(pk=kb_a.pk).reindex_to == ""
