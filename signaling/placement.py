"""Where a meeting's SFU runs, and how a consumer reaches it.

Two placements share one interface, :class:`SfuLink` (send a command, is the
SFU alive), and one engine (:class:`signaling.engine.MeetingEngine`):

- **embedded** (the default without Redis): one engine and one ``Sfu`` per
  event loop of the hub process; commands are handed to it directly and its
  events go straight to the local consumer registered under ``reply_to``.
- **workers** (``HIRFA_SFU_PLACEMENT=workers``, needs Redis): ``hirfa sfu``
  processes, each registered in Redis with a heartbeat and its load. A
  meeting lives on one worker (``Meeting.worker``), chosen by load at its
  first join and chosen again when that worker stops heartbeating; with
  ``HIRFA_SFU_SPREAD_LOAD``, a big meeting's new participants go to other
  workers once its worker is loaded (`signaling.spread`). Commands go
  to the worker's channel on the channel layer (``{"type": "sfu.command", ...}``);
  events come back to the consumer's channel as ``{"type": "sfu.event", ...}``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.translation import gettext as _
from pydantic import ValidationError

from hub import realtime
from hub.errors import ErrorCode, HirfaError
from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
WORKERS_KEY = "hirfa:sfu:workers"
ALIVE_PREFIX = "hirfa:sfu:alive:"


class SfuLink(Protocol):
    """The consumer's handle on the SFU that holds its meeting."""

    worker: str

    async def send(self, command: m.Command) -> None:
        """Hand a command to the meeting's engine (never waits for its result)."""

    async def alive(self) -> bool:
        """Whether the SFU still runs (a dead one means every participant rejoins)."""


def sfu_config() -> SfuConfig:
    """The SFU configuration from the settings."""
    return SfuConfig(
        announced_addresses=tuple(settings.HIRFA_SFU_ANNOUNCE_ADDRESSES),
        bind_address=settings.HIRFA_SFU_BIND_ADDRESS,
        port_min=settings.HIRFA_SFU_PORT_MIN,
        port_max=settings.HIRFA_SFU_PORT_MAX,
        audio_slots=settings.HIRFA_SFU_AUDIO_SLOTS,
        video_slots=settings.HIRFA_SFU_VIDEO_SLOTS,
        pipe_address=settings.HIRFA_SFU_PIPE_ADDRESS,
        pipe_port=settings.HIRFA_SFU_PIPE_PORT,
    )


def worker_timeout() -> float:
    return 3 * float(settings.HIRFA_SFU_HEARTBEAT_SECONDS)


class AliveKeeper:
    """A worker's alive key, kept from a thread of its own while the worker's loop still turns.

    The worker's event loop forwards media; in a meeting of a hundred it can be busy for longer
    than the 3 heartbeats after which sockets count the worker as dead (7.4 s was seen), and a
    worker counted dead sends all its participants to rejoin: a storm that loads it more. The
    thread refreshes the key every heartbeat as long as the loop has called `tick` within
    `stuck_after` seconds. A killed process (no thread) or a loop stuck for that long lets the
    key expire after `worker_timeout()`, as before.
    """

    def __init__(self, worker_id: str, *, stuck_after: float) -> None:
        self.worker_id = worker_id
        self.stuck_after = stuck_after
        self.ticked = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sfu-alive-{worker_id}", daemon=True)

    def tick(self) -> None:
        """The loop still turns (called from it at each heartbeat)."""
        self.ticked = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing (before the worker unregisters, so the key is not set again)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from hub.redis_client import redis_client

        client = redis_client(asynchronous=False)
        every = float(settings.HIRFA_SFU_HEARTBEAT_SECONDS)
        try:
            while not self._stop.is_set():
                if time.monotonic() - self.ticked <= self.stuck_after:
                    try:
                        client.set(ALIVE_PREFIX + self.worker_id, "1", px=int(worker_timeout() * 1000))
                    except Exception:
                        log.warning("SFU worker %s: alive key not refreshed", self.worker_id, exc_info=True)
                self._stop.wait(every)
        finally:
            client.close()


# --- embedded ------------------------------------------------------------------------

EventHandler = Callable[[m.Event], None]
_local_handlers: dict[str, EventHandler] = {}
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MeetingEngine] = (
    weakref.WeakKeyDictionary()
)


def register_local(reply_to: str, handler: EventHandler) -> None:
    """Deliver the embedded engine's events for ``reply_to`` to ``handler``."""
    _local_handlers[reply_to] = handler


