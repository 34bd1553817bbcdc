"""The current tenant, held in a context variable.

This is the single source of truth for tenant scoping. It is set by:
- `TenantMiddleware` for dashboard requests (URL slug or session selection),
- API-key authentication for the REST and OpenAI-compatible APIs,
- `tenant_task` for Celery tasks,
- `tenant_context` for Channels consumers, management commands and the shell.

Every `TenantScopedModel` manager reads it and raises `TenantNotSet` when it is empty,
so forgetting to scope a query fails loudly instead of leaking rows. The same variable
is the hook for Postgres row-level security later (SET app.tenant_id per transaction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from chatbot_saas.tracing import set_current as set_current_span

if TYPE_CHECKING:
    from .models import Tenant

_current_tenant: ContextVar[Tenant | None] = ContextVar("current_tenant", default=None)

F = TypeVar("F", bound=Callable[..., Any])


class TenantNotSet(RuntimeError):
    """A tenant-scoped query ran with no tenant in context."""


def get_current_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantNotSet(
            "No tenant is set for this query. Wrap the code in tenant_context(tenant), "
            "or use .unscoped() for a deliberate cross-tenant (operator) query."
        )
    return tenant


def get_current_tenant_or_none() -> Tenant | None:
    return _current_tenant.get()


@contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[Tenant | None]:
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


def set_current_tenant(tenant: Tenant | None):
    """Low-level setter for middleware that must reset in another hook."""
    return _current_tenant.set(tenant)


def reset_current_tenant(token) -> None:
    _current_tenant.reset(token)


def tenant_task(func: F) -> F:
    """Run a Celery task body inside its tenant's context.

    The task must take `tenant_id` as a keyword argument; ids, never objects, cross the
    broker. A suspended or deleted tenant's task does nothing and returns None.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, tenant_id: int, **kwargs: Any) -> Any:
        from .models import Tenant

        set_current_span(tenant_id=tenant_id)  # the task's span (chatbot_saas/tracing.py), when tracing is on
        tenant = Tenant.objects.filter(pk=tenant_id).first()
        if tenant is None:
            return None
        with tenant_context(tenant):
            return func(*args, tenant_id=tenant_id, **kwargs)

    return wrapper  # type: ignore[return-value]
