"""``hirfa sfu``: SFU worker processes reached through the channel layer.

Each worker process runs one :class:`~signaling.engine.MeetingEngine` on its
own ``Sfu``, receives commands on its channel ``sfu.<worker id>``, sends
events back to each consumer's channel, publishes meeting state through
``hub.realtime`` and refreshes its registration (heartbeat and load) in Redis.
Stopped with SIGTERM or SIGINT, it unregisters and closes every peer
connection; killed, it stops heartbeating and the consumers tell its
participants to rejoin (``meeting_rejoin``), which places their meetings on
another worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from typing import Any

log = logging.getLogger(__name__)

#: Retries of a reply to a socket after a transient Redis error, and the first pause between
#: two tries (doubled each time: 0.05, 0.1, 0.2 s).
REPLY_RETRIES = 3
REPLY_PAUSE = 0.05


async def reply_over_layer(layer: Any, reply_to: str, event: Any, *, pause: float = REPLY_PAUSE) -> None:
    """Send ``event`` (a `messages.Event`) to the socket at ``reply_to`` over the channel layer.

    A transient Redis error (a connection reset or timed out, Redis loading or failing over)
    is retried up to ``REPLY_RETRIES`` times: a lost ``joined`` or offer leaves a member
    waiting on a meeting that never comes. Anything else (a full channel: the socket reads
    nothing) and the last error are raised, for the engine to log: the bus is best-effort.
    """
    import redis.exceptions

    message = {"type": "sfu.event", "event": event.model_dump(mode="json")}
    for retry in range(REPLY_RETRIES + 1):
        try:
            await layer.send(reply_to, message)
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            if retry == REPLY_RETRIES:
                raise
            log.info("SFU worker: reply %s to %s failed; retrying", getattr(event, "kind", "?"), reply_to)
        await asyncio.sleep(pause * 2**retry)


async def channel_read(layer: Any, channel: str, engine: Any, *, worker_id: str) -> None:
    """Hand each command and peer message arriving on the worker's ``channel`` to ``engine``
    (a `MeetingEngine`), in the order sent; malformed ones are logged and dropped. Never returns.

    Every message queued is read at once (`ResilientRedisChannelLayer.receive_queued`, where
    the layer has it) and submitted before the engine runs again: the leaves of a meeting
    emptying are all known before its first departures are handled, so nobody leaving is sent
    what his slots now carry (one message a read, they came in about as fast as handled)."""
    from pydantic import ValidationError

    from signaling import messages

    receive_queued = getattr(layer, "receive_queued", None)
    while True:
        batch = await receive_queued(channel) if receive_queued is not None else [await layer.receive(channel)]
        for message in batch:
            if message.get("type") == "sfu.peer":
                try:
                    engine.peer_message(messages.peer_message_from(message.get("message")))
                except ValidationError:
                    log.warning("SFU worker %s: a malformed peer message was dropped: %.200r", worker_id, message)
                continue
            if message.get("type") != "sfu.command":
                continue
            try:
                command = messages.command_from(message.get("command"))
            except ValidationError:
                log.warning("SFU worker %s: a malformed command was dropped: %.200r", worker_id, message)
                continue
            engine.submit(command)


async def run_worker(
    *, worker_id: str | None = None, stop: asyncio.Event | None = None, ops_port: int | None = None
) -> None:
    """Serve meetings until ``stop`` is set (or SIGTERM/SIGINT); frees everything on the way out.

    With `ops_port`, serves ``/healthz``, ``/readyz`` and ``/metrics`` on it (hub/ops_server.py).
    """
    from channels.layers import get_channel_layer
    from django.conf import settings

    from hub import metrics, realtime
    from hub.ops_server import ops_start
    from hub.protocol import MeetingState
    from hub.redis_client import raise_if_cancelled
    from signaling import messages, placement
    from signaling.engine import MeetingEngine
    from signaling.sfu import Sfu
    from signaling.sfu_metrics import sfu_metric_rows

    layer = get_channel_layer()
    if layer is None or not settings.REDIS_URL:
        raise SystemExit("hirfa sfu: needs REDIS_URL (the workers are reached through Redis)")
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    channel = placement.worker_channel(worker_id)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass

    async def reply(reply_to: str, event: messages.Event) -> None:
        # Validated again on arrival (`messages.event_from`, in the socket).
        await reply_over_layer(layer, reply_to, event)

    def publish(group: str, frame: MeetingState) -> None:
        # The sync Redis client would block this loop's media; a thread keeps it smooth.
        loop.run_in_executor(None, realtime.publish_now, group, frame)

    engine = MeetingEngine(
        Sfu(placement.sfu_config()),
        reply=reply,
        publish=publish,
        max_participants=settings.HIRFA_MEETING_MAX_PARTICIPANTS,
        connect_timeout=settings.HIRFA_MEETING_CONNECT_SECONDS,
        # A big meeting on several workers (signaling/spread.py); off: each meeting on one.
        peers=placement.RedisPeerBus(worker_id) if settings.HIRFA_SFU_SPREAD_LOAD > 0 else None,
    )

    keeper = placement.AliveKeeper(worker_id, stuck_after=settings.HIRFA_SFU_STUCK_SECONDS)

    async def heartbeat() -> None:
        while True:
            raise_if_cancelled()  # an announcement's write may have dropped the cancel that stops the worker
            keeper.tick()
            try:
                stats = engine.stats()
                await placement.worker_register(worker_id=worker_id, load=stats.participants, ports=stats.ports)
                for peer in engine.peer_workers():  # a big meeting's other workers (signaling/spread.py)
                    if not await placement.worker_alive(peer):
                        for meeting_id in engine.peer_gone(peer):
                            await placement.RedisPeerBus(peer).leave(meeting_id)
            except Exception:
                log.warning("SFU worker %s: heartbeat failed", worker_id, exc_info=True)
            await asyncio.sleep(settings.HIRFA_SFU_HEARTBEAT_SECONDS)

    metrics.collector_register(
        "sfu",
        metrics.FunctionCollector(
            sfu_metric_rows(engine.sfu, worker_id=worker_id, addresses=len(settings.HIRFA_SFU_ANNOUNCE_ADDRESSES))
        ),
    )
    ops = ops_start(ops_port)
    await placement.worker_register(worker_id=worker_id, load=0)
    print(f"hirfa sfu: worker {worker_id} on channel {channel}", flush=True)
    keeper.start()
    tasks = [loop.create_task(heartbeat()), loop.create_task(channel_read(layer, channel, engine, worker_id=worker_id))]
    waiter = loop.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        if ops is not None:
            ops.set_draining()
        for task in [waiter, *tasks]:
            task.cancel()
        await asyncio.gather(*tasks, waiter, return_exceptions=True)
        await loop.run_in_executor(None, keeper.stop)
        try:
            await placement.worker_unregister(worker_id=worker_id)
        except Exception:
            log.warning("SFU worker %s: unregister failed", worker_id, exc_info=True)
        await engine.close()
        if ops is not None:
            ops.stop()
        print(f"hirfa sfu: worker {worker_id} stopped", flush=True)


async def status_lines() -> list[str]:
    """One line per registered worker: alive or not, participants, UDP ports in use, and
    how long ago it last announced itself."""
    import time

    from signaling import placement

    lines = []
    for worker_id, (info, alive) in sorted((await placement.worker_statuses()).items()):
        lines.append(
            f"{worker_id}\t{'alive' if alive else 'dead'}\tparticipants={info.load}\tports={info.ports}"
            f"\tseen={time.time() - info.at:.0f}s ago"
        )
    return lines


def print_status() -> int:
    """``hirfa sfu --status``: the workers' health, one line each; 1 when none is alive."""
    lines = asyncio.run(status_lines())
    print("\n".join(lines) if lines else "no SFU worker registered", flush=True)
    return 0 if any("\talive\t" in line for line in lines) else 1


def main(*, processes: int, worker_id: str | None = None, ops_port: int = 0) -> int:
    """Run ``processes`` workers: this process alone for 1, else one child process each
    (the i-th on operations port `ops_port` + i, when one is given)."""
    if processes <= 1:
        asyncio.run(run_worker(worker_id=worker_id, ops_port=ops_port))
        return 0
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "sfu", "--processes", "1",
             "--ops-port", str(ops_port + index if ops_port else 0)]
        )
        for index in range(processes)
    ]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        status = max(status, child.wait())
    return status
