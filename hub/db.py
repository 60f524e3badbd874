"""Calling the synchronous ORM from the sockets' event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import DatabaseSyncToAsync


def db_call(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`fn` run in a worker thread of the loop's pool, old connections closed around it.

    Unlike Channels' `database_sync_to_async`, calls do not all queue behind one
    thread: a post waiting for its commit does not hold up every other socket of
    the process. Each socket still awaits its own calls one after the other, so
    its frames keep their order; the services hold no thread-local state.
    """
    return DatabaseSyncToAsync(fn, thread_sensitive=False)
