from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def current_tenant(request: HttpRequest) -> dict[str, Any]:
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
    }
