"""Admission smoothing: how many sockets one hub process lets open at once.

When a hub process restarts, or a network blip cuts a crowd off, its clients come back
together: thousands of openings, each a handshake, a session read, a socket slot, a
`hello` and its subscriptions with their replays. Taken all at once they queue on the
event loop behind each other; each waits longer than its client's patience, is dropped,
and comes back into the same queue, while the members already connected to the process
wait behind the crowd for their live events.

So a process lets at most ``HIRFA_OPENINGS_AT_ONCE`` sockets be *opening* at a time: from
the handshake until the socket has been welcomed and the first frame after its `hello`
(its subscription, with the replay) has been answered, or ``SETTLE_SECONDS`` after the
welcome, or its closing, whichever comes first. While the event loop runs more than
``HIRFA_ADMISSION_LAG_MS`` late (members already here are waiting) only a quarter of
that. Every other opening is accepted and closed at once with `4013`, its close reason
saying when to come back (``{"retry_after": 2.5}``, docs/protocol.md): each refused
opening is given the next free turn at the pace the process has let sockets in lately,
a little faster than that (`TURNS_AHEAD`), so a crowd comes back spread over the time the
process needs to take it, not all at the same moment. A refusal costs the process a handshake and nothing else: no database, no
Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings

from hub.errors import CloseCode
from hub.protocol import BusyReason

log = logging.getLogger(__name__)

#: The scope key under which the ASGI gate hands the socket its `Ticket`.
SCOPE_KEY = "hirfa_admission"
#: An opening that said hello but sends nothing more counts this long after its welcome.
SETTLE_SECONDS = 2.0
#: A refused opening is never told to wait longer than this, nor less than this.
RETRY_AFTER_MAX = 10.0
RETRY_AFTER_MIN = 0.5
#: How far back the pace of admissions is measured.
PACE_WINDOW_SECONDS = 5.0
#: Until the process has a pace of its own, it assumes an opening takes this long.
ASSUMED_OPENING_SECONDS = 0.25
#: How often the event loop's lateness is sampled.
LAG_SAMPLE_SECONDS = 0.05
#: Lateness counts only while the process itself used at least this share of a CPU: on a
#: machine busy with other processes the loop is late too, and letting fewer in would not
#: help the members here, only slow the crowd down.
LAG_OWN_CPU_SHARE = 0.5
#: Turns are handed out this much faster than the recent pace, so that the process is never
#: left waiting for its crowd (the pace of a process kept at a quarter of its limit would
#: keep it there); those who come back too early are refused again, at a handshake's cost.
TURNS_AHEAD = 2.0


class Ticket:
    """One opening in progress; `done` (idempotent) lets the next one in."""

    __slots__ = ("_admission", "_done")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._done = False

    def done(self) -> None:
        if not self._done:
            self._done = True
            self._admission._settled()


class Admission:
    """The openings of one event loop. `enter` answers a `Ticket`, or None: refuse with
    `retry_after()`."""

    def __init__(self, *, limit: int, lag_max: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, limit)
        self.lag_max = lag_max
        self.clock = clock
        self.in_progress = 0
        #: How late the event loop ran lately, in seconds (`watch_lag` keeps it).
        self.lag = 0.0
        self._settles: deque[float] = deque()
        self._next_turn = 0.0
        self.refused = 0
        self._logged_at = 0.0

    def allowed_now(self) -> int:
        """Openings allowed at once now: fewer while the loop runs late."""
        if self.lag_max and self.lag > self.lag_max:
            return max(1, self.limit // 4)
        return self.limit

    def enter(self) -> Ticket | None:
        if self.in_progress >= self.allowed_now():
            self.refused += 1
            self._log_refusals()
            return None
        self.in_progress += 1
        return Ticket(self)

    def _settled(self) -> None:
        self.in_progress -= 1
        now = self.clock()
        self._settles.append(now)
        self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        while self._settles and now - self._settles[0] > PACE_WINDOW_SECONDS:
            self._settles.popleft()

    def pace(self) -> float:
        """Openings let in per second lately; until `limit` of them have settled within the
        window, what `limit` openings of `ASSUMED_OPENING_SECONDS` each would make."""
        now = self.clock()
        self._forget_old(now)
        if len(self._settles) < self.limit:
            return self.allowed_now() / ASSUMED_OPENING_SECONDS
        return len(self._settles) / PACE_WINDOW_SECONDS

    def retry_after(self) -> float:
        """When a refused opening should come back: the next free turn at the recent pace.

        Each refusal takes the turn after the last one given, so a crowd refused together
        is told to come back one after the other, as fast as the process lets sockets in.
        """
        now = self.clock()
        self._next_turn = max(self._next_turn, now + RETRY_AFTER_MIN) + 1.0 / (self.pace() * TURNS_AHEAD)
        wait = min(RETRY_AFTER_MAX, self._next_turn - now)
        if wait >= RETRY_AFTER_MAX:
            self._next_turn = now + RETRY_AFTER_MAX
        return round(wait, 1)

    def _log_refusals(self) -> None:
        now = self.clock()
        if now - self._logged_at >= 10.0:
            log.warning(
                "admission: %s openings refused (4013) since the last line; %s opening now, lag %.0f ms",
                self.refused, self.in_progress, self.lag * 1000,
            )
            self._logged_at, self.refused = now, 0

    async def watch_lag(self) -> None:
        """Keep `lag`: how late a timer of `LAG_SAMPLE_SECONDS` fires while the process is busy
        with its own work (`LAG_OWN_CPU_SHARE`), the worst of the last few samples fading out."""
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time(), time.process_time()
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            late = own_lateness(loop.time() - asked, time.process_time() - cpu)
            self.lag = max(late, self.lag * 0.7)


def own_lateness(took: float, cpu_used: float) -> float:
    """How late a sample of `LAG_SAMPLE_SECONDS` that took `took` seconds came, counted only
    when the process used `LAG_OWN_CPU_SHARE` of a CPU meanwhile (late by its own work)."""
    if cpu_used < LAG_OWN_CPU_SHARE * took:
        return 0.0
    return max(0.0, took - LAG_SAMPLE_SECONDS)


_admissions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admission] = weakref.WeakKeyDictionary()
_watchers: set[asyncio.Task[None]] = set()


def admission() -> Admission:
    """The running loop's admission (one per hub process)."""
    loop = asyncio.get_running_loop()
    limit, lag_max = int(settings.HIRFA_OPENINGS_AT_ONCE), float(settings.HIRFA_ADMISSION_LAG_MS) / 1000
    found = _admissions.get(loop)
    if found is None:
        found = _admissions[loop] = Admission(limit=limit, lag_max=lag_max)
        task = loop.create_task(found.watch_lag(), name="admission-lag")
        _watchers.add(task)
        task.add_done_callback(_watchers.discard)
    # Read on every opening (one lookup each), so that a changed setting holds at once.
    found.limit, found.lag_max = max(1, limit), lag_max
    return found


