"""The conversations explorer (the conversation list, filtered) and its streamed export.
The queries live in conversations/insights/explorer.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from tenants.decorators import require_role
from tenants.models import Role

from .insights.explorer import (
    EXPORT_FIELDS,
    explorer_conversations,
    explorer_messages,
    export_csv,
    export_jsonl,
    export_stream,
)
from .insights.forms import ExplorerFilter

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", export_csv),
    "jsonl": ("application/x-ndjson; charset=utf-8", export_jsonl),
}


def _with_old_links(request: HttpRequest) -> QueryDict:
    # ?show=all, the list's link before the explorer, means every channel.
    data = request.GET.copy()
    if data.get("show") == "all" and not data.get("channel"):
        data["channel"] = "all"
    return data


@require_role(Role.MEMBER)
def conversation_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The explorer: filters (validated in place: a bad one is a 400 with its error beside the
    field) and the latest conversations holding a selected message. Playground and evaluation
    conversations are hidden unless the channel filter asks for them."""
    form = ExplorerFilter(_with_old_links(request))
    valid = form.is_valid()
    context = {
        "form": form,
        "conversations": explorer_conversations(form=form) if valid else [],
        "query": request.GET.urlencode(),
        "export_fields": EXPORT_FIELDS,
    }
    return render(request, "conversations/conversation_list.html", context, status=200 if valid else 400)


@require_role(Role.MEMBER)
def conversation_export(request: HttpRequest, tenant_slug: str, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """The selected messages as CSV (a header row, alone when nothing matches) or JSON Lines,
    streamed from a server-side cursor. Members may export; the filters are the explorer's."""
    form = ExplorerFilter(_with_old_links(request))
    if not form.is_valid():
        context = {"form": form, "conversations": [], "query": request.GET.urlencode(), "export_fields": EXPORT_FIELDS}
        return render(request, "conversations/conversation_list.html", context, status=400)
    content_type, render_lines = EXPORT_FORMATS[fmt]
    lines = render_lines(explorer_messages(form=form))
    response = StreamingHttpResponse(export_stream(lines), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{tenant_slug}-messages-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
