"""Mark a view as public on purpose (no tenant login; reached by a public id such as a bot's).

The cross-tenant URL walk skips such views, so the reason is required and reviewed in code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def public_route(reason: str) -> Callable[[F], F]:
    if not reason.strip():
        raise ValueError("public_route needs a reason")

    def decorator(view: F) -> F:
        view.public_route_reason = reason  # type: ignore[attr-defined]
        return view

    return decorator
