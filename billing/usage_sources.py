"""Where billing learns how much of a countable resource a tenant holds, without importing its app.

billing sits below bots and knowledge, so it cannot read their models. Each app registers a
counter for the quota kinds it owns from its AppConfig.ready() (knowledge: documents and
storage_bytes; bots: bots). A counter takes the tenant and counts that tenant's own rows.
A kind with no registered counter is not countable: its app is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

# count(tenant=...) -> how much of the kind the tenant holds now.
UsageSource = Callable[..., int]

_sources: dict[str, UsageSource] = {}


def register_usage_source(kind: str, count: UsageSource) -> None:
    """Make `count` the counter for `kind`. Replaces an earlier one, so ready() may run twice."""
    _sources[kind] = count


def usage_source(kind: str) -> UsageSource | None:
    return _sources.get(kind)
