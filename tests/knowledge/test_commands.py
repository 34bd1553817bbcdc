"""Operators' CLI (kb_ingest, kb_search) and the demo knowledge bootstrap."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Document, KnowledgeBase
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tests.factories import TenantFactory


def test_kb_ingest_adds_files_and_prints_each_final_status_as_json(world, kb_a, media, tmp_path, capsys):
    good = tmp_path / "guide.md"
    good.write_text("# Guide\n\nPress the blue button to start the engine.\n")
    call_command("kb_ingest", "--tenant", "acme", "--kb", "Handbook", "--inline", str(good))
    report = json.loads(capsys.readouterr().out)
    assert [(r["title"], r["status"], r["error_code"]) for r in report] == [("guide.md", "ready", None)]
    assert report[0]["chunk_count"] == 1


def test_kb_ingest_reports_failures_and_exits_non_zero(world, kb_a, media, tmp_path, capsys):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(CommandError):
        call_command("kb_ingest", "--tenant", "acme", "--kb", "Handbook", "--inline", str(empty))
    report = json.loads(capsys.readouterr().out)
    assert report[0]["status"] == "failed" and report[0]["error_code"] == "empty_file"


def test_kb_ingest_refuses_unknown_tenants_knowledge_bases_and_paths(world, kb_a, tmp_path):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("kb_ingest", "--tenant", "nope", "--kb", "Handbook", "x")
    with pytest.raises(CommandError, match="No knowledge base"):
        call_command("kb_ingest", "--tenant", "bravo", "--kb", "Handbook", "x")
    with pytest.raises(CommandError, match="neither a file"):
        call_command("kb_ingest", "--tenant", "acme", "--kb", "Handbook", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="not a public"):
        call_command("kb_ingest", "--tenant", "acme", "--kb", "Handbook", "http://10.0.0.1/")


def test_kb_search_prints_passages_as_json(world, kb_a, media, tmp_path, capsys):
    doc = tmp_path / "hours.txt"
    doc.write_text("The shop opens at nine and closes at five.")
    call_command("kb_ingest", "--tenant", "acme", "--kb", "Handbook", "--inline", str(doc))
    capsys.readouterr()
    call_command("kb_search", "--tenant", "acme", "--kb", "Handbook", "when does the shop open?", "-k", "3")
    output = json.loads(capsys.readouterr().out)
    assert output["results"][0]["document_title"] == "hours.txt"
    assert "nine" in output["results"][0]["text"] and output["results"][0]["score"] > 0


def test_bootstrap_demo_knowledge_queues_the_help_centre_once_and_requeues_only_changed_files(
    db, settings, tmp_path, media, django_capture_on_commit_callbacks, capsys
):
    settings.BASE_DIR = tmp_path
    helpcentre = tmp_path / "demo" / "helpcentre"
    helpcentre.mkdir(parents=True)
    (helpcentre / "shipping.md").write_text("# Shipping\n\nTwo to four working days.\n")
    (helpcentre / "contact.html").write_text("<html><body><p>Call us.</p></body></html>")
    (helpcentre / "notes.txt").write_text("Not part of the help centre: only .md, .pdf and .html are.")
    demo = TenantFactory(slug="demo", name="Demo")

    def run() -> str:
        with django_capture_on_commit_callbacks(execute=False):
            call_command("bootstrap_demo_knowledge")
        return capsys.readouterr().err

    assert "2 document(s) queued" in run()
    # Still queued (no worker ran): queued again, since the embedded Redis keeps no messages.
    assert "2 document(s) queued" in run()
    Document.objects.unscoped().filter(tenant=demo).update(status="ready")
    assert "0 document(s) queued" in run()
    (helpcentre / "shipping.md").write_text("# Shipping\n\nOne to three working days.\n")
    assert "1 document(s) queued" in run()
    with tenant_context(demo):
        kb = KnowledgeBase.objects.get(name="Acme help centre")
        titles = sorted(Document.objects.filter(knowledge_base=kb).values_list("title", flat=True))
    assert titles == ["contact.html", "shipping.md"]


def test_bootstrap_demo_knowledge_replaces_the_readme_of_earlier_runs_with_the_help_centre(
    db, settings, tmp_path, media, django_capture_on_commit_callbacks, capsys
):
    settings.BASE_DIR = tmp_path
    helpcentre = tmp_path / "demo" / "helpcentre"
    helpcentre.mkdir(parents=True)
    (helpcentre / "returns.md").write_text("# Returns\n\nThirty days.\n")
    demo = TenantFactory(slug="demo", name="Demo")
    with tenant_context(demo), django_capture_on_commit_callbacks(execute=False):
        legacy = knowledge_base_create(tenant=demo, name="Demo docs")
        document_create_from_text(knowledge_base=legacy, title="README.md", text="# Product\n\nBenchmarks.\n")
    with django_capture_on_commit_callbacks(execute=False):
        call_command("bootstrap_demo_knowledge")
    assert "1 document(s) queued for ingestion, 1 removed" in capsys.readouterr().err
    with tenant_context(demo):
        kb = KnowledgeBase.objects.get()
        assert kb.pk == legacy.pk and kb.name == "Acme help centre"
        assert list(Document.objects.values_list("title", flat=True)) == ["returns.md"]
