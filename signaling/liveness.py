"""Meetings outlive no process: heartbeats of attendance, sweeps, clean shutdown.

Each hub process has an id (:data:`PROCESS_ID`) written on the attendance
rows of the sockets it holds. While it holds any meeting session, it
refreshes those rows every ``HIRFA_MEETING_HEARTBEAT_SECONDS`` and sweeps the
rows that nobody refreshed for three periods (a crashed process): they are
closed and a meeting left empty ends (``services.meetings_sweep``). The first
meeting frame a process handles sweeps too, so a restart cleans up after the
crash before anyone joins the dead meeting.

On daphne's shutdown (SIGTERM or SIGINT: daphne cancels the consumers without
calling their ``disconnect``) the process closes its embedded SFU, with every
peer connection and UDP socket in it, and closes its attendance rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
import uuid
import weakref
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)

#: This hub process, as named on its attendance rows.
PROCESS_ID = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
_heartbeats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)
_last_sweep = [0.0]
_shutdown_hooked = [False]


def heartbeat_seconds() -> float:
    return float(settings.HIRFA_MEETING_HEARTBEAT_SECONDS)


async def sweep(*, force: bool = False) -> list[int]:
    """Clean up after crashed processes, at most once a heartbeat period unless ``force``.

    Returns the ids of the meetings that ended. Never raises (a failed sweep is retried later).
    """
    from signaling import services

    now = time.monotonic()
    if not force and now - _last_sweep[0] < heartbeat_seconds():
        return []
    _last_sweep[0] = now
    period = heartbeat_seconds()
    try:
        ended: list[int] = await database_sync_to_async(services.meetings_sweep)(
            stale_after=3 * period, unattended_after=max(10 * period, 3 * period + 60)
        )
    except Exception:
        log.warning("sweeping stale meetings failed", exc_info=True)
        return []
    if ended:
        log.info("ended meetings %s whose participants' process is gone", ended)
    return ended


def session_opened() -> None:
    """A socket of this event loop entered a meeting: keep its attendance refreshed."""
    loop = asyncio.get_running_loop()
    _sessions[loop] = _sessions.get(loop, 0) + 1
    task = _heartbeats.get(loop)
    if task is None or task.done():
        _heartbeats[loop] = loop.create_task(_heartbeat(loop), name="meeting-heartbeat")
    hook_shutdown()


def session_closed() -> None:
    """That socket left; the heartbeat stops with the last session of the loop."""
    loop = asyncio.get_running_loop()
    _sessions[loop] = max(0, _sessions.get(loop, 0) - 1)


async def _heartbeat(loop: asyncio.AbstractEventLoop) -> None:
    from signaling import services

    while _sessions.get(loop, 0) > 0:
        await asyncio.sleep(heartbeat_seconds())
        try:
            await database_sync_to_async(services.attendance_heartbeat)(process=PROCESS_ID)
        except Exception:
            log.warning("refreshing this process's attendance failed", exc_info=True)
        await sweep()


async def shutdown() -> None:
    """Close the running loop's embedded SFU and this process's attendance rows."""
    from signaling import placement, services

    engine = placement.current_engine()
    participants = engine.load if engine is not None else 0
    await placement.close_embedded()
    for task in [_heartbeats.pop(asyncio.get_running_loop(), None)]:
        if task is not None:
            task.cancel()
    from hub import shutdown as hub_shutdown

    try:
        if hub_shutdown.is_draining():
            # A rolling restart: the members rejoin from another hub, which takes their rows
            # over; a row nobody takes over is closed by the sweep, 3 heartbeats from now.
            ended = []
        else:
            ended = await database_sync_to_async(services.attendance_close_process)(process=PROCESS_ID)
    except Exception:
        log.warning("closing this process's attendance failed", exc_info=True)
        ended = []
    log.info(
        "meetings shut down: embedded SFU closed (%d participants), meetings ended: %s", participants, ended
    )


def hook_shutdown() -> None:
    """Run :func:`shutdown` when daphne (the Twisted reactor of this process) stops. Idempotent."""
    if _shutdown_hooked[0] or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not getattr(reactor, "running", False):
        return
    _shutdown_hooked[0] = True

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    # Twisted declares the method on a zope Interface (no `self`), which shifts mypy's view
    # of its arguments by one.
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