def unregister_local(reply_to: str) -> None:
    _local_handlers.pop(reply_to, None)


async def _deliver_local(reply_to: str, event: m.Event) -> None:
    handler = _local_handlers.get(reply_to)
    if handler is not None:
        handler(event)


def embedded_engine() -> MeetingEngine:
    """The engine of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    engine = _engines.get(loop)
    if engine is None:
        engine = MeetingEngine(
            Sfu(sfu_config()),
            reply=_deliver_local,
            publish=realtime.publish_now,
            max_participants=settings.HIRFA_MEETING_MAX_PARTICIPANTS,
            connect_timeout=settings.HIRFA_MEETING_CONNECT_SECONDS,
        )
        _engines[loop] = engine
        for callback in _on_engine_created.values():
            callback()
    return engine


_on_engine_created: dict[str, Callable[[], None]] = {}


def on_engine_created(name: str, callback: Callable[[], None]) -> None:
    """Call `callback()` each time a loop's embedded engine is made (liveness hooks the
    process's shutdown then). Idempotent per name."""
    _on_engine_created[name] = callback


def current_engine() -> MeetingEngine | None:
    """The running loop's engine if it has one (never creates it)."""
    return _engines.get(asyncio.get_running_loop())


#: Loops whose embedded engine was closed (shutdown): what their sockets still send goes nowhere.
_closed: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


async def close_embedded() -> None:
    """Close the running loop's engine and every peer connection in it (shutdown, tests);
    commands sent on this loop afterwards are dropped, not given to a new engine."""
    loop = asyncio.get_running_loop()
    _closed.add(loop)
    engine = _engines.pop(loop, None)
    if engine is not None:
        await engine.close()


class EmbeddedLink:
    worker = EMBEDDED

    async def send(self, command: m.Command) -> None:
        if asyncio.get_running_loop() in _closed:
            return  # shut down: a socket still closing says it left (the SFU went with its peer)
        embedded_engine().submit(command)

    async def alive(self) -> bool:
        return True


# --- workers ---------------------------------------------------------------------------


def worker_channel(worker_id: str) -> str:
    return f"sfu.{worker_id}"


_redis_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _redis() -> Any:
    """The asyncio Redis client of the running loop."""
    from hub.redis_client import redis_client

    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        client = redis_client()
        _redis_clients[loop] = client
    return client


async def worker_register(*, worker_id: str, load: int, ports: int = 0) -> None:
    """Announce (or refresh) a worker, its load and the UDP ports its peers hold; it counts
    as dead after 3 heartbeats."""
    client = _redis()
    info = m.WorkerInfo(channel=worker_channel(worker_id), load=load, ports=ports, at=time.time()).model_dump_json()
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(WORKERS_KEY, worker_id, info)
        pipe.set(ALIVE_PREFIX + worker_id, "1", px=int(worker_timeout() * 1000))
        await pipe.execute()


async def worker_unregister(*, worker_id: str) -> None:
    client = _redis()
    async with client.pipeline(transaction=False) as pipe:
        pipe.hdel(WORKERS_KEY, worker_id)
        pipe.delete(ALIVE_PREFIX + worker_id)
        await pipe.execute()


async def worker_statuses() -> dict[str, tuple[m.WorkerInfo, bool]]:
    """Each registered worker's last announcement and whether it is alive now (a worker
    whose announcement does not validate is left out, and logged)."""
    client = _redis()
    statuses = {}
    for raw_id, raw_info in (await client.hgetall(WORKERS_KEY)).items():
        worker_id = raw_id.decode()
        try:
            info = m.WorkerInfo.model_validate_json(raw_info)
        except ValidationError:
            log.warning("SFU worker %s announced %.200r; skipped", worker_id, raw_info)
            continue
        statuses[worker_id] = (info, bool(await client.exists(ALIVE_PREFIX + worker_id)))
    return statuses


async def worker_alive(worker_id: str) -> bool:
    return bool(await _redis().exists(ALIVE_PREFIX + worker_id))


