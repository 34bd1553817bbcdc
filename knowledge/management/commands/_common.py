"""Shared look-ups for the operators' knowledge commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from knowledge.models import KnowledgeBase
from tenants.models import Tenant


def tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant with slug {slug!r}.")
    return tenant


def kb_by_name(name: str) -> KnowledgeBase:
    """Call inside tenant_context: the look-up goes through the tenant scope."""
    kb = KnowledgeBase.objects.filter(name=name).first()
    if kb is None:
        raise CommandError(f"No knowledge base named {name!r} in this tenant (use --create to make one).")
    return kb
