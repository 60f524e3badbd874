"""The hub's REST JSON API, mounted at ``/api/``.

OpenAPI schema at ``/api/openapi.json``, interactive docs at ``/api/docs``.
Authentication is the Django session (the same cookie as the web pages); unsafe
methods need the CSRF token (``X-CSRFToken`` header), as on the forms.

Every answer other than a success is JSON ``{"code": ..., "message": ...}``:
``unauthenticated`` (401), the `hub.errors.ErrorCode` of a refused action with
its `http_status` (a missing room and a room one may not read are both 404
``not_found``), ``invalid`` (422) for a request that does not validate, and
``internal_error`` (500) — whose details stay in the server's log.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import SessionAuth

from hub.errors import ErrorCode, HirfaError, http_status

log = logging.getLogger(__name__)

UNAUTHENTICATED = "unauthenticated"


class SessionThenCsrf(SessionAuth):
    """The Django session; for unsafe methods also the CSRF token.

    Unlike ninja's `django_auth`, an anonymous request is answered 401
    `unauthenticated` before its CSRF token is looked at, so a client learns it
    must log in rather than that its token is wrong.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


api = NinjaAPI(
    title="Hirfa API",
    version="1",
    description="Rooms, messages, search, notifications and moderation of the Hirfa hub.",
    auth=SessionThenCsrf(),
    urls_namespace="api",
)
api.add_router("", "rooms.api.router")
api.add_router("", "gatherings.api.router")
api.add_router("", "registry.api.router")


def _error(
    request: HttpRequest, status: int, code: str, message: str, **extra: object
) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message, **extra}, status=status)


@api.exception_handler(HirfaError)
def _hirfa_error(request: HttpRequest, exc: HirfaError) -> HttpResponse:
    response = api.create_response(request, exc.as_dict(), status=http_status(exc.code))
    if exc.retry_after is not None:
        response["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # Keep only what locates the problem; pydantic's `ctx`/`url` may hold non-JSON objects.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors
    ]
    return _error(
        request, 422, ErrorCode.INVALID.value, _("The request is not valid."), errors=errors
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, UNAUTHENTICATED, _("Log in first."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # Raised by ninja itself: the CSRF check (403), a malformed body (400).
    code = {403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND}.get(
        exc.status_code, ErrorCode.INVALID
    )
    message = _("CSRF check failed.") if exc.status_code == 403 else str(exc)
    return _error(request, exc.status_code, code.value, message)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, ErrorCode.NOT_FOUND.value, _("Not found."))


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.error("API error on %s %s", request.method, request.path, exc_info=exc)
    return _error(request, 500, ErrorCode.INTERNAL_ERROR.value, _("Something went wrong."))