async def worker_choose() -> str | None:
    """The live worker with the least load (forgetting dead ones), or None."""
    client = _redis()
    workers = await client.hgetall(WORKERS_KEY)
    best: tuple[int, str] | None = None
    for raw_id, raw_info in workers.items():
        worker_id = raw_id.decode()
        if not await client.exists(ALIVE_PREFIX + worker_id):
            await client.hdel(WORKERS_KEY, worker_id)
            continue
        try:
            load = m.WorkerInfo.model_validate_json(raw_info).load
        except ValidationError:
            log.warning("SFU worker %s announced %.200r; skipped", worker_id, raw_info)
            continue
        if best is None or (load, worker_id) < best:
            best = (load, worker_id)
    return best[1] if best else None


class WorkerLink:
    def __init__(self, worker: str) -> None:
        self.worker = worker

    async def send(self, command: m.Command) -> None:
        layer = get_channel_layer()
        assert layer is not None
        # Validated again on arrival (`messages.command_from`, in the worker).
        await layer.send(worker_channel(self.worker), {"type": "sfu.command", "command": command.model_dump(mode="json")})

    async def alive(self) -> bool:
        try:
            return await worker_alive(self.worker)
        except Exception:  # Redis unreachable: do not declare the worker dead for it
            log.warning("could not check SFU worker %s", self.worker, exc_info=True)
            return True


async def _worker_load(worker_id: str) -> int | None:
    raw = await _redis().hget(WORKERS_KEY, worker_id)
    try:
        return m.WorkerInfo.model_validate_json(raw).load if raw else None
    except ValidationError:
        return None


async def _spread_to(worker: str) -> str:
    """The worker for a new participant of a meeting held by ``worker``: that one, unless
    it holds ``HIRFA_SFU_SPREAD_LOAD`` participants or more and another holds fewer (the
    meeting then spreads over both: `signaling.spread`)."""
    threshold = settings.HIRFA_SFU_SPREAD_LOAD
    if threshold <= 0:
        return worker
    load = await _worker_load(worker)
    if load is None or load < threshold:
        return worker
    chosen = await worker_choose()
    if chosen is None or chosen == worker:
        return worker
    other = await _worker_load(chosen)
    return chosen if other is not None and other < load else worker


async def link_for(*, meeting_id: int, worker: str) -> SfuLink:
    """The link to the SFU holding the meeting, placing it on a worker if needed.

    Raises ``sfu_unavailable`` when no worker is alive.
    """
    if settings.HIRFA_SFU_PLACEMENT == EMBEDDED:
        return EmbeddedLink()
    from signaling import services

    if worker and worker != EMBEDDED and await worker_alive(worker):
        return WorkerLink(await _spread_to(worker))
    chosen = await worker_choose()
    if chosen is None:
        raise HirfaError(ErrorCode.SFU_UNAVAILABLE, _("No media server is available; try again."))
    assigned = await database_sync_to_async(services.meeting_worker_assign)(
        meeting_id=meeting_id, expected=worker, worker=chosen
    )
    if assigned != chosen and not await worker_alive(assigned):
        raise HirfaError(ErrorCode.SFU_UNAVAILABLE, _("No media server is available; try again."))
    return WorkerLink(assigned)


# --- a big meeting on several workers (`signaling.spread`) -----------------------------

MEETING_PREFIX = "hirfa:sfu:meeting:"


class RedisPeerBus:
    """The workers' `signaling.spread.PeerBus`: a Redis hash per meeting (worker id → its
    pipe address) and the channel layer (``{"type": "sfu.peer", "message": ...}``)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker

    async def enter(self, meeting_id: int, address: tuple[str, int]) -> dict[str, tuple[str, int]]:
        client = _redis()
        key = f"{MEETING_PREFIX}{meeting_id}"
        await client.hset(key, self.worker, f"{address[0]}:{address[1]}")
        others: dict[str, tuple[str, int]] = {}
        for raw_worker, raw_address in (await client.hgetall(key)).items():
            worker = raw_worker.decode()
            if worker == self.worker:
                continue
            if not await worker_alive(worker):
                await client.hdel(key, worker)
                continue
            host, _, port = raw_address.decode().rpartition(":")
            if host and port.isdigit():
                others[worker] = (host, int(port))
        return others

    async def leave(self, meeting_id: int) -> None:
        await _redis().hdel(f"{MEETING_PREFIX}{meeting_id}", self.worker)

    async def send(self, worker: str, message: m.PeerMessage) -> None:
        layer = get_channel_layer()
        assert layer is not None
        # Validated again on arrival (`messages.peer_message_from`, in the worker).
        await layer.send(worker_channel(worker), {"type": "sfu.peer", "message": message.model_dump(mode="json")})
