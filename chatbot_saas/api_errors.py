"""404 and 405 under the API prefixes answer in the API's error shape, not as Django's HTML page
or Ninja's bare "Method not allowed".

Both are produced outside any Ninja exception handler: an unknown path never reaches Ninja, and
Ninja answers a wrong method with a plain HttpResponseNotAllowed. So a small middleware reshapes
exactly those two statuses when the body is not JSON already.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware

REST_PREFIX = "/api/v1/"
OPENAI_PREFIX = "/v1/"


def _body(request: HttpRequest, response: HttpResponse) -> dict[str, Any] | None:
    if response.status_code not in (404, 405) or response.get("Content-Type", "").startswith("application/json"):
        return None
    openai = request.path.startswith(OPENAI_PREFIX)
    if not (openai or request.path.startswith(REST_PREFIX)):
        return None
    if response.status_code == 404:
        error = {"code": "not_found", "message": f"There is no API route at {request.path}. See /api/v1/docs."}
    else:
        allowed = response.get("Allow", "")
        error = {
            "code": "method_not_allowed",
            "message": f"{request.method} is not allowed on {request.path}; use {allowed}.",
        }
    if openai:
        error["type"] = "invalid_request_error"
    return {"error": error}


def _reshaped(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    body = _body(request, response)
    if body is None:
        return response
    reshaped = JsonResponse(body, status=response.status_code)
    if response.has_header("Allow"):
        reshaped["Allow"] = response["Allow"]
    return reshaped


@sync_and_async_middleware
def api_error_shape(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            return _reshaped(request, await get_response(request))

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _reshaped(request, get_response(request))

    return middleware
