"""The inbox (human handoff) and the leads pages.

Only agents (tenants.Membership.is_agent_capable) see them; anyone else gets the same 404 as for a
missing page, as the issue asks. Actions are plain POST forms (they work without JavaScript); the
page's script (static/js/inbox.js) keeps the lists and the transcript live over the inbox socket
(inbox_consumer.py) and sends replies through it.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterator
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chatbot_saas.errors import AppError
from tenants.services import membership_duty_set

from . import handoff
from .inbox_selectors import (
    LEAD_CSV_HEADER,
    duty_roster,
    handoff_stats,
    inbox_conversation,
    inbox_lists,
    lead_csv_rows,
    lead_list,
    transfer_targets,
)


def require_agent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Members without the agent permission get a 404: the inbox does not exist for them."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        membership = getattr(request, "membership", None)
        if membership is None or not membership.is_agent_capable:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


def _me(request: HttpRequest) -> User:
    # Signed in: the tenant middleware let the request through to a workspace page.
    return cast(User, request.user)


@require_GET
@require_agent
def inbox(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    context: dict[str, Any] = {"lists": inbox_lists()}
    if request.htmx:  # type: ignore[attr-defined]  # the live list refreshes just this part
        return render(request, "conversations/_inbox_lists.html", context)
    context["stats"] = handoff_stats()
    context["roster"] = duty_roster()
    return render(request, "conversations/inbox.html", context)


@require_POST
@require_agent
def inbox_duty(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The agent goes on or off duty (who is emailed when a visitor starts waiting)."""
    on_duty = request.POST.get("on_duty") == "1"
    membership_duty_set(membership=request.membership, on_duty=on_duty)  # type: ignore[attr-defined]
    if on_duty:
        messages.success(request, "You are on duty: you get an email when a visitor starts waiting.")
    else:
        messages.success(request, "You are off duty.")
    return redirect("inbox", tenant_slug=tenant_slug)


@require_GET
@require_agent
def inbox_detail(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    found = inbox_conversation(conversation_id=conversation_id)
    if found is None:
        raise Http404("No such conversation in the inbox.")
    conversation, transcript = found
    context = {
        "conversation": conversation,
        "transcript": transcript,
        "mine": conversation.assigned_to_id == request.user.pk and conversation.handoff_status == "assigned",
        "targets": transfer_targets(exclude_user_id=_me(request).pk),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "conversations/_inbox_conversation.html", context)
    return render(request, "conversations/inbox_detail.html", context)


def _act(
    request: HttpRequest, tenant_slug: str, conversation_id: int, action: Callable[[], Any], done: str
) -> HttpResponse:
    try:
        action()
    except AppError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("inbox_detail", tenant_slug=tenant_slug, conversation_id=conversation_id)


@require_POST
@require_agent
def inbox_take(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    return _act(
        request,
        tenant_slug,
        conversation_id,
        lambda: handoff.handoff_take(conversation_id=conversation_id, user=_me(request)),
        "You took this conversation. The assistant stays quiet until you hand it back.",
    )


@require_POST
@require_agent
def inbox_reply(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    """Without JavaScript, replies come here (with it, over the socket)."""
    return _act(
        request,
        tenant_slug,
        conversation_id,
        lambda: handoff.handoff_reply(
            conversation_id=conversation_id, user=_me(request), text=request.POST.get("text")
        ),
        "Sent.",
    )


@require_POST
@require_agent
def inbox_release(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    return _act(
        request,
        tenant_slug,
        conversation_id,
        lambda: handoff.handoff_release(conversation_id=conversation_id, user=_me(request)),
        "The assistant answers this visitor again.",
    )


@require_POST
@require_agent
def inbox_close(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    return _act(
        request,
        tenant_slug,
        conversation_id,
        lambda: handoff.handoff_close(conversation_id=conversation_id, user=_me(request)),
        "Conversation closed.",
    )


@require_POST
@require_agent
def inbox_transfer(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    target = request.POST.get("membership", "")
    return _act(
        request,
        tenant_slug,
        conversation_id,
        lambda: handoff.handoff_transfer(
            conversation_id=conversation_id,
            user=_me(request),
            to_membership_id=int(target) if target.isdigit() else None,
        ),
        "Conversation transferred.",
    )


@require_GET
@require_agent
def leads(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    return render(request, "conversations/leads.html", {"leads": lead_list()})


class _Echo:
    def write(self, value: str) -> str:
        return value


def _safe_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (visitors typed these)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require_GET
@require_agent
def leads_csv(request: HttpRequest, tenant_slug: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    leads = lead_csv_rows()  # scoped now: the body is read after the middleware has left the tenant

    def rows() -> Iterator[str]:
        yield writer.writerow(LEAD_CSV_HEADER)
        for row in leads:
            yield writer.writerow([_safe_cell(c) for c in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leads-{tenant_slug}.csv"'
    return response
