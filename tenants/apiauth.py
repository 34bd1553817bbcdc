"""Who is calling the API: a tenant API key (`Authorization: Bearer cbk_…`) or a logged-in member.

Both put the caller's tenant in context for the rest of the request (the scoped managers read
it). What a caller may then do (plan features, rate limits) is decided above this app, where
the API is mounted (chatbot_saas/api.py): tenants imports no other app.

Nothing here logs or echoes the Authorization header: a malformed one may still hold a whole
secret (`Basic cbk_…`, a key without its scheme), so errors name the expected form instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from chatbot_saas.errors import PermissionDenied

from .context import set_current_tenant
from .middleware import SESSION_TENANT_KEY
from .models import ApiKey, Membership, Tenant
from .selectors import ApiKeyError, api_key_authenticate, memberships_for_user

AUTH_HINT = "Send your API key as 'Authorization: Bearer cbk_...'."


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (any case), None without a header.

    Raises ApiKeyError (invalid_api_key) for any other form, without repeating what was sent.
    """
    value = request.headers.get("Authorization", "")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiKeyError(AUTH_HINT, code="invalid_api_key")
    return token.strip()


async def api_key_request_authenticate(request: HttpRequest, *, token: str | None = None) -> ApiKey:
    """Authenticate the request's API key and set its tenant for this request.

    Raises AppError: invalid_api_key (no or a malformed header, unknown key), api_key_revoked,
    tenant_suspended.
    """
    raw = token if token is not None else bearer_token(request)
    if raw is None:
        raise ApiKeyError(AUTH_HINT, code="invalid_api_key")
    api_key = await sync_to_async(api_key_authenticate)(raw_key=raw)
    # The request runs in its own task/context, so this does not leak to other requests.
    set_current_tenant(api_key.tenant)
    request.api_key = api_key  # type: ignore[attr-defined]
    request.tenant = api_key.tenant  # type: ignore[attr-defined]
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
    return MemberPrincipal(membership.tenant, user)
