"""Retrieval quality on a labelled set: does the right document come first, and does the pipeline
keep nothing when the knowledge has no answer?

The set (benchmarks/data/quality.json) was written for this project: questions phrased unlike the
text they need, each with its expected document, and questions the knowledge cannot answer. Two
corpora: Acme Gadgets' demo help centre (demo/helpcentre/) and 42 pages of SQLite's documentation
(public domain, Debian package sqlite3-doc; `make bench` installs it). Both are ingested through
the real pipeline into a throw-away tenant `bench-quality`, kept between runs (unchanged files
are not ingested again).

Each question is searched once (chunk_search, 3k candidates); the variants re-rank and gate those
same candidates (knowledge.answer_retrieval.decide), so they differ only in what they test:
- full: re-ranking and gating (what the answer pipeline uses);
- no gating: the top k after re-ranking, never refusing;
- no re-ranking: the gate over the fused order.
Questions alternate between a calibration half (even positions per corpus), on which the gate's
thresholds and the re-ranker's weights were chosen, and a held-out half (odd positions).

Metrics (k = 5), over the passages the variant keeps (a refusal keeps none):
- hit@1 / hit@5 / MRR: the expected document is the first kept / among the kept / 1 over the
  rank of its first kept passage (answerable questions; a refusal scores 0);
- refused (unanswerable): share of unanswerable questions where nothing was kept (goal >= 0.90);
- false refusals: share of answerable questions where nothing was kept (goal <= 0.05);
- citation accuracy: share of the kept passages of answerable questions from the expected document;
- decide p50 ms: re-ranking + gating per question, without the search (budget ~2 ms);
- search p50 ms k=5 / k=60: chunk_search alone (the query embedded beforehand) for the
  plain top 5 and for the candidate pool: what the larger pool costs.

`--calibrate` prints a grid search of the gate's thresholds on the calibration half instead.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command

from benchmarks.common import percentile
from knowledge.answer_retrieval import CANDIDATES as ANSWER_CANDIDATES

TITLE = "Retrieval quality (goals: hit@5 >= 0.92, MRR >= 0.80, unanswerable refused >= 0.90, false refusals <= 0.05)"
DATA = Path(__file__).resolve().parent / "data" / "quality.json"
K = 5
CANDIDATES = int(__import__("os").environ.get("QUALITY_CANDIDATES", "0")) or ANSWER_CANDIDATES
SLUG = "bench-quality"
VARIANTS = {"full": (True, True), "no gating": (True, False), "no re-ranking": (False, True)}


@dataclass(frozen=True)
class Case:
    corpus: str
    question: str
    doc: str | None
    split: str  # calibrate / holdout
    candidates: tuple = ()
    also: tuple[str, ...] = ()  # other documents that answer it as well
    search_ms: tuple[float, float] = (0.0, 0.0)  # chunk_search with k=K, with k=CANDIDATES


def load_set(path: Path = DATA) -> dict[str, Any]:
    return json.loads(path.read_text())


def corpus_files(corpus: dict[str, Any]) -> list[Path]:
    root = Path(corpus["root"])
    if not root.is_absolute():
        root = Path(settings.BASE_DIR) / root
    if corpus["files"] == "*":
        return sorted(p for p in root.iterdir() if p.is_file() and p.suffix in {".md", ".pdf", ".html"})
    return [root / name for name in corpus["files"]]


def cases_of(data: dict[str, Any]) -> list[Case]:
    return [
        Case(
            corpus,
            item["q"],
            item["doc"],
            "calibrate" if index % 2 == 0 else "holdout",
            also=tuple(item.get("also", ())),
        )
        for corpus, items in data["questions"].items()
        for index, item in enumerate(items)
    ]


def _tenant() -> Any:
    from billing.models import Plan, Subscription
    from tenants.models import Tenant

    call_command("migrate", "--noinput", verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench quality"})
    plan, _ = Plan.objects.get_or_create(
        slug="bench-quality-unlimited",
        defaults={"name": "Bench quality", "max_documents": None, "max_storage_bytes": None},
    )
    Subscription.objects.unscoped().update_or_create(tenant=tenant, defaults={"plan": plan, "status": "active"})
    return tenant


def ensure_corpus(tenant: Any, name: str, files: list[Path]) -> Any:
    """The corpus' knowledge base with every file ingested (unchanged files are skipped)."""
    from knowledge import services
    from knowledge.ingestion import document_ingest
    from knowledge.models import Document, KnowledgeBase

    kb = KnowledgeBase.objects.filter(name=name).first() or services.knowledge_base_create(tenant=tenant, name=name)
    titles = {path.name for path in files}
    for stale in Document.objects.filter(knowledge_base=kb).exclude(title__in=titles):
        services.document_delete(document=stale)
    for path in files:
        data = path.read_bytes()
        document = Document.objects.filter(knowledge_base=kb, title=path.name).first()
        if document is None:
            document = services.document_create_from_upload(
                knowledge_base=kb, uploaded_file=ContentFile(data, name=path.name)
            )
        else:
            services.document_replace_content(document=document, data=data)
        document.refresh_from_db()
        if document.status != Document.Status.READY:
            # In this process, as a worker would; the queued task finds it ready and does nothing.
            document_ingest(document_id=document.pk)
    failed = list(
        Document.objects.filter(knowledge_base=kb).exclude(status=Document.Status.READY).values_list("title", flat=True)
    )
    if failed:
        raise SystemExit(f"quality: documents failed to ingest: {failed}")
    return kb


