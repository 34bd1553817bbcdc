"""`manage.py kb_search --tenant SLUG --kb NAME "query" -k 5`: print the passages as JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from knowledge.selectors import chunk_search
from tenants.context import tenant_context

from ._common import kb_by_name, tenant_by_slug


class Command(BaseCommand):
    help = "Search a knowledge base the way bots do and print the passages as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--kb", required=True, action="append", help="knowledge base name (repeatable)")
        parser.add_argument("query")
        parser.add_argument("-k", type=int, default=5)
        parser.add_argument("--min-score", type=float, default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(opts["tenant"])
        with tenant_context(tenant):
            kb_ids = [kb_by_name(name).pk for name in opts["kb"]]
            started = time.perf_counter()
            hits = chunk_search(
                tenant=tenant, knowledge_base_ids=kb_ids, query=opts["query"], k=opts["k"], min_score=opts["min_score"]
            )
            elapsed_ms = (time.perf_counter() - started) * 1000
        self.stdout.write(
            json.dumps(
                {"query": opts["query"], "elapsed_ms": round(elapsed_ms, 2), "results": [asdict(h) for h in hits]},
                indent=2,
            )
        )
