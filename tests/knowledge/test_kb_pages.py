"""The knowledge list and knowledge base pages: counts, readiness, sizes, the polled documents
partial, and the search box with its scores."""

from __future__ import annotations

import re

from django.urls import reverse

from knowledge.ingestion import document_ingest
from knowledge.models import Document
from tenants.context import tenant_context
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory


def test_the_list_shows_counts_readiness_sizes_and_last_update(world, kb_a):
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, size=46_642)
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, size=1024, status="embedding")
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, size=0, status="failed")
    KnowledgeBaseFactory(tenant=world.tenant_a, name="Empty one")
    page = world.client_for(world.bob).get(reverse("kb_list", args=["acme"])).content.decode()
    handbook = page[page.index('data-kb="Handbook"') :].split("</tr>")[0]
    assert "<td>3</td>" in handbook
    assert "1 ready" in handbook and "1 processing" in handbook and "1 failed" in handbook
    assert "46.5\xa0KB" in handbook  # 47,666 bytes in all
    assert re.search(r"<time datetime=\"[^\"]+\">(now|a second ago|\d+\xa0seconds ago)</time>", handbook)
    empty = page[page.index('data-kb="Empty one"') :].split("</tr>")[0]
    assert "No documents" in empty and "0\xa0bytes" in empty


def test_the_list_offers_the_create_form_to_admins_only(world, kb_a):
    assert 'id="create"' in world.client_for(world.alice).get(reverse("kb_list", args=["acme"])).content.decode()
    assert 'id="create"' not in world.client_for(world.bob).get(reverse("kb_list", args=["acme"])).content.decode()


def test_an_empty_workspace_says_what_to_do_next(world):
    page = world.client_for(world.alice).get(reverse("kb_list", args=["acme"])).content.decode()
    assert "No knowledge bases yet" in page and "Create a knowledge base" in page


def test_an_invalid_knowledge_base_is_shown_in_place(world):
    response = world.client_for(world.alice).post(reverse("kb_list", args=["acme"]), {"name": ""})
    assert response.status_code == 400
    assert 'class="form-row has-error required"' in response.content.decode()


def test_the_list_runs_a_fixed_number_of_queries(world, django_assert_num_queries):
    for n in range(5):
        kb = KnowledgeBaseFactory(tenant=world.tenant_a, name=f"KB {n}")
        DocumentFactory.create_batch(3, tenant=world.tenant_a, knowledge_base=kb)
    client = world.client_for(world.alice)
    client.get(reverse("kb_list", args=["acme"]))
    # Session, user, membership, the sidebar's workspaces, the billing banner, and one for the
    # knowledge bases with all their counts: the same for 5 knowledge bases as for 1.
    with django_assert_num_queries(6):
        assert client.get(reverse("kb_list", args=["acme"])).status_code == 200


def test_the_documents_partial_polls_while_something_is_unfinished_and_stops_after(world, kb_a):
    document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, status="chunking", progress=40)
    client = world.client_for(world.bob)
    url = reverse("kb_documents", args=["acme", kb_a.pk])
    partial = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in partial and "<html" not in partial
    assert 'aria-current="step">Chunk<' in partial and 'value="40"' in partial
    Document.objects.unscoped().filter(pk=document.pk).update(status="ready", progress=100)
    assert "hx-trigger" not in client.get(url, HTTP_HX_REQUEST="true").content.decode()


def test_a_failed_document_shows_its_reason_and_a_retry_button_for_admins(world, kb_a):
    document = DocumentFactory(
        tenant=world.tenant_a, knowledge_base=kb_a, status="failed", error_message="The PDF is damaged."
    )
    url = reverse("kb_documents", args=["acme", kb_a.pk])
    retry = reverse("kb_document_retry", args=["acme", document.pk])
    admin_view = world.client_for(world.alice).get(url).content.decode()
    assert "The PDF is damaged." in admin_view and retry in admin_view
    member_view = world.client_for(world.bob).get(url).content.decode()
    assert "The PDF is damaged." in member_view and retry not in member_view
    assert world.client_for(world.bob).post(retry).status_code == 403


def _ingested(world, kb, title: str, text: str) -> None:
    with tenant_context(world.tenant_a):
        document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, title=title, status="queued")
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from knowledge.models import new_storage_name

    stored = default_storage.save(new_storage_name(), ContentFile(text.encode()))
    Document.objects.unscoped().filter(pk=document.pk).update(stored_file=stored, source="text")
    with tenant_context(world.tenant_a):
        document_ingest(document_id=document.pk)


def test_search_shows_each_passage_with_vector_keyword_and_fused_scores_and_the_gate(world, kb_a, media):
    _ingested(world, kb_a, "Hours", "# Opening hours\n\nWe are open from nine to five on weekdays.")
    _ingested(world, kb_a, "Pets", "# Pets\n\nDogs are welcome in the garden if they are on a lead.")
    client = world.client_for(world.bob)
    url = reverse("kb_search", args=["acme", kb_a.pk])
    page = client.get(url, {"q": "When are you open on weekdays?", "k": 2}).content.decode()
    assert page.count('data-testid="hit"') == 2 and "<html" in page
    first = page[page.index('data-testid="hit"') :].split("</li>")[0]
    assert "Hours" in first and "nine to five" in first and "Kept" in first
    assert 'data-score="vector"' in first and 'data-score="keyword"' in first and 'data-score="fused"' in first
    assert "Gate: similarity" in first
    partial = client.get(url, {"q": "When are you open on weekdays?"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'data-testid="hit"' in partial and "the relevance gate keeps" in partial


def test_an_unrelated_query_is_dropped_by_the_gate_and_said_so(world, kb_a, media):
    _ingested(world, kb_a, "Hours", "# Opening hours\n\nWe are open from nine to five on weekdays.")
    page = (
        world.client_for(world.alice)
        .get(reverse("kb_search", args=["acme", kb_a.pk]), {"q": "quantum chromodynamics of gluons"})
        .content.decode()
    )
    assert "Dropped" in page and "keeps none" in page


def test_a_bad_search_is_refused_in_place(world, kb_a):
    url = reverse("kb_search", args=["acme", kb_a.pk])
    response = world.client_for(world.alice).get(url, {"q": "hours", "k": 500})
    assert response.status_code == 400 and "less than or equal to 50" in response.content.decode()


def test_it_checks_ownership_of_the_new_pages(world, kb_a):
    charlie = world.client_for(world.charlie)
    for slug in ("acme", "bravo"):
        assert charlie.get(reverse("kb_documents", args=[slug, kb_a.pk])).status_code == 404
        assert charlie.post(reverse("kb_document_upload", args=[slug, kb_a.pk])).status_code == 404
