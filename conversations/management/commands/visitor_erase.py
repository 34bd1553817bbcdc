"""`manage.py visitor_erase --tenant SLUG --visitor ID [--yes]`: erase one visitor.

Deletes the visitor's conversations, messages, traces, feedback, memory and leads, and their
Redis buffers (conversations.privacy_services.visitor_erase). Asks first unless --yes.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.privacy_services import visitor_erase
from conversations.privacy_views import NOTHING_FOUND
from tenants.context import tenant_context
from tenants.selectors import tenant_by_slug


class Command(BaseCommand):
    help = "Erase everything stored about one visitor of a workspace."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="workspace slug")
        parser.add_argument("--visitor", required=True, help="visitor id or signed identity")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        if not opts["yes"]:
            answer = input(f"Erase visitor {opts['visitor']!r} of {tenant.slug}? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Nothing was erased.")
        with tenant_context(tenant):
            result = visitor_erase(visitor=opts["visitor"])
        if result.empty:
            raise CommandError(NOTHING_FOUND)
        self.stdout.write(
            f"Erased {result.conversations} conversations, {result.messages} messages, {result.leads} leads "
            f"and {result.redis_keys} Redis keys."
        )
