"""The request type of views under t/<tenant_slug>/, for type checking only.

TenantMiddleware sets `tenant` and `membership` on every such request (tenants/middleware.py);
annotating a view's request as TenantRequest says so to mypy. Nothing constructs it.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from .models import Membership, Tenant


class TenantRequest(HttpRequest):
    tenant: Tenant
    membership: Membership
    htmx: HtmxDetails  # django-htmx's middleware: request.htmx is truthy for htmx's requests
