from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", nargs="*", default=None, help=f"any of: {' '.join(s.value for s in ApiKey.Scope)}"
        )

    def handle(self, *args: object, **opts: object) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        with tenant_context(tenant):
            try:
                key, raw = api_key_create(tenant=tenant, name=str(opts["name"]), scopes=opts["scopes"])  # type: ignore[arg-type]
            except AppError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(json.dumps({"tenant": tenant.slug, "name": key.name, "scopes": key.scopes, "key": raw}))
