"""Ingestion throughput of the whole pipeline vs the embedding model alone, on the same texts.

The pipeline row runs document_ingest in this process exactly as a worker does (storage read,
magic-byte sniffing, token-aware chunking, embedding in batches, chunk writes with the HNSW
index maintained, version publish). The raw rows embed the very chunks the pipeline produced,
with the same batch size, before and after it; their mean is the baseline.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command

from .common import percentile
from .corpus import real_paragraphs

TITLE = "Knowledge ingestion: pipeline vs raw embedding (chunks/s)"


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from billing.services import subscription_start_free
    from knowledge.embeddings import get_embedder
    from knowledge.ingestion import document_ingest
    from knowledge.models import Chunk
    from knowledge.services import document_create_from_text, knowledge_base_create
    from tenants.context import tenant_context
    from tenants.models import Tenant

    call_command("migrate", "--noinput", "-v", "0")
    paragraphs = real_paragraphs(120 if args.quick else 700)
    text = "\n\n".join(paragraphs)
    embedder = get_embedder()
    embedder.load()
    # Warm-up with full batches of this text: the first calls at a new batch shape allocate, and
    # the pipeline is timed first, so without this the raw runs after it get its warm-up for free.
    for start in range(0, 2 * settings.KNOWLEDGE_EMBED_BATCH_SIZE, settings.KNOWLEDGE_EMBED_BATCH_SIZE):
        embedder.embed_documents(paragraphs[start : start + settings.KNOWLEDGE_EMBED_BATCH_SIZE])

    Tenant.objects.filter(slug="bench-ingest").delete()
    tenant = Tenant.objects.create(slug="bench-ingest", name="Bench ingest")
    subscription_start_free(tenant=tenant)
    rows: list[dict[str, Any]] = []
    try:
        with tenant_context(tenant):
            tenant_plan_unlimited(tenant)
            kb = knowledge_base_create(tenant=tenant, name="bench")
            document = document_create_from_text(knowledge_base=kb, title="bench", text=text)
            # Timed from the stored document, like a worker that picks it up.
            started = time.perf_counter()
            document_ingest(document_id=document.pk)
            pipeline_s = time.perf_counter() - started
            document.refresh_from_db()
            assert document.status == "ready", document.error_message
            texts = list(Chunk.objects.filter(document=document).order_by("position").values_list("text", flat=True))
        raw_runs = []
        for _ in range(2):
            started = time.perf_counter()
            for start in range(0, len(texts), settings.KNOWLEDGE_EMBED_BATCH_SIZE):
                embedder.embed_documents(texts[start : start + settings.KNOWLEDGE_EMBED_BATCH_SIZE])
            raw_runs.append(time.perf_counter() - started)
        raw_s = sum(raw_runs) / len(raw_runs)
        tokens = sum(embedder.count_tokens(t) for t in texts)
        pipeline_rate = len(texts) / pipeline_s
        raw_rate = len(texts) / raw_s
        rows.append(
            {
                "measure": "raw embedding (baseline)",
                "chunks": len(texts),
                "avg tokens/chunk": round(tokens / len(texts), 1),
                "seconds": round(raw_s, 2),
                "chunks/s": round(raw_rate, 2),
                "ratio": 1.0,
                "peak RSS +MB": "",
            }
        )
        rows.append(
            {
                "measure": "whole pipeline (document_ingest)",
                "chunks": len(texts),
                "avg tokens/chunk": round(tokens / len(texts), 1),
                "seconds": round(pipeline_s, 2),
                "chunks/s": round(pipeline_rate, 2),
                "ratio": round(pipeline_rate / raw_rate, 3),
                "peak RSS +MB": "",
            }
        )
        queries = [" ".join(p.split()[:16]) for p in paragraphs[:60]]
        timings = []
        embedder.embed_query(queries[0])  # starts the query embedding process outside the measurement
        for query in queries:
            started = time.perf_counter()
            embedder.embed_query(query)
            timings.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "measure": "query embedding, 16 words (ms p50 / p99)",
                "chunks": len(queries),
                "avg tokens/chunk": round(sum(embedder.count_tokens(q) for q in queries) / len(queries), 1),
                "seconds": f"{percentile(timings, 50):.1f} / {percentile(timings, 99):.1f}",
                "chunks/s": round(1000 / percentile(timings, 50), 1),
                "ratio": "",
                "peak RSS +MB": "",
            }
        )
        # 300 pages even with --quick: the bound is about a 300-page PDF. The first PDFs
        # also pay for allocator/torch warm-up (RSS climbs then stays flat), so the 300-page PDF
        # runs twice; `ratio` is its peak RSS over the 30-page PDF's (absolute peaks, not growth).
        memory = [pdf_memory_row(tenant, kb, paragraphs, pages, seed) for seed, pages in enumerate((30, 300, 300))]
        for row in memory[1:]:
            row["ratio"] = round(row.pop("_peak") / memory[0]["_peak"], 2)
        memory[0].pop("_peak")
        memory[2]["measure"] += ", again"
        rows.extend(memory)
    finally:
        Tenant.objects.filter(slug="bench-ingest").delete()
    return rows


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> float:
    """Start a fresh peak-RSS measurement; returns the baseline in MB.

    On Linux, VmHWM is reset to the current RSS (clear_refs 5), so each PDF's peak is its own,
    not an earlier stage's. Elsewhere ru_maxrss (the process's lifetime peak) is the fallback.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _proc_status_mb("VmRSS") or 0.0
    except OSError:
        return _rss_peak_mb()


