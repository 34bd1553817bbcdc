from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Role


def require_role(role: str = Role.MEMBER) -> Callable:
    """For views under t/<tenant_slug>/: the middleware has set request.membership."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:  # the middleware did not run: a mis-mounted URL
                raise RuntimeError(f"{view.__name__} needs a <tenant_slug> in its URL")
            if not membership.has_role(role):
                return render(
                    request,
                    "tenants/forbidden.html",
                    {"needed_role": Role(role).label},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
