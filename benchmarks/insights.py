"""Insights at scale: a tenant with --messages N messages (default 1M) over 90 days, in a database
of its own (chatbot_bench_insights_<N>, built once and reused). Reports:
- the overview page's server time (Django's test client, 90 days, all bots): goal p95 <= 150 ms;
- the explorer's full-text search (a word per request): goal p95 <= 300 ms;
- a 100k-row CSV export's peak memory above the baseline (Python allocations and the process's
  RSS, sampled while streaming): goal flat, <= 100 MB;
- the rollup of one day (every tenant), and of the 90 days (the backfill).

Messages are bulk-loaded with COPY: visitor questions made of real prose words, answers, 8% "I don't
know", feedback on 10%, a first-token latency on each answer.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from .common import percentile
from .corpus import real_paragraphs

TITLE = "Insights: overview, explorer search, streamed export and rollups"
SLUG = "bench-insights"
DAYS = 90
MESSAGES_PER_CONVERSATION = 6
REQUESTS = 40
# citations, error_code, feedback_comment: Django's defaults are not the table's.
EXTRA = "\t[]\t\t"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def use_bench_database(messages: int) -> None:
    name = f"chatbot_bench_insights_{messages}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {name}")
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = name
    call_command("migrate", "--noinput", "-v", "0")


def _world() -> tuple[Any, Any, Any]:
    from django.contrib.auth import get_user_model

    from billing.services import subscription_start_free
    from bots.models import Bot
    from tenants.context import tenant_context
    from tenants.models import Membership, Role, Tenant

    tenant, created = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench insights"})
    if created:
        subscription_start_free(tenant=tenant)
    user, _ = get_user_model().objects.get_or_create(username="bench-insights-owner")
    Membership.objects.unscoped().get_or_create(tenant=tenant, user=user, defaults={"role": Role.OWNER})
    with tenant_context(tenant):
        bot = Bot.objects.filter(name="Support").first() or Bot.objects.create(tenant=tenant, name="Support")
    return tenant, user, bot


def _load(tenant: Any, bot: Any, total: int, seed: int = 17) -> float:
    """COPY `total` messages (and their conversations) spread over the last DAYS days."""
    from conversations.models import Conversation, Message

    conversations = total // MESSAGES_PER_CONVERSATION
    if Message.objects.unscoped().filter(tenant=tenant).count() >= conversations * MESSAGES_PER_CONVERSATION:
        return 0.0  # built by an earlier run
    started = time.perf_counter()
    Message.objects.unscoped().filter(tenant=tenant).delete()
    Conversation.objects.unscoped().filter(tenant=tenant).delete()
    rng = random.Random(seed)
    words = sorted({w.strip(".,;:()[]\"'").lower() for p in real_paragraphs(800) for w in p.split() if w.isalpha()})
    now = timezone.now()
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    batch = 20_000
    for first in range(0, conversations, batch):
        count = min(batch, conversations - first)
        starts = sorted(start + timedelta(seconds=rng.random() * span) for _ in range(count))
        made = Conversation.objects.unscoped().bulk_create(
            Conversation(
                tenant=tenant,
                bot=bot,
                channel=rng.choice(("widget", "widget", "api")),
                visitor_id=f"v{rng.randrange(conversations // 2 + 1)}",
                started=at,
                last_active=at + timedelta(minutes=3),
            )
            for at in starts
        )
        buffer = io.StringIO()
        for conversation in made:
            for turn in range(MESSAGES_PER_CONVERSATION // 2):
                created = conversation.started + timedelta(seconds=30 * turn)
                question = " ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) + "?"
                if rng.random() < 0.2:  # a few questions are asked again and again
                    question = f"how do i reset my password {rng.randrange(20)}?"
                stamp = created.isoformat()
                buffer.write(
                    f"{tenant.pk}\t{conversation.pk}\tuser\t{question}\tcomplete\t0\t0\t0\t\t{{}}\t\t{stamp}\t{stamp}{EXTRA}\n"
                )
                unanswered = rng.random() < 0.08
                feedback = rng.choice(("up", "up", "down")) if rng.random() < 0.1 else ""
                answer = "Sorry, I don't know." if unanswered else " ".join(rng.choice(words) for _ in range(30))
                model = "policy:no_passages" if unanswered else "openai:gpt-4o-mini"
                latency = f'{{"first_token_ms": {rng.randint(150, 1500)}}}'
                buffer.write(
                    f"{tenant.pk}\t{conversation.pk}\tassistant\t{answer}\tcomplete\t300\t80\t0.0001\t{model}"
                    f"\t{latency}\t{feedback}\t{stamp}\t{stamp}{EXTRA}\n"
                )
        buffer.seek(0)
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY conversations_message (tenant_id, conversation_id, role, content, status, tokens_in, "
                "tokens_out, cost, model, latency, feedback, created, updated, citations, error_code, feedback_comment) "
                "FROM STDIN"
            ) as copy:
                while chunk := buffer.read(1 << 20):
                    copy.write(chunk)
        print(f"  loaded {min(first + count, conversations) * MESSAGES_PER_CONVERSATION} messages", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conversations_message; ANALYZE conversations_conversation")
    return time.perf_counter() - started


def _timed_get(client: Client, url: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.get(url, params, HTTP_HOST="localhost")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url} {params} answered {response.status_code}")
    return elapsed


def _export_memory(tenant: Any, rows: int) -> dict[str, Any]:
    from conversations.insights.explorer import explorer_messages, export_csv
    from conversations.insights.forms import ExplorerFilter
    from tenants.context import tenant_context

    with tenant_context(tenant):
        form = ExplorerFilter({})
        assert form.is_valid()
        messages = explorer_messages(form=form)[:rows]
    baseline_rss = _rss_mb()
    peak_rss = baseline_rss
    tracemalloc.start()
    started = time.perf_counter()
    written = 0
    for n, line in enumerate(export_csv(messages)):
        written += len(line)
        if n % 2000 == 0:
            peak_rss = max(peak_rss, _rss_mb())
    _, peak_py = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": n,
        "bytes": written,
        "seconds": time.perf_counter() - started,
        "peak_python_mb": peak_py / 1e6,
        "rss_above_baseline_mb": peak_rss - baseline_rss,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from conversations.insights.rollups import rollup_day

    total = getattr(args, "messages", None) or (60_000 if args.quick else 1_000_000)
    use_bench_database(total)
    tenant, user, bot = _world()
    load_seconds = _load(tenant, bot, total)
    today = datetime.now(UTC).date()

    started = time.perf_counter()
    for offset in range(DAYS, -1, -1):
        rollup_day(day=today - timedelta(days=offset))
    backfill = time.perf_counter() - started
    one_day = []
    for _ in range(5):
        started = time.perf_counter()
        rollup_day(day=today - timedelta(days=1))
        one_day.append((time.perf_counter() - started) * 1000)

    client = Client()
    client.force_login(user)
    home = f"/t/{SLUG}/"
    explorer = f"/t/{SLUG}/conversations/"
    _timed_get(client, home, {"range": "90"})  # warm caches
    overview = [_timed_get(client, home, {"range": str(random.choice((7, 30, 90)))}) for _ in range(REQUESTS)]
    rng = random.Random(3)
    words = [w for w in {w.lower() for p in real_paragraphs(200) for w in p.split() if w.isalpha() and len(w) > 4}]
    words.sort()
    search = [_timed_get(client, explorer, {"q": rng.choice(words)}) for _ in range(REQUESTS)]
    filtered = [
        _timed_get(client, explorer, {"q": rng.choice(words), "feedback": "down"}) for _ in range(REQUESTS // 2)
    ]
    export = _export_memory(tenant, min(100_000, total))

    size = f"{total:,} messages"
    return [
        {
            "measure": "data load (COPY, once per size)",
            "size": size,
            "p50_ms": load_seconds * 1000,
            "p95_ms": "",
            "goal": "",
        },
        {
            "measure": "rollup of one day (all tenants)",
            "size": size,
            "p50_ms": percentile(one_day, 50),
            "p95_ms": percentile(one_day, 95),
            "goal": "",
        },
        {
            "measure": f"rollup backfill of {DAYS + 1} days",
            "size": size,
            "p50_ms": backfill * 1000,
            "p95_ms": "",
            "goal": "",
        },
        {
            "measure": "overview page (7/30/90 days)",
            "size": size,
            "p50_ms": percentile(overview, 50),
            "p95_ms": percentile(overview, 95),
            "goal": "p95 <= 150 ms",
        },
        {
            "measure": "explorer search, one word",
            "size": size,
            "p50_ms": percentile(search, 50),
            "p95_ms": percentile(search, 95),
            "goal": "p95 <= 300 ms",
        },
        {
            "measure": "explorer search + thumbs down",
            "size": size,
            "p50_ms": percentile(filtered, 50),
            "p95_ms": percentile(filtered, 95),
            "goal": "p95 <= 300 ms",
        },
        {
            "measure": f"CSV export of {export['rows']:,} rows ({export['bytes'] / 1e6:.0f} MB, {export['seconds']:.1f} s): peak MB above baseline, Python / RSS",
            "size": size,
            "p50_ms": round(export["peak_python_mb"], 1),
            "p95_ms": round(export["rss_above_baseline_mb"], 1),
            "goal": "<= 100 MB, flat",
        },
    ]
