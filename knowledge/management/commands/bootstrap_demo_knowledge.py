"""Create (once) the demo tenant's "Demo docs" knowledge base and queue README.md and docs/*.md.

Run by `bootstrap_demo` on every `make run`: files whose content hash is unchanged are
skipped, so the second run queues nothing and loads no model. The worker that `make run`
starts next does the embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from knowledge import services
from knowledge.models import Document, KnowledgeBase
from tenants.context import tenant_context
from tenants.models import Tenant

DEMO_KB_NAME = "Demo docs"


def demo_sources() -> list[Path]:
    base = Path(settings.BASE_DIR)
    return [base / "README.md", *sorted((base / "docs").glob("*.md"))]


class Command(BaseCommand):
    help = "Ingest the product's README.md and docs/*.md into the demo tenant's 'Demo docs' knowledge base."

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=settings.DEMO_TENANT_SLUG).first()
        if tenant is None:
            self.stderr.write("No demo tenant; run bootstrap_demo first.")
            return
        base = Path(settings.BASE_DIR)
        with tenant_context(tenant):
            kb = KnowledgeBase.objects.filter(name=DEMO_KB_NAME).first()
            if kb is None:
                kb = services.knowledge_base_create(
                    tenant=tenant, name=DEMO_KB_NAME, description="This product's own README and docs."
                )
            queued = 0
            for path in demo_sources():
                if not path.is_file():
                    continue
                title = str(path.relative_to(base))
                text = path.read_text(encoding="utf-8")
                document = Document.objects.filter(knowledge_base=kb, title=title).first()
                if document is None:
                    services.document_create_from_text(knowledge_base=kb, title=title, text=text)
                    queued += 1
                elif services.document_replace_content(document=document, data=text.encode("utf-8")):
                    queued += 1
        # stderr: bootstrap_demo's stdout (the credentials line) stays identical on every run.
        self.stderr.write(f"Demo knowledge base '{DEMO_KB_NAME}': {queued} document(s) queued for ingestion.")
