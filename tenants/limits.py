"""Limits that apps above tenants put on adding members, without tenants importing them.

tenants is the ground floor and imports no app, yet billing's plans cap the number of members.
billing registers that cap here from its AppConfig.ready(); invitation_create runs every
registered check before it invites, and a check refuses by raising an AppError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Tenant

# check(tenant=..., amount=...) raises an AppError when `amount` more members would pass a limit.
MemberLimit = Callable[..., None]

_member_limits: dict[str, MemberLimit] = {}


def register_member_limit(name: str, check: MemberLimit) -> None:
    """Add (or replace, so AppConfig.ready() may run twice) the check called `name`."""
    _member_limits[name] = check


def member_limits_check(*, tenant: Tenant, amount: int = 1) -> None:
    """Run every registered check; the first that refuses raises its AppError."""
    for check in _member_limits.values():
        check(tenant=tenant, amount=amount)
