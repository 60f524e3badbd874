"""Calling the synchronous ORM from the sockets' event loop."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

#: A connection that answered within this many seconds is not asked `SELECT 1` again
#: before the next call (Django's health check runs before every call otherwise: one more
#: round trip per frame). One that died meanwhile fails that one call; Django then
#: drops it and the next call opens a new one.
HEALTHY_FOR_SECONDS = 2.0


#: Threads (each with its database connection) that run a process's db_calls at once.
#: Sends wait on their commit, not on the CPU: the loop's default pool (CPUs + 4, so 6
#: here) capped a hub at 6 posts in flight, whatever the CPU had left.
DB_THREADS_DEFAULT = 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def db_pool() -> ThreadPoolExecutor:
    """The process's pool for db_call (``HIRFA_DB_THREADS`` threads, 16 by default)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            threads = int(os.environ.get("HIRFA_DB_THREADS", DB_THREADS_DEFAULT))
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hirfa-db")
        return _pool


def db_pool_started() -> ThreadPoolExecutor | None:
    """The pool if a db_call has started it (a draining hub shuts it down, hub/shutdown.py)."""
    return _pool


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
    """`fn` run in a thread of the process's database pool (`db_pool`), old connections
    closed around it.

    Unlike Channels' `database_sync_to_async`, calls do not all queue behind one
    thread: a post waiting for its commit does not hold up every other socket of
    the process. Each socket still awaits its own calls one after the other, so
    its frames keep their order; the services hold no thread-local state.
    """
    return _DbCall(fn, thread_sensitive=False, executor=db_pool())
