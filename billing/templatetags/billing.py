from __future__ import annotations

from django import template

from billing.selectors import Banner, billing_banner

register = template.Library()


@register.simple_tag
def billing_banner_for(tenant: object) -> Banner | None:
    """The dunning banner for a workspace page, or None (one query for a paying tenant)."""
    return billing_banner(tenant=tenant) if tenant is not None else None