def busy_reason(retry_after: float) -> str:
    """The close reason of a `4013`: when to come back (`hub.protocol.BusyReason`)."""
    return BusyReason(retry_after=retry_after).model_dump_json()


class AdmissionGate:
    """ASGI middleware in front of the websocket stack: a socket gets a `Ticket` in its
    scope (`SCOPE_KEY`), or is accepted and closed with `4013` and a retry-after at once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket" or int(settings.HIRFA_OPENINGS_AT_ONCE) <= 0:
            await self.app(scope, receive, send)  # not a socket, or no gate (the default)
            return
        gate = admission()
        ticket = gate.enter()
        if ticket is None:
            await _refuse(receive, send, gate.retry_after())
            return
        try:
            await self.app({**scope, SCOPE_KEY: ticket}, receive, send)
        finally:
            ticket.done()


async def _refuse(receive: Any, send: Any, retry_after: float) -> None:
    from hub.daphne_hooks import DirectSocket

    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    reason = busy_reason(retry_after)
    # daphne drops a close message's reason: its socket, when found, closes with it.
    direct = DirectSocket.find(send)
    if direct is None or not direct.close_with(int(CloseCode.BUSY), reason):
        await send({"type": "websocket.close", "code": int(CloseCode.BUSY), "reason": reason})
