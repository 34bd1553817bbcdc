"""A whole workspace as one zip: what an owner needs to leave, or to keep a copy.

Here, above every app, because it reads all of them. Contents:
- `workspace.json`: the workspace's settings, plan, members (email and role) and knowledge bases;
- `bots.json`: every bot's settings, prompt versions, publications, handoff settings, corrections
  and evaluation cases;
- `documents.json` with each document's metadata, and `documents/<id>-<name>` its original file
  (uploads and pasted text; web pages are re-fetched, so only their URL is listed);
- `conversations.jsonl`: one conversation per line with its messages;
- `leads.json`.
Secrets are left out: provider keys, API key hashes, the bots' identity secrets. Members'
accounts are theirs, not the workspace's: only their email and role are listed.
Tenant scope required; one query per model (documents' files are read one by one, streamed).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import IO, Any

from django.core import serializers
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model
from django.utils import timezone
from django.utils.text import get_valid_filename

from billing.models import Subscription
from bots.models import Bot, Correction, CorrectionVersion, EvalCase, HandoffSettings, PromptPublication, PromptVersion
from conversations.models import Conversation, Lead, Message
from knowledge.models import Document, KnowledgeBase
from tenants.context import get_current_tenant
from tenants.models import Membership

# Never exported: credentials that would let the reader act as the workspace.
SECRET_FIELDS = {"identity_secret", "key_hash", "encrypted_key", "api_key"}
BATCH = 500


def _rows(objects: Iterable[Model]) -> list[dict[str, Any]]:
    rows = []
    for item in json.loads(serializers.serialize("json", objects)):
        fields = {k: v for k, v in item["fields"].items() if k not in SECRET_FIELDS and k != "tenant"}
        rows.append({"id": item["pk"], **fields})
    return rows


def _dump(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)


def _workspace() -> dict[str, Any]:
    tenant = get_current_tenant()
    subscription = Subscription.objects.select_related("plan").first()
    return {
        "name": tenant.name,
        "slug": tenant.slug,
        "created": tenant.created,
        "conversation_retention_days": tenant.conversation_retention_days,
        "plan": subscription.plan.name if subscription else None,
        "members": [
            {"email": m.user.email, "role": m.role, "is_agent": m.is_agent, "joined": m.created}
            for m in Membership.objects.select_related("user").order_by("created")
        ],
        "knowledge_bases": _rows(KnowledgeBase.objects.order_by("pk")),
        "exported": timezone.now(),
    }


def _bots() -> dict[str, Any]:
    return {
        "bots": _rows(Bot.objects.order_by("pk")),
        "prompt_versions": _rows(PromptVersion.objects.order_by("bot_id", "number")),
        "prompt_publications": _rows(PromptPublication.objects.order_by("pk")),
        "handoff_settings": _rows(HandoffSettings.objects.order_by("pk")),
        "corrections": _rows(Correction.objects.order_by("pk")),
        "correction_versions": _rows(CorrectionVersion.objects.order_by("pk")),
        "evaluation_cases": _rows(EvalCase.objects.order_by("pk")),
    }


def _conversation_lines() -> Iterable[str]:
    """One JSON line per conversation, read in batches of BATCH conversations (two queries each)."""
    last = 0
    while True:
        batch = _rows(Conversation.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            return
        last = batch[-1]["id"]
        messages: dict[int, list[dict[str, Any]]] = {}
        ids = [c["id"] for c in batch]
        for message in _rows(Message.objects.filter(conversation_id__in=ids).order_by("conversation_id", "created")):
            messages.setdefault(message["conversation"], []).append(message)
        for conversation in batch:
            conversation["messages"] = messages.get(conversation["id"], [])
            yield json.dumps(conversation, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def _document_name(document: Document) -> str:
    name = get_valid_filename(PurePosixPath(document.original_filename or document.title or "document").name)
    return f"documents/{document.pk}-{name or 'document'}"[:200]


def tenant_export_write(*, out: IO[bytes]) -> dict[str, int]:
    """Write the current workspace's zip to `out` (a seekable binary file). Returns counts.

    A document whose stored file is missing is listed with `"file": null` instead of failing the
    whole export."""
    counts = {"bots": 0, "documents": 0, "files": 0, "conversations": 0}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("workspace.json", _dump(_workspace()))
        bots = _bots()
        counts["bots"] = len(bots["bots"])
        archive.writestr("bots.json", _dump(bots))
        documents = []
        stored = list(Document.objects.order_by("pk"))
        for document, row in zip(stored, _rows(stored), strict=True):
            row["file"] = None
            if document.stored_file and default_storage.exists(document.stored_file):
                row["file"] = _document_name(document)
                with default_storage.open(document.stored_file, "rb") as src, archive.open(row["file"], "w") as dst:
                    shutil.copyfileobj(src, dst)
                counts["files"] += 1
            documents.append(row)
        counts["documents"] = len(documents)
        archive.writestr("documents.json", _dump(documents))
        with archive.open("conversations.jsonl", "w") as dst:
            for line in _conversation_lines():
                dst.write(line.encode())
                counts["conversations"] += 1
        archive.writestr("leads.json", _dump(_rows(Lead.objects.order_by("pk"))))
    return counts
