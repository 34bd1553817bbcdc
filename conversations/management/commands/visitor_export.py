"""`manage.py visitor_export --tenant SLUG --visitor ID [--out FILE]`: one visitor's data as JSON.

For operators answering a data access request. ID is the widget's visitor id or the signed
identity (external user id). Writes to stdout unless --out is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from conversations.privacy_selectors import visitor_export
from conversations.privacy_views import NOTHING_FOUND
from tenants.context import tenant_context
from tenants.selectors import tenant_by_slug


class Command(BaseCommand):
    help = "Export everything stored about one visitor of a workspace as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="workspace slug")
        parser.add_argument("--visitor", required=True, help="visitor id or signed identity")
        parser.add_argument("--out", help="write the JSON to this file instead of stdout")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        with tenant_context(tenant):
            data = visitor_export(visitor=opts["visitor"])
        if data is None:
            raise CommandError(NOTHING_FOUND)
        body = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
        if opts["out"]:
            Path(opts["out"]).write_text(body + "\n", encoding="utf-8")
            self.stderr.write(f"Wrote {len(data['conversations'])} conversations to {opts['out']}.")
        else:
            self.stdout.write(body)
