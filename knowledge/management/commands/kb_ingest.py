"""`manage.py kb_ingest --tenant SLUG --kb NAME PATH_OR_URL...`: add documents, wait, print JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot_saas.errors import AppError
from knowledge import services
from knowledge.ingestion import IngestRetry, document_ingest
from knowledge.models import Document, KnowledgeBase
from tenants.context import tenant_context

from ._common import kb_by_name, tenant_by_slug


class Command(BaseCommand):
    help = "Add files or URLs to a knowledge base, wait for ingestion, and print each document's final status as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--kb", required=True, help="knowledge base name")
        parser.add_argument("sources", nargs="+", metavar="PATH_OR_URL")
        parser.add_argument("--sitemap", action="store_true", help="treat URLs as sitemaps")
        parser.add_argument("--create", action="store_true", help="create the knowledge base if it does not exist")
        parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the workers")
        parser.add_argument("--inline", action="store_true", help="ingest in this process instead of the workers")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(opts["tenant"])
        with tenant_context(tenant):
            if opts["create"] and not KnowledgeBase.objects.filter(name=opts["kb"]).exists():
                services.knowledge_base_create(tenant=tenant, name=opts["kb"])
            kb = kb_by_name(opts["kb"])
            ids = [self._add(kb, source, sitemap=opts["sitemap"]) for source in opts["sources"]]
            if opts["inline"]:
                for document_id in ids:
                    self._ingest_inline(document_id)
            documents = self._wait(ids, opts["timeout"])
        report = [
            {
                "id": d.pk,
                "title": d.title,
                "source": d.source,
                "status": d.status,
                "chunk_count": d.chunk_count,
                "error_code": d.error_code or None,
                "error_message": d.error_message or None,
            }
            for d in documents
        ]
        self.stdout.write(json.dumps(report, indent=2))
        if any(d.status != Document.Status.READY for d in documents):
            raise CommandError("Some documents did not end ready; see the JSON above.", returncode=1)

    def _add(self, kb: Any, source: str, *, sitemap: bool) -> int:
        try:
            if source.startswith(("http://", "https://")):
                return services.document_create_from_url(knowledge_base=kb, url=source, is_sitemap=sitemap).pk
            path = Path(source)
            if not path.is_file():
                raise CommandError(f"{source} is neither a file nor an http(s) URL.")
            with path.open("rb") as handle:
                upload = File(handle, name=path.name)
                upload.size = path.stat().st_size
                return services.document_create_from_upload(knowledge_base=kb, uploaded_file=upload).pk
        except AppError as exc:
            raise CommandError(f"{source}: {exc.message}") from None

    @staticmethod
    def _ingest_inline(document_id: int) -> None:
        while True:
            try:
                document_ingest(document_id=document_id)
                return
            except IngestRetry:
                time.sleep(1)

    @staticmethod
    def _wait(ids: list[int], timeout: float) -> list[Document]:
        deadline = time.monotonic() + timeout
        while True:
            documents = list(Document.objects.filter(pk__in=ids).order_by("pk"))
            if all(d.is_final for d in documents) or time.monotonic() > deadline:
                return documents
            time.sleep(0.5)
