from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .selectors import memberships_for_user


def current_tenant(request: HttpRequest) -> dict[str, Any]:
    tenant = getattr(request, "tenant", None)
    context: dict[str, Any] = {
        "current_tenant": tenant,
        "current_membership": getattr(request, "membership", None),
    }
    user = request.user
    if tenant is not None and isinstance(user, AbstractBaseUser):
        # The sidebar's workspace switcher; lazy, so a page that does not draw it costs no query.
        context["nav_memberships"] = SimpleLazyObject(lambda: list(memberships_for_user(user=user)))
    return context
