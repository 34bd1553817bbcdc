"""Opening and settling a turn (conversations/pipeline/turn.py `turn_begin` without retrieval, then
`turn_settle`): CPU of the calling thread, wall time and SQL statements per call, for a 60-token
answer with its trace, on a plan without a message limit. Thread CPU hardly depends on what else
runs on the machine, so this figure is usable on a busy box, unlike the streaming one.

The first 10 turns are a warm-up; the statements are counted on the last of them, so that the
timed turns run without the debug cursor that counting needs.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from decimal import Decimal
from typing import Any

TITLE = "Opening and settling a turn: thread CPU, wall time and statements per call"
WARMUP = 10


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.models import Plan, Subscription
    from bots.models import Bot, PromptVersion
    from conversations.models import Conversation
    from conversations.pipeline.turn import TurnOutcome, turn_begin, turn_settle
    from tenants.context import tenant_context
    from tenants.models import Tenant

    call_command("migrate", "--noinput", verbosity=0)
    Tenant.objects.filter(slug="bench-settle").delete()
    tenant = Tenant.objects.create(name="Bench settle", slug="bench-settle")
    plan, _ = Plan.objects.get_or_create(
        slug="bench-unlimited", defaults={"name": "Bench", "max_messages_per_month": None, "is_public": False}
    )
    calls = 100 if args.quick else 400
    answer = " ".join(f"word{i}" for i in range(60))
    cpu = wall = begin_cpu = 0.0
    statements = begin_statements = 0
    # As in production: DEBUG off, so no debug cursor logging each query (`make bench` runs with
    # the local default, DEBUG on).
    debug, settings.DEBUG = settings.DEBUG, False
    with tenant_context(tenant):
        Subscription.objects.create(tenant=tenant, plan=plan, status=Subscription.Status.ACTIVE)
        bot = Bot.objects.create(
            tenant=tenant, name="bench", model_chain=[{"provider": "openai", "model": "gpt-4o-mini", "params": {}}]
        )
        PromptVersion.objects.create(tenant=tenant, bot=bot, number=1, text="Answer briefly.", is_published=True)
        conversation = Conversation.objects.create(tenant=tenant, bot=bot, channel="widget", visitor_id="bench")
        for i in range(WARMUP + calls):
            counting = i == WARMUP - 1
            with CaptureQueriesContext(connection) if counting else contextlib.nullcontext() as opening:
                begin_before = time.thread_time()
                begun = turn_begin(bot=bot, conversation=conversation, text="How do refunds work?", retrieve=False)
                begin_after = time.thread_time()
            outcome = TurnOutcome(
                status="complete",
                content=answer,
                model="openai:gpt-4o-mini",
                tokens_in=146,
                tokens_out=60,
                cost=Decimal("0.000058"),
                latency={"first_token_ms": 210.5, "total_ms": 2100.2},
                prompt=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "How?"}],
                attempts=[{"provider": "openai", "model": "gpt-4o-mini", "outcome": "ok", "latency_ms": 2000.1}],
            )
            with CaptureQueriesContext(connection) if counting else contextlib.nullcontext() as settling:
                cpu_before, wall_before = time.thread_time(), time.perf_counter()
                turn_settle(tenant=tenant, setup=begun.setup, outcome=outcome)
                cpu_after, wall_after = time.thread_time(), time.perf_counter()
            if counting:
                begin_statements, statements = len(opening.captured_queries), len(settling.captured_queries)
            if i >= WARMUP:
                begin_cpu += begin_after - begin_before
                cpu += cpu_after - cpu_before
                wall += wall_after - wall_before
    settings.DEBUG = debug
    return [
        {
            "calls": calls,
            "thread_cpu_ms_per_begin": begin_cpu / calls * 1000,
            "statements_per_begin": begin_statements,
            "thread_cpu_ms_per_settle": cpu / calls * 1000,
            "wall_ms_per_settle": wall / calls * 1000,
            "statements_per_settle": statements,
        }
    ]
