"""API-key authentication for the REST API and the OpenAI-compatible endpoint.

`api_key_request_authenticate` resolves `Authorization: Bearer cbk_…`, puts the key's tenant in
context for the rest of the request (the scoped managers read it), and takes one token from the
key's and the tenant's rate-limit buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from chatbot_saas.errors import PermissionDenied
from tenants.context import set_current_tenant
from tenants.middleware import SESSION_TENANT_KEY
from tenants.models import ApiKey, Membership, Tenant
from tenants.selectors import ApiKeyError, api_key_authenticate, memberships_for_user

from .ratelimit import RateLimited, api_key_buckets, rate_limit_take


def bearer_token(request: HttpRequest) -> str:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiKeyError("Send your API key as 'Authorization: Bearer cbk_...'.", code="invalid_api_key")
    return token.strip()


async def api_key_request_authenticate(request: HttpRequest, *, token: str | None = None) -> ApiKey:
    """Authenticate the request's API key and set its tenant for this request. Raises AppError
    (invalid_api_key, api_key_revoked, tenant_suspended, rate_limited)."""
    raw = token if token is not None else bearer_token(request)
    api_key = await sync_to_async(api_key_authenticate)(raw_key=raw)
    # The request runs in its own task/context, so this does not leak to other requests.
    set_current_tenant(api_key.tenant)
    request.api_key = api_key  # type: ignore[attr-defined]
    request.tenant = api_key.tenant  # type: ignore[attr-defined]
    decision = await rate_limit_take(api_key_buckets(tenant_id=api_key.tenant_id, api_key_id=api_key.pk))
    if not decision.allowed:
        raise RateLimited(decision)
    return api_key


def scope_require(api_key: ApiKey | MemberPrincipal, scope: str) -> None:
    if not api_key.has_scope(scope):
        raise PermissionDenied(
            f"This API key lacks the '{scope}' scope. Create a key with it in the dashboard.", code="missing_scope"
        )


@dataclass(frozen=True)
class MemberPrincipal:
    """A logged-in dashboard member using the API from the browser (e.g. the playground).

    Members act on their selected workspace with every API scope; unsafe methods need the CSRF token.
    """

    tenant: Tenant
    user: Any

    def has_scope(self, scope: str) -> bool:
        return True


async def session_member_authenticate(request: HttpRequest) -> MemberPrincipal | None:
    """The member's selected workspace (the one the dashboard remembers), else their first one."""
    user = await request.auser()
    if not user.is_authenticated:
        return None

    def find() -> Membership | None:
        memberships = memberships_for_user(user=user)
        selected = request.session.get(SESSION_TENANT_KEY)
        return next((m for m in memberships if m.tenant.slug == selected), None) or memberships.first()

    membership = await sync_to_async(find)()
    if membership is None or not membership.tenant.is_active:
        return None
    set_current_tenant(membership.tenant)
    request.tenant = membership.tenant  # type: ignore[attr-defined]
    decision = await rate_limit_take(
        [b for b in api_key_buckets(tenant_id=membership.tenant_id, api_key_id=0) if b.scope == "tenant"]
    )
    if not decision.allowed:
        raise RateLimited(decision)
    return MemberPrincipal(membership.tenant, user)
