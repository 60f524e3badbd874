"""A hub that is told to stop (SIGTERM, SIGINT) drains instead of dropping its sockets.

What `hirfa serve` does on SIGTERM, in order (docs/operations.md, "Rolling
restart"):

1. stops accepting: the listening socket is closed, so nginx sends new
   connections to the other hubs; ``/readyz`` answers 503 meanwhile;
2. lets each socket finish the frame it is handling (a send is stored and
   acknowledged), refuses to start new ones (the client sends them again after
   reconnecting: sends are idempotent on their ``client_id``), writes what is
   queued, and closes it with ``1012`` (service restart), which clients take as
   "reconnect at once";
3. releases each socket's meeting seat, which closes its peer connection on the
   SFU (the client joins again from the hub it reconnects to);
4. stops the reactor, gives the database connections back (psycopg's pool is
   closed), stops the worker threads the sockets' database calls ran in, and
   exits 0.

Each step is bounded (`DRAIN_SECONDS`, `EXIT_SECONDS`): a stuck socket or a
database call still waiting (on the pool, on a lock) never keeps a hub alive;
what was stuck is logged with its stack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Protocol

from hub import metrics

log = logging.getLogger(__name__)

#: At most this long for the sockets to finish and close.
DRAIN_SECONDS = 10.0
#: Once the reactor stopped, at most this long for the worker threads' calls in hand.
EXIT_SECONDS = 5.0


class Drainable(Protocol):
    async def drain(self) -> None:
        """Finish the frame in hand, refuse new ones, flush, close with 1012, release."""


_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
_draining = False


def socket_opened(sock: Drainable) -> None:
    _sockets.add(sock)
    metrics.sockets_open.set(len(_sockets))


def socket_closed(sock: Drainable) -> None:
    _sockets.discard(sock)
    metrics.sockets_open.set(len(_sockets))


def open_sockets() -> int:
    return len(_sockets)


def is_draining() -> bool:
    return _draining


async def drain_sockets(*, timeout: float = DRAIN_SECONDS) -> int:
    """Drain every open socket of this process concurrently; answers how many there were."""
    global _draining
    _draining = True
    metrics.draining.set(1)
    sockets = list(_sockets)
    if sockets:
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(s.drain()) for s in sockets], timeout=timeout
        )
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("draining a socket failed", exc_info=task.exception())
        if pending:
            log.warning("%d sockets did not drain within %.0f s", len(pending), timeout)
    return len(sockets)


def _busy_threads() -> list[threading.Thread]:
    me = threading.current_thread()
    return [t for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]


def finish_exit(loop: asyncio.AbstractEventLoop | None, *, timeout: float = EXIT_SECONDS) -> None:
    """After the reactor stopped: let the process end now, not when its threads feel like it.

    The sockets' database calls run in worker threads (`hub.db`'s pool, asgiref's and the
    loop's default executor), which Python joins at exit, each after the work queued on it; a call
    waiting for a pooled connection or a lock would hold the exit for as long as it
    waits. Here the connections go back (the pool is closed), the executors are shut
    down without their queued work, and the threads get `timeout` seconds to finish
    the call in hand; any still busy is logged with its stack and the process exits
    anyway (everything that matters was done by the drain).
    """
    from asgiref.sync import SyncToAsync
    from django.db import connections

    for alias in connections:
        try:
            connection = connections[alias]
            connection.close()
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
        except Exception:
            log.warning("closing database connection %s failed", alias, exc_info=True)
    from hub.db import db_pool_started

    executors = [SyncToAsync.single_thread_executor]
    if (pool := db_pool_started()) is not None:
        executors.append(pool)
    default = getattr(loop, "_default_executor", None) if loop is not None else None
    if default is not None:
        executors.append(default)
    for executor in executors:
        executor.shutdown(wait=False, cancel_futures=True)
    end = time.monotonic() + timeout
    for thread in _busy_threads():
        thread.join(max(0.0, end - time.monotonic()))
    busy = _busy_threads()
    if not busy:
        return
    frames = sys._current_frames()
    for thread in busy:
        stack = "".join(traceback.format_stack(frames[thread.ident])) if thread.ident in frames else "?"
        log.warning("thread %s still busy %.0f s after the drain; exiting anyway:\n%s", thread.name, timeout, stack)
    logging.shutdown()
    os._exit(0)


def graceful_server(*, listening: Any = None, **options: Any) -> Any:
    """A daphne `Server` (same options) that drains on SIGTERM/SIGINT instead of dying.

    Twisted's own signal handlers are not installed; ours run on the reactor's
    asyncio loop. A second signal while draining stops at once. `listening` is called
    once every endpoint listens. An endpoint that cannot listen stops the server with
    its reason in `listen_failure` (daphne's own logged it and returned as if served).
    """
    from daphne.server import Server
    from twisted.internet import reactor

    class GracefulServer(Server):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(signal_handlers=False, **kwargs)
            self.ports: list[Any] = []
            self.stopping = False
            self.loop: asyncio.AbstractEventLoop | None = None
            self.listen_failure = ""

        def listen_success(self, port: Any) -> None:
            self.ports.append(port)
            super().listen_success(port)
            if listening is not None and len(self.ports) == len(self.endpoints):
                listening()

        def listen_error(self, failure: Any) -> None:
            self.listen_failure = self.listen_failure or failure.getErrorMessage()
            self.stop()

        def run(self) -> None:
            reactor.callWhenRunning(self._install_signal_handlers)
            super().run()

        def _install_signal_handlers(self) -> None:
            loop = self.loop = asyncio.get_event_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._signalled, sig)

        def _signalled(self, sig: int) -> None:
            if self.stopping:
                log.warning("second %s: stopping now", signal.Signals(sig).name)
                self.stop()
                return
            self.stopping = True
            log.info("%s: draining", signal.Signals(sig).name)
            asyncio.get_event_loop().create_task(self._drain())

        async def _drain(self) -> None:
            try:
                for port in self.ports:
                    port.stopListening()
                count = await drain_sockets()
                # The close handshakes and the last HTTP responses go out.
                for _ in range(int(DRAIN_SECONDS * 10)):
                    if not self.connections:
                        break
                    await asyncio.sleep(0.1)
                log.info("drained %d sockets; stopping", count)
                from hub.db import loop_connections_discard

                loop_connections_discard()
            except Exception:
                log.exception("draining failed; stopping")
            finally:
                self.stop()

    return GracefulServer(**options)
