"""HTTP views of the conversations app that are not the API: the widget session and /metrics."""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatbot_saas.errors import AppError
from chatbot_saas.public import public_route
from tenants.decorators import require_role
from tenants.models import Role

from .access import client_ip
from .ratelimit import Bucket, RateLimited, configured_rate, rate_limit_take_sync
from .selectors import conversation_detail_for_dashboard, conversation_list_for_dashboard
from .services import widget_session_open

SESSION_BODY_MAX = 4096


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
def conversation_list(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    return render(request, "conversations/conversation_list.html", {"conversations": conversation_list_for_dashboard()})


@require_role(Role.MEMBER)
def conversation_detail(request: HttpRequest, tenant_slug: str, conversation_id: int) -> HttpResponse:
    found = conversation_detail_for_dashboard(conversation_id=conversation_id)
    if found is None:
        raise Http404("No such conversation.")
    conversation, messages = found
    return render(
        request, "conversations/conversation_detail.html", {"conversation": conversation, "messages": messages}
    )
