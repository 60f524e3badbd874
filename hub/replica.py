"""Reads that may be a moment stale, from a PostgreSQL replica when one is configured.

With ``DATABASE_REPLICA_URL`` set, the settings add a ``replica`` database alias and this
router. A view marked `stale_reads_ok` (the directory, storefronts, product pages, the
census) then reads every model from the replica; everything else, and every write, goes to
the primary. Three rules keep a member from noticing:

- the member's own session and account are read from the primary before the view runs,
  so a log-in is never "forgotten" by a lagging replica;
- for ``HIRFA_REPLICA_STICKY_SECONDS`` (10 s) after a member's browser made a change (any
  successful POST, PUT, PATCH or DELETE), its reads go to the primary, so he sees what he
  just saved (read-your-writes, carried by a cookie);
- a replica that cannot be reached costs one retry of the view on the primary, not an error.

Without a replica (the embedded default, a single PostgreSQL) all of this does nothing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
#: The cookie that pins a browser's reads to the primary after it wrote.
WROTE_COOKIE = "hirfa_wrote"
STICKY_SECONDS_DEFAULT = 10

logger = logging.getLogger(__name__)

_stale_ok: ContextVar[bool] = ContextVar("hirfa_stale_reads_ok", default=False)

View = TypeVar("View", bound=Callable[..., HttpResponse])


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


class ReplicaRouter:
    """Reads go to the replica inside `stale_reads`, everything else to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if _stale_ok.get() and replica_configured():
            return REPLICA
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # The replica holds the primary's rows: an object read there may point at one of it.
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {"default", REPLICA} else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None


@contextmanager
def stale_reads() -> Iterator[None]:
    """Within the block, reads may come from the replica (a no-op without one)."""
    token = _stale_ok.set(True)
    try:
        yield
    finally:
        _stale_ok.reset(token)


def _sticky_seconds() -> float:
    return float(getattr(settings, "HIRFA_REPLICA_STICKY_SECONDS", STICKY_SECONDS_DEFAULT))


def _wrote_recently(request: HttpRequest) -> bool:
    try:
        wrote_at = float(request.COOKIES.get(WROTE_COOKIE, ""))
    except ValueError:
        return False
    return 0 <= time.time() - wrote_at < _sticky_seconds()


def _load_member(request: HttpRequest) -> None:
    """Read the session and the account now, from the primary (they are lazy until asked)."""
    user = getattr(request, "user", None)
    if user is not None:
        bool(user.is_authenticated)


def stale_reads_ok(view: View) -> View:
    """Mark a read-only page whose data may lag the primary by a moment (see the module)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD") or not replica_configured() or _wrote_recently(request):
            return view(request, *args, **kwargs)
        _load_member(request)
        try:
            with stale_reads():
                return view(request, *args, **kwargs)
        except OperationalError:
            logger.warning("replica_unreachable", extra={"path": request.path}, exc_info=True)
            return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class RecentWriteMiddleware:
    """Set `WROTE_COOKIE` on a successful change, so the next reads see it (with a replica)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and response.status_code < 400
            and replica_configured()
        ):
            response.set_cookie(
                WROTE_COOKIE, f"{time.time():.3f}", max_age=int(_sticky_seconds()) + 1,
                secure=request.is_secure(), httponly=True, samesite="Lax",
            )
        return response
