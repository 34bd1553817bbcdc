"""The request type of views under t/<tenant_slug>/, for type checking only.

TenantMiddleware sets `tenant` and `membership` on every such request (tenants/middleware.py);
annotating a view's request as TenantRequest says so to mypy. Nothing constructs it.
"""

from __future__ import annotations

from django.http import HttpRequest

from .models import Membership, Tenant


class TenantRequest(HttpRequest):
    tenant: Tenant
    membership: Membership
