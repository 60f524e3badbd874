"""Structured logs: one JSON object per line, with the request or connection it belongs to.

Production (``HIRFA_ENV=production``, or ``HIRFA_LOG_FORMAT=json``) logs through
`JsonFormatter`: ``time``, ``level``, ``logger``, ``message``, ``process`` and,
when known, ``request_id`` (nginx's ``$request_id``, sent as ``X-Request-ID``,
else one made here) or ``conn_id`` (a websocket's id, also in its ``welcome``
logs), and ``exc`` with the traceback. The ids live in context variables, so
that the tasks and database threads a request or socket starts carry them.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

request_id: ContextVar[str | None] = ContextVar("hirfa_request_id", default=None)
conn_id: ContextVar[str | None] = ContextVar("hirfa_conn_id", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        rid, cid = request_id.get(), conn_id.get()
        if rid:
            entry["request_id"] = rid
        if cid:
            entry["conn_id"] = cid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RequestIdMiddleware:
    """Sets the request id for the request's logs and echoes it as ``X-Request-ID``."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
