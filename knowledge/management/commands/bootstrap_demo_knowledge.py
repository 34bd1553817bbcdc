"""Create (once) the demo tenant's "Acme help centre" knowledge base and queue the help centre.

The demo host page plays the website of Acme Gadgets, a made-up shop, so its bot answers from
that shop's help centre in `demo/helpcentre/`: Markdown articles, one PDF and one HTML page,
written for the demo. (It used to ingest this product's README and docs/, and visitors got
benchmark tables quoted back at them.)

Run by `bootstrap_demo` on every `make run`: files whose content hash is unchanged are
skipped, so the second run queues nothing and loads no model; documents no longer in the help
centre are deleted. The worker that `make run` starts next does the embedding. The format of
each file is decided by the ingestion pipeline from its bytes, as for any upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction

from knowledge import services
from knowledge.models import Document, KnowledgeBase
from tenants.context import tenant_context
from tenants.models import Tenant

DEMO_KB_NAME = "Acme help centre"
# The demo knowledge base's earlier name: an existing one is renamed, so bots keep their link.
LEGACY_DEMO_KB_NAME = "Demo docs"
HELP_CENTRE_DIR = Path("demo") / "helpcentre"
HELP_CENTRE_SUFFIXES = {".md", ".pdf", ".html"}


def demo_sources() -> list[Path]:
    """The help centre's files, by name (each file's name is its document's title)."""
    folder = Path(settings.BASE_DIR) / HELP_CENTRE_DIR
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix in HELP_CENTRE_SUFFIXES)


def _demo_knowledge_base(tenant: Tenant) -> KnowledgeBase:
    kb = KnowledgeBase.objects.filter(name=DEMO_KB_NAME).first()
    if kb is not None:
        return kb
    legacy = KnowledgeBase.objects.filter(name=LEGACY_DEMO_KB_NAME).first()
    description = "Acme Gadgets' help centre: shipping, returns, warranty, troubleshooting, pricing, account."
    if legacy is not None:
        return services.knowledge_base_rename(knowledge_base=legacy, name=DEMO_KB_NAME, description=description)
    return services.knowledge_base_create(tenant=tenant, name=DEMO_KB_NAME, description=description)


class Command(BaseCommand):
    help = "Ingest the demo company's help centre (demo/helpcentre/) into the demo tenant's knowledge base."

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=settings.DEMO_TENANT_SLUG).first()
        if tenant is None:
            self.stderr.write("No demo tenant; run bootstrap_demo first.")
            return
        sources = demo_sources()
        titles = {path.name for path in sources}
        with tenant_context(tenant):
            kb = _demo_knowledge_base(tenant)
            # Stale documents first (the README and docs of earlier runs): they give their quota back.
            removed = 0
            for document in Document.objects.filter(knowledge_base=kb).exclude(title__in=titles):
                services.document_delete(document=document)
                removed += 1
            queued = 0
            for path in sources:
                data = path.read_bytes()
                document = Document.objects.filter(knowledge_base=kb, title=path.name).first()
                if document is None:
                    services.document_create_from_upload(
                        knowledge_base=kb, uploaded_file=ContentFile(data, name=path.name)
                    )
                    queued += 1
                elif services.document_replace_content(document=document, data=data):
                    queued += 1
                elif services.document_requeue_unfinished(document=document):
                    queued += 1  # left unfinished by an earlier run whose queue is gone
        # stderr: bootstrap_demo's stdout (the credentials line) stays identical on every run.
        self.stderr.write(
            f"Demo knowledge base '{DEMO_KB_NAME}': {queued} document(s) queued for ingestion, {removed} removed."
        )