def collect(args: argparse.Namespace) -> tuple[list[Case], str]:
    from knowledge.embeddings import get_embedder
    from knowledge.selectors import chunk_search
    from tenants.context import tenant_context

    data = load_set()
    tenant = _tenant()
    cases = cases_of(data)
    out: list[Case] = []
    with tenant_context(tenant):
        for corpus_name, corpus in data["corpora"].items():
            files = corpus_files(corpus)
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                package = corpus.get("debian_package", "?")
                raise SystemExit(
                    f"quality: {len(missing)} corpus files missing (apt-get install {package}): {missing[:3]}"
                )
            started = time.perf_counter()
            kb = ensure_corpus(tenant, f"quality-{corpus_name}", files)
            print(f"  {corpus_name}: {len(files)} documents ready in {time.perf_counter() - started:.1f} s", flush=True)
            for case in cases:
                if case.corpus != corpus_name:
                    continue
                # The query is embedded once: the timings compare the search alone.
                vector = get_embedder(kb.embedding_model).embed_query(case.question)
                search = {
                    "tenant": tenant,
                    "knowledge_base_ids": [kb.pk],
                    "query": case.question,
                    "query_vector": vector,
                }
                started = time.perf_counter()
                chunk_search(**search, k=K)
                plain_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                found = chunk_search(**search, k=CANDIDATES)
                pool_ms = (time.perf_counter() - started) * 1000
                out.append(replace(case, candidates=tuple(found), search_ms=(plain_ms, pool_ms)))
    return out, settings.KNOWLEDGE_DEFAULT_EMBEDDING_MODEL


def score(cases: list[Case], *, model: str, rerank_on: bool, gate_on: bool, **overrides: Any) -> dict[str, Any]:
    from knowledge.answer_retrieval import decide

    hit1 = hit5 = rr = 0.0
    answerable = unanswerable = refused_ok = refused_bad = 0
    cited = cited_ok = 0
    timings: list[float] = []
    for case in cases:
        started = time.perf_counter()
        decision = decide(
            case.candidates,
            query=case.question,
            k=K,
            embedding_model=model,
            rerank_enabled=rerank_on,
            gate=gate_on,
            **overrides,
        )
        timings.append((time.perf_counter() - started) * 1000)
        titles = [p.document_title for p in decision.kept]
        if case.doc is None:
            unanswerable += 1
            refused_ok += not titles
            continue
        answerable += 1
        refused_bad += not titles
        accepted = {case.doc, *case.also}
        rank = next((i for i, title in enumerate(titles, start=1) if title in accepted), None)
        if rank is not None:
            hit1 += rank == 1
            hit5 += rank <= K
            rr += 1 / rank
        cited += len(titles)
        cited_ok += sum(title in accepted for title in titles)
    return {
        "answerable": answerable,
        "hit@1": hit1 / max(answerable, 1),
        "hit@5": hit5 / max(answerable, 1),
        "MRR": rr / max(answerable, 1),
        "unanswerable": unanswerable,
        "refused (unanswerable)": refused_ok / max(unanswerable, 1),
        "false refusals": refused_bad / max(answerable, 1),
        "citation accuracy": cited_ok / max(cited, 1),
        "decide p50 ms": percentile(timings, 50),
        "search p50 ms k=5": percentile([c.search_ms[0] for c in cases], 50),
        f"search p50 ms k={CANDIDATES}": percentile([c.search_ms[1] for c in cases], 50),
    }


def run(args: argparse.Namespace) -> list[dict]:
    cases, model = collect(args)
    if getattr(args, "calibrate", False):
        return calibrate([c for c in cases if c.split == "calibrate"], model=model)
    rows = []
    corpora = ["both", *sorted({c.corpus for c in cases})]
    groups = [("both", "all"), *((corpus, half) for corpus in corpora for half in ("calibrate", "holdout"))]
    for corpus, split in groups:
        subset = [c for c in cases if (corpus == "both" or c.corpus == corpus) and (split == "all" or c.split == split)]
        for variant, (rerank_on, gate_on) in VARIANTS.items():
            rows.append(
                {
                    "corpus": corpus,
                    "half": split,
                    "variant": variant,
                    **score(subset, model=model, rerank_on=rerank_on, gate_on=gate_on),
                }
            )
    return rows


def calibrate(cases: list[Case], *, model: str) -> list[dict]:
    """Grid search of the gate on the calibration half: best rows by a goal-weighted score."""
    from knowledge.relevance import GateThresholds

    rows = []
    strongs = [round(0.30 + 0.01 * step, 2) for step in range(11)]
    grid = product(strongs, (0.25, 0.30, 0.35), (3, 10), (0.10, 0.15, 0.20))
    for strong, weak, text_rank_max, max_gap in grid:
        if weak > strong:
            continue
        limits = GateThresholds(strong, weak, text_rank_max, max_gap, max_fused_rank=CANDIDATES)
        result = score(cases, model=model, rerank_on=True, gate_on=True, thresholds=limits)
        objective = (
            result["refused (unanswerable)"]
            - 2 * result["false refusals"]
            + result["MRR"]
            + 0.5 * result["citation accuracy"]
        )
        rows.append(
            {
                "strong": strong,
                "weak": weak,
                "text_rank_max": text_rank_max,
                "max_gap": max_gap,
                "objective": objective,
                **result,
            }
        )
    rows.sort(key=lambda r: -r["objective"])
    return rows[:15]
