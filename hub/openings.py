"""The order in which a hub process serves its sockets' openings: the newest first, and
none whose client has already given up.

Serving an opening costs the process its session read, the consumer's set-up, a socket
slot and the accept. When a crowd arrives (a restarted hub's clients coming back, ten
thousand members at once) faster than the process serves them, openings served in
arrival order each wait behind all the others. Past the client's patience (30 s for the
bench and `hirfa serve`) the client gives up and opens again; the process then spends its
CPU reading the sessions of openings nobody waits for, while the new ones time out behind
them in turn: a congestion collapse, where almost nobody gets in (docs/performance.md,
"Connection storms", 2026-11-30 evening).

So at most ``HIRFA_OPENINGS_READ_AT_ONCE`` openings have their session read at a time
(the two calls on the database pool that `hub.asgi.MEMBER_READS` makes at once, 64
openings each). The others wait, and the newest of them is read next: its client surely still waits, and the oldest are the ones
about to give up. An opening whose client has closed its connection meanwhile, or that has
waited more than ``HIRFA_OPENING_PATIENCE_SECONDS``, is dropped when its turn comes, before
anything is read for it. A process that keeps up serves every opening at once, in any order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

#: The scope key under which `OpeningOrder` hands the consumer its `Turn`.
SCOPE_KEY = "hirfa_opening_turn"


class Turn:
    """One opening being served; `done` (idempotent) passes the turn on."""

    __slots__ = ("_done", "_queue")

    def __init__(self, queue: OpeningQueue) -> None:
        self._queue = queue
        self._done = False

    def done(self) -> None:
        if not self._done:
            self._done = True
            self._queue._pass_on()


class OpeningQueue:
    """The openings of one event loop waiting for their turn, served newest first."""

    def __init__(self, *, at_once: int, patience: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.at_once = max(1, at_once)
        self.patience = patience
        self.clock = clock
        self.serving = 0
        # Insertion-ordered: popitem() takes the newest; a cancelled waiter leaves in O(1).
        self._waiting: dict[asyncio.Future[None], None] = {}
        self.dropped = 0
        self._logged_at = 0.0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def turn(self, *, arrived: float, gone: Callable[[], bool]) -> Turn | None:
        """The opening's turn, once it comes; None when the opening is to be dropped: its
        client is `gone()` or it `arrived` (on `clock`) more than `patience` seconds ago."""
        if self.serving < self.at_once:
            self.serving += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[waiter] = None
            try:
                await waiter  # a finishing opening hands its place over: `serving` stays
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on()  # handed the turn just as it was cancelled
                else:
                    self._waiting.pop(waiter, None)
                raise
        if gone() or self.clock() - arrived > self.patience:
            self.dropped += 1
            self._log_drops()
            self._pass_on()
            return None
        return Turn(self)

    def _pass_on(self) -> None:
        while self._waiting:
            waiter, _ = self._waiting.popitem()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.serving -= 1

    def _log_drops(self) -> None:
        now = self.clock()
        if now - self._logged_at >= 10.0:
            log.warning(
                "openings: %s dropped since the last line (client gone or waited over %.0f s); "
                "%s being read now, %s waiting",
                self.dropped, self.patience, self.serving, self.waiting,
            )
            self._logged_at, self.dropped = now, 0


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OpeningQueue] = weakref.WeakKeyDictionary()


def opening_queue() -> OpeningQueue:
    """The running loop's queue of openings (one per hub process)."""
    loop = asyncio.get_running_loop()
    found = _queues.get(loop)
    if found is None:
        found = _queues[loop] = OpeningQueue(at_once=1, patience=0.0)
    # Read on every opening (two lookups), so that a changed setting holds at once.
    found.at_once = max(1, int(settings.HIRFA_OPENINGS_READ_AT_ONCE))
    found.patience = float(settings.HIRFA_OPENING_PATIENCE_SECONDS)
    return found


def opening_served(scope: Any) -> None:
    """The session of `scope`'s opening is read: the next opening waiting is read. The rest
    of the opening (the consumer, the accept) is not held back: a turn that lasted until the
    accept let a crowd on a loaded process in far slower (docs/performance.md, 2026-12-01)."""
    turn = scope.get(SCOPE_KEY)
    if isinstance(turn, Turn):
        turn.done()


class OpeningOrder:
    """ASGI middleware in front of the session's read: a socket's opening waits for its
    turn (`OpeningQueue`) and hands it on in its scope (`SCOPE_KEY`) to the session's
    read, which passes it on (`opening_served`); a dropped opening reaches nothing behind
    this middleware (a client still there is refused: daphne answers 403)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await self.app(scope, receive, send)
            return
        queue = opening_queue()
        arrived = queue.clock()
        connect = await receive()
        # Before the accept, the only message that can follow is the client's disconnect:
        # waiting for it tells whether the client is still there when the turn comes.
        after = asyncio.ensure_future(receive())
        try:
            turn = await queue.turn(arrived=arrived, gone=after.done)
            if turn is None:
                if not after.done():
                    await send({"type": "websocket.close"})
                return
            try:
                await self.app({**scope, SCOPE_KEY: turn}, _Replay([connect], after, receive), send)
            finally:
                turn.done()
        finally:
            after.cancel()


class _Replay:
    """The `receive` of the socket behind `OpeningOrder`: the messages it took first, then
    the rest."""

    __slots__ = ("_after", "_receive", "_taken")

    def __init__(self, taken: list[Any], after: asyncio.Future[Any], receive: Any) -> None:
        self._taken = taken
        self._after: asyncio.Future[Any] | None = after
        self._receive = receive

    async def __call__(self) -> Any:
        if self._taken:
            return self._taken.pop(0)
        if self._after is not None:
            after, self._after = self._after, None
            return await after
        return await self._receive()
