"""Calling the synchronous ORM from the sockets' event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

T = TypeVar("T")
R = TypeVar("R")

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


class CallsTogether(Generic[T, R]):
    """One synchronous function over many items, run on the database pool for the items
    that wait together: those that arrive while ``calls_at_once`` calls of it are on the
    pool go in the next call, up to ``most`` items each (one event loop's worth; a hub
    process has one loop).

    ``many(items)`` answers each item's result in its place, or the exception that item
    raised: one item's failure is its own. A crowd's reads each a call of their own were a
    hop to a thread of the pool each, the threads taking the GIL from the event loop that
    serves the crowd (docs/performance.md, "Connection storms")."""

    def __init__(
        self, many: Callable[[list[T]], list[R | BaseException]], *, most: int = 64, calls_at_once: int = 1
    ) -> None:
        self._many = db_call(many)
        self.most = most
        self.calls_at_once = calls_at_once
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting[T, R]] = (
            weakref.WeakKeyDictionary()
        )
        self.calls = 0  # calls made, for the tests and the bench's probes

    async def call(self, item: T) -> R:
        """``item``'s result, read with the other items waiting now."""
        loop = asyncio.get_running_loop()
        waiting = self._loops.get(loop)
        if waiting is None:
            waiting = self._loops[loop] = _Waiting()
        done: asyncio.Future[R] = loop.create_future()
        waiting.items.append((item, done))
        if waiting.calls < self.calls_at_once:
            waiting.calls += 1
            task = loop.create_task(self._run(waiting), name="hirfa-calls-together")
            waiting.tasks.add(task)
            task.add_done_callback(waiting.tasks.discard)
        return await done

    async def _run(self, waiting: _Waiting[T, R]) -> None:
        try:
            while waiting.items:
                batch = waiting.items[: self.most]
                del waiting.items[: self.most]
                batch = [(item, done) for item, done in batch if not done.done()]  # cancelled meanwhile
                if not batch:
                    continue
                self.calls += 1
                found: list[R | BaseException]
                try:
                    found = await self._many([item for item, _done in batch])
                except Exception as exc:
                    found = [exc] * len(batch)
                for (_item, done), result in zip(batch, found, strict=True):
                    if done.done():
                        continue
                    if isinstance(result, BaseException):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            waiting.calls -= 1


class _Waiting(Generic[T, R]):
    __slots__ = ("calls", "items", "tasks")

    def __init__(self) -> None:
        self.items: list[tuple[T, asyncio.Future[R]]] = []
        self.calls = 0
        self.tasks: set[asyncio.Task[None]] = set()


#: Connections a loop keeps for the statements it runs itself (`loop_connection`), and how
#: many such statements it has in flight at most.
LOOP_CONNECTIONS_DEFAULT = 8


class _LoopConnections:
    """One event loop's idle connections and the limit on those in use."""

    __slots__ = ("idle", "slots")

    def __init__(self, most: int) -> None:
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(most)


_loop_connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = (
    weakref.WeakKeyDictionary()
)


def loop_statements_possible() -> bool:
    """Whether `loop_connection` can serve: the default database is PostgreSQL (psycopg 3)."""
    return connections["default"].vendor == "postgresql"


@contextlib.asynccontextmanager
async def loop_connection() -> AsyncIterator[Any]:
    """An autocommit psycopg `AsyncConnection` to the default database, used on the running
    event loop itself: a statement of a socket's hot path without a hop to a pool thread
    (two wake-ups of the loop, the GIL handed over and back while 16 threads want it).

    At most ``HIRFA_LOOP_CONNECTIONS`` (8) per loop are in use at once; the others wait.
    A connection that fails is closed, not given back; the error reaches the caller, whose
    statement must be safe to run again elsewhere (the caller's fallback)."""
    loop = asyncio.get_running_loop()
    held = _loop_connections.get(loop)
    if held is None:
        held = _loop_connections[loop] = _LoopConnections(
            int(os.environ.get("HIRFA_LOOP_CONNECTIONS", LOOP_CONNECTIONS_DEFAULT))
        )
    async with held.slots:
        conn = held.idle.pop() if held.idle else await _connect()
        try:
            yield conn
        except BaseException:
            await _close_quietly(conn)
            raise
        if conn.closed or conn.broken:
            return
        held.idle.append(conn)


class LoopStatementFailed(Exception):
    """A statement on a loop's connection wrote nothing known: PostgreSQL refused it (a
    constraint) or the connection failed (its outcome unknown)."""


async def loop_fetchone(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """`sql` on a `loop_connection` in autocommit, and its first row (None: no row).

    Raises `LoopStatementFailed` on any database error: the caller runs its statement
    again elsewhere, so it must be idempotent (a retry finds what a lost answer stored)."""
    import psycopg

    try:
        async with loop_connection() as conn:
            cursor = await conn.execute(sql, params)
            row: tuple[Any, ...] | None = await cursor.fetchone()
            return row
    except psycopg.Error as exc:
        raise LoopStatementFailed(str(exc)) from exc


async def _connect() -> Any:
    import psycopg

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's cursor is synchronous
    return await psycopg.AsyncConnection.connect(autocommit=True, **params)


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to give back
        await conn.close()


def loop_connections_discard() -> None:
    """Close every loop's idle connections now, from synchronous code, whether their loops
    still run or not (a draining hub; a test's end, before its database is dropped)."""
    for held in list(_loop_connections.values()):
        for conn in held.idle:
            conn.pgconn.finish()
        held.idle.clear()
    _loop_connections.clear()
