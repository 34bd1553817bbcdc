"""A real worker is SIGKILLed in the middle of a document; another one finishes it cleanly."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.db.models import Count

from knowledge.models import Chunk, Document
from knowledge.services import document_create_from_text, documents_watchdog, knowledge_base_create
from tenants.context import tenant_context
from tests.knowledge.live import descendants, wait_for
from tests.support.servers import celery_worker

pytestmark = pytest.mark.integration


def long_text(paragraphs: int) -> str:
    sentence = "Every paragraph of this manual explains a different setting of the widget in detail. "
    return "\n\n".join(f"Section {i}. " + sentence * 12 for i in range(paragraphs))


def test_a_document_survives_its_worker_being_killed_and_ends_ready_without_duplicates(
    transactional_db, world, other_workers_paused
):
    with tenant_context(world.tenant_a):
        kb = knowledge_base_create(tenant=world.tenant_a, name="Manual")
    # Small batches, so chunks of the first run are written before the kill.
    with celery_worker("kill-victim", KNOWLEDGE_EMBED_BATCH_SIZE="4") as victim:
        with tenant_context(world.tenant_a):
            document = document_create_from_text(knowledge_base=kb, title="Manual", text=long_text(40))

        def first_run_wrote_chunks() -> bool:
            return Chunk.objects.unscoped().filter(document_id=document.pk).exists()

        wait_for(first_run_wrote_chunks, 240, f"the first run to write chunks\n{victim.log()[-2000:]}")
        for pid in [*descendants(victim.process.pid), victim.process.pid]:
            os.kill(pid, signal.SIGKILL)
        victim.process.wait(10)
    killed = Document.objects.unscoped().get(pk=document.pk)
    assert killed.status == Document.Status.EMBEDDING, "the worker was killed after the document finished"
    assert killed.active_version is None, "a half-written version must not be visible"

    with celery_worker("kill-rescuer") as rescuer:
        # The beat watchdog's job: the dead worker's document is re-queued.
        assert documents_watchdog(stuck_after=timedelta(0))["requeued"] == 1

        def finished() -> bool:
            return Document.objects.unscoped().get(pk=document.pk).is_final

        wait_for(finished, 300, f"the second worker to finish\n{rescuer.log()[-2000:]}")

    document.refresh_from_db()
    assert document.status == Document.Status.READY, document.error_message
    assert document.attempts == 2
    chunks = Chunk.objects.unscoped().filter(document_id=document.pk)
    assert chunks.count() == document.chunk_count > 0
    assert set(chunks.values_list("document_version", flat=True)) == {document.active_version}
    duplicates = chunks.values("position").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()
    assert sorted(chunks.values_list("position", flat=True)) == list(range(document.chunk_count))
