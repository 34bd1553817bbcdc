"""Errors a user can hit: a stable machine code plus a sentence that says what to do."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class NotFound(AppError):
    code = "not_found"
    status = 404


class PermissionDenied(AppError):
    code = "permission_denied"
    status = 403


class TenantSuspended(AppError):
    code = "tenant_suspended"
    status = 403