def _peak_since_reset() -> float:
    return _proc_status_mb("VmHWM") or _rss_peak_mb()


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pdf_memory_row(tenant: Any, kb: Any, paragraphs: list[str], pages: int, seed: int = 0) -> dict[str, Any]:
    """Peak RSS growth while ingesting a `pages`-page PDF (model already loaded and warm).

    Pages are streamed and embedded in batches, so memory should not scale with pages. `seed`
    varies the text, so a repeat is embedded again rather than copied as a duplicate. The
    caller turns the absolute peak (`_peak`, MB) into the `ratio` column: memory, not time.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile

    from knowledge.ingestion import document_ingest
    from knowledge.services import document_create_from_upload
    from tenants.context import tenant_context
    from tests.knowledge.samples import pdf_bytes

    texts = [f"Page {i} ({seed}). " + paragraphs[(i + seed) % len(paragraphs)][:600] for i in range(pages)]
    with tenant_context(tenant):
        upload = SimpleUploadedFile(f"{pages}-pages.pdf", pdf_bytes(texts))
        document = document_create_from_upload(knowledge_base=kb, uploaded_file=upload)
        before = _reset_peak()
        started = time.perf_counter()
        document_ingest(document_id=document.pk)
        seconds = time.perf_counter() - started
        document.refresh_from_db()
    return {
        "measure": f"{pages}-page PDF through the pipeline",
        "chunks": document.chunk_count,
        "avg tokens/chunk": "",
        "seconds": round(seconds, 1),
        "chunks/s": round(document.chunk_count / seconds, 2),
        "ratio": "",
        "peak RSS +MB": round(_peak_since_reset() - before, 1),
        "_peak": _peak_since_reset(),
    }


def tenant_plan_unlimited(tenant: Any) -> None:
    """Benchmarks are not about quotas: lift the storage limit for the bench tenant's plan."""
    from billing.models import Plan, Subscription

    plan, _ = Plan.objects.get_or_create(
        slug="bench-unlimited",
        defaults={"name": "Bench", "max_documents": None, "max_storage_bytes": None, "price_monthly_cents": 0},
    )
    Subscription.objects.unscoped().filter(tenant=tenant).update(plan=plan)
