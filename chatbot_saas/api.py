"""The one place the public API is mounted: the REST API under /api/v1/ and the OpenAI-compatible
routes under /v1/.

Each app keeps its own router (bots/api.py, conversations/api.py, knowledge/api.py). This module
sits above every app, so it is where a caller is admitted, in this order:
1. who is calling: an API key or a logged-in member (tenants.apiauth), which sets the tenant;
2. whether the tenant's plan includes API access (billing.quotas.feature_check), for API keys;
   a member using the API from the dashboard (the playground) is part of the dashboard every
   plan has;
3. one token from the key's and the tenant's rate-limit buckets (conversations.ratelimit).
Every refusal, and every error Ninja itself raises, answers in the one error shape
`{"error": {"code", "message"}}`; the OpenAI-compatible routes answer in OpenAI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyCookie
from ninja.security.base import AuthBase

from billing.quotas import feature_check
from bots.api import router as bots_router
from chatbot_saas.errors import AppError
from conversations import openai_compat
from conversations.api import router as conversations_router
from conversations.ratelimit import api_key_buckets, rate_limit_check
from knowledge.api import router as knowledge_router
from tenants.apiauth import (
    AUTH_HINT,
    MemberPrincipal,
    api_key_request_authenticate,
    bearer_token,
    session_member_authenticate,
)
from tenants.models import ApiKey


async def api_key_admit(request: HttpRequest, *, token: str | None = None) -> ApiKey:
    """Authenticate the request's API key, require API access on its plan, take a rate-limit token.

    Raises AppError: invalid_api_key, api_key_revoked, tenant_suspended (tenants);
    plan_feature_required (402, names the cheapest plan with API access); rate_limited (429).
    """
    api_key = await api_key_request_authenticate(request, token=token)
    # Checked before the rate limit, so a refused call spends none of the workspace's tokens.
    await sync_to_async(feature_check)(tenant=api_key.tenant, feature="api_access")
    await rate_limit_check(api_key_buckets(tenant_id=api_key.tenant_id, api_key_id=api_key.pk))
    return api_key


class ApiKeyAuth(AuthBase):
    """`Authorization: Bearer cbk_…` (any case of "Bearer").

    Not Ninja's HttpBearer: under DEBUG it logs a header with another scheme whole
    ("Unexpected auth - 'Basic cbk_…'"), secret included. A malformed header is refused here
    with invalid_api_key and never repeated.
    """

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> Awaitable[ApiKey | None]:
        return self.authenticate(request)

    async def authenticate(self, request: HttpRequest) -> ApiKey | None:
        scheme = request.headers.get("Authorization", "").strip().partition(" ")[0]
        if scheme.lower() != "bearer":
            # No header, or another scheme (say a proxy's Basic auth in front of a staging site):
            # the session cookie may still authenticate; without one the answer is invalid_api_key.
            return None
        return await api_key_admit(request, token=bearer_token(request))


class MemberSessionAuth(APIKeyCookie):
    """The dashboard's session cookie (CSRF-checked for unsafe methods by Ninja)."""

    param_name = settings.SESSION_COOKIE_NAME

    async def authenticate(self, request: HttpRequest, key: str | None) -> MemberPrincipal | None:
        member = await session_member_authenticate(request)
        if member is not None:
            # The playground shares its workspace's bucket with the workspace's keys.
            buckets = api_key_buckets(tenant_id=member.tenant.pk, api_key_id=0)
            await rate_limit_check([b for b in buckets if b.scope == "tenant"])
        return member


api = NinjaAPI(
    title="Chatbot SaaS API",
    version="1",
    description="Tenant API: bots, conversations, messages (JSON or Server-Sent Events), feedback, knowledge. "
    "Authenticate with `Authorization: Bearer cbk_…` (create keys in the dashboard). "
    "The workspace's plan must include API access.",
    auth=[ApiKeyAuth(), MemberSessionAuth()],
    urls_namespace="api-v1",
    docs_url="/docs",
)
api.add_router("", bots_router)
api.add_router("", conversations_router)
api.add_router("", knowledge_router)


def error_response(exc: AppError) -> JsonResponse:
    response = JsonResponse(exc.as_dict(), status=exc.status)
    if exc.extra.get("retry_after") is not None:
        response["Retry-After"] = str(max(1, round(exc.extra["retry_after"])))
    return response


@api.exception_handler(AppError)
def _app_error(request: HttpRequest, exc: AppError) -> HttpResponse:
    return error_response(exc)


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(AppError(AUTH_HINT, code="invalid_api_key", status=401))


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(
        AppError("The request is not valid.", code="validation_error", status=422, details=exc.errors)
    )


# Ninja's own HttpErrors: the cookie auth's CSRF refusal is the one a caller meets.
_HTTP_ERRORS = {
    403: (
        "csrf_failed",
        "The CSRF check failed. Send the X-CSRFToken header from the dashboard page, "
        "or use an API key instead of the session cookie.",
    ),
}


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc)))
    return error_response(AppError(message, code=code, status=exc.status_code))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(AppError("Not found.", code="not_found", status=404))


OpenAIHandler = Callable[..., Awaitable[HttpResponse]]


def _openai_route(handler: OpenAIHandler) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """Admit the caller like the REST API does; refusals answer in the OpenAI error shape."""

    @wraps(handler)
    async def view(request: HttpRequest) -> HttpResponse:
        try:
            api_key = await api_key_admit(request)
        except AppError as exc:
            return openai_compat.openai_error(exc)
        return await handler(request, api_key=api_key)

    return view


urlpatterns: list[Any] = [
    path("api/v1/", api.urls),
    path(
        "v1/chat/completions",
        csrf_exempt(require_POST(_openai_route(openai_compat.chat_completions))),
        name="openai_chat_completions",
    ),
    path("v1/models", require_GET(_openai_route(openai_compat.models_list)), name="openai_models"),
]
