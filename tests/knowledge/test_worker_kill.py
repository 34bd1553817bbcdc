"""A real worker is SIGKILLed in the middle of a document; another one finishes it cleanly."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count

from knowledge.models import Chunk, Document
from knowledge.services import document_create_from_text, documents_watchdog, knowledge_base_create
from tenants.context import tenant_context
from tests.support.servers import celery_worker

pytestmark = pytest.mark.integration


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def long_text(paragraphs: int) -> str:
    sentence = "Every paragraph of this manual explains a different setting of the widget in detail. "
    return "\n\n".join(f"Section {i}. " + sentence * 12 for i in range(paragraphs))


@pytest.fixture
def other_workers_paused():
    """Workers started by other tests (the session's live_worker) stop consuming for this test,
    so the document is handled only by the worker it kills and the one that rescues it."""
    from chatbot_saas.celery import app

    replies = app.control.cancel_consumer("celery", reply=True, timeout=2) or []
    paused = [name for reply in replies for name in reply]
    yield
    if paused:
        app.control.add_consumer("celery", destination=paused, reply=True, timeout=2)


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

        _wait_for(first_run_wrote_chunks, 240, f"the first run to write chunks\n{victim.log()[-2000:]}")
        for pid in [*_descendants(victim.process.pid), victim.process.pid]:
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

        _wait_for(finished, 300, f"the second worker to finish\n{rescuer.log()[-2000:]}")

    document.refresh_from_db()
    assert document.status == Document.Status.READY, document.error_message
    assert document.attempts == 2
    chunks = Chunk.objects.unscoped().filter(document_id=document.pk)
    assert chunks.count() == document.chunk_count > 0
    assert set(chunks.values_list("document_version", flat=True)) == {document.active_version}
    duplicates = chunks.values("position").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()
    assert sorted(chunks.values_list("position", flat=True)) == list(range(document.chunk_count))
