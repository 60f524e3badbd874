"""Calling the synchronous ORM from the sockets' event loop."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

#: A connection that answered within this many seconds is not asked `SELECT 1` again
#: before the next call (Django's health check runs before every call otherwise: one more
#: round trip per frame). One that died meanwhile fails that one call; Django then
#: drops it and the next call opens a new one.
HEALTHY_FOR_SECONDS = 2.0


class _DbCall(SyncToAsync):
    """Channels' `DatabaseSyncToAsync` (old connections closed around each call), without
    the health check of a connection that just answered."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        now = time.monotonic()
        for conn in connections.all(initialized_only=True):
            answered = getattr(conn, "hirfa_answered_at", None)
            if conn.connection is not None and answered is not None and now - answered < HEALTHY_FOR_SECONDS:
                conn.health_check_done = True  # type: ignore[attr-defined]  # Django 4.1+, not in the stubs
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            now = time.monotonic()
            for conn in connections.all(initialized_only=True):
                ok = conn.connection is not None and not conn.errors_occurred
                conn.hirfa_answered_at = now if ok else None  # type: ignore[attr-defined]
            close_old_connections()


def db_call(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`fn` run in a worker thread of the loop's pool, old connections closed around it.

    Unlike Channels' `database_sync_to_async`, calls do not all queue behind one
    thread: a post waiting for its commit does not hold up every other socket of
    the process. Each socket still awaits its own calls one after the other, so
    its frames keep their order; the services hold no thread-local state.
    """
    return _DbCall(fn, thread_sensitive=False)
