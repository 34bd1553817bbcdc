"""HTTP views of the conversations app that are not the API: the widget session, /metrics, and the
dashboard's conversation pages, playground, trace inspector and the bot editor's Test connection."""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bots.editor_forms import chain_formset
from bots.models import Bot
from bots.selectors import provider_key
from chatbot_saas.errors import AppError
from chatbot_saas.public import public_route
from tenants.decorators import require_role
from tenants.models import Role

from .access import client_ip
from .connection_test import ConnectionResult, connection_test
from .ratelimit import Bucket, Rate, RateLimited, configured_rate, rate_limit_take_sync
from .selectors import (
    conversation_detail_for_dashboard,
    message_with_trace,
    playground_choices,
)
from .services import widget_session_open
from .trace_selectors import trace_inspect

SESSION_BODY_MAX = 4096
# Each test is a real (billed) request to a provider: enough to try every row a few times.
CONNECTION_TEST_RATE = Rate(capacity=10, period=60)


def _cors(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    # The body carries nothing secret on error and is only produced for an allowed origin on
    # success, so echoing the Origin lets the widget read both; no cookies are involved.
    origin = request.headers.get("Origin")
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


@public_route(reason="The widget on a tenant's website opens a visitor session with the bot's public id.")
@csrf_exempt
def widget_session(request: HttpRequest, bot_public_id: str) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), request)
    if request.method != "POST":
        return _cors(
            JsonResponse({"error": {"code": "method_not_allowed", "message": "Use POST."}}, status=405), request
        )
    try:
        ip = client_ip(
            remote_addr=request.META.get("REMOTE_ADDR"), forwarded_for=request.headers.get("X-Forwarded-For")
        )
        decision = rate_limit_take_sync([Bucket("widget_session", ip, configured_rate("RATE_LIMIT_WIDGET_SESSION"))])
        if not decision.allowed:
            raise RateLimited(decision)
        if len(request.body) > SESSION_BODY_MAX:
            raise AppError("The request body is too large.", code="body_too_large", status=413)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise AppError("The request body must be JSON.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise AppError("The request body must be a JSON object.", code="invalid_json")
        payload = widget_session_open(
            bot_public_id=bot_public_id,
            origin=request.headers.get("Origin"),
            visitor_id=body.get("visitor_id"),
            identity=body.get("identity"),
            preview=body.get("preview"),
            # The app's own origin, where the widget designer's preview runs.
            own_origin=f"{request.scheme}://{request.get_host()}",
        )
    except AppError as exc:
        response = JsonResponse(exc.as_dict(), status=exc.status)
        if exc.extra.get("retry_after") is not None:
            response["Retry-After"] = str(max(1, round(exc.extra["retry_after"])))
        return _cors(response, request)
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return _cors(response, request)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this process. A matching bearer token is required when METRICS_TOKEN is
    set, and always in production (DJANGO_DEBUG=false), where an empty token matches nothing."""
    if settings.METRICS_TOKEN or settings.PRODUCTION:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not settings.METRICS_TOKEN or not hmac.compare_digest(supplied.encode(), settings.METRICS_TOKEN.encode()):
            return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@require_role(Role.MEMBER)
def conversation_detail(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    found = conversation_detail_for_dashboard(conversation_id=conversation_id)
    if found is None:
        raise Http404("No such conversation.")
    conversation, messages = found
    # Not "messages": that name is Django's flash messages, which the base layout shows on top.
    return render(
        request, "conversations/conversation_detail.html", {"conversation": conversation, "transcript": messages}
    )


def _connection_row(request: HttpRequest) -> tuple[int, dict | None, str]:
    """(row index, chain entry or None, what is wrong with the row) from the chain editor's POST."""
    raw = request.POST.get("row", "")
    formset = chain_formset(request.POST)
    if not raw.isdigit() or int(raw) >= len(formset.forms):
        return -1, None, "That row does not exist; reload the page."
    form = formset.forms[int(raw)]
    if not form.is_valid():
        problems = [
            f"{form.fields[f].label or f}: {' '.join(e)}" if f in form.fields else " ".join(e)
            for f, e in form.errors.items()
        ]
        return int(raw), None, "Fix this row first. " + " ".join(problems)
    return int(raw), form.entry(), ""


@require_POST
@require_role(Role.ADMIN)
def bot_test_connection(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """The bot editor's Test connection button: one tiny request for one row of the chain as
    shown in the editor (saved or not). htmx gets the result fragment; without JavaScript the
    same result is a small page. Rate limited per member (CONNECTION_TEST_RATE)."""
    bot = get_object_or_404(Bot.objects, pk=bot_id)
    decision = rate_limit_take_sync(
        [Bucket("connection_test", f"{bot.tenant_id}:{request.user.pk}", CONNECTION_TEST_RATE)]
    )
    status = 200
    if not decision.allowed:
        index, result, status = -1, ConnectionResult(False, RateLimited(decision).message, code="rate_limited"), 429
    else:
        index, entry, problem = _connection_row(request)
        if entry is None:
            result, status = ConnectionResult(False, problem, code="invalid_row"), 400
        else:
            result = connection_test(entry=entry, key=provider_key(provider=entry["provider"]))
    context = {"bot": bot, "result": result, "row": index}
    partial = request.htmx  # type: ignore[attr-defined]  # django-htmx's middleware
    template = "conversations/_connection_result.html" if partial else "conversations/connection_test.html"
    response = render(request, template, context, status=status)
    if status == 429:
        response["Retry-After"] = str(max(1, round(decision.retry_after)))
    return response


@require_role(Role.MEMBER)
def message_trace(request: HttpRequest, tenant_slug: str, conversation_id: int, message_id: int) -> HttpResponse:
    """One answer's trace: the inspector as a partial for htmx (the playground's "Show trace"),
    or as a page of its own (linked from the conversation page)."""
    message = message_with_trace(conversation_id=conversation_id, message_id=message_id)
    if message is None:
        raise Http404("No trace for this answer.")
    context = {"view": trace_inspect(message=message), "conversation": message.conversation}
    if request.htmx:  # type: ignore[attr-defined]  # set by django-htmx's middleware
        return render(request, "conversations/_trace.html", context)
    return render(request, "conversations/message_trace.html", context)


@require_role(Role.MEMBER)
def playground(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Pick a bot (?bot=<id>) and a prompt version (?version=<number>, the published one by
    default), optionally with a question to ask (?q=), then chat over the playground socket (conversations/playground.py)."""
    choice = playground_choices(bot_id=request.GET.get("bot"), version=request.GET.get("version"))
    # ?q= prefills the message box: a correction's Re-test button replays its question.
    question = request.GET.get("q", "")[: settings.BOT_MAX_INPUT_CHARS]
    return render(request, "conversations/playground.html", {"choice": choice, "question": question})
