"""The one place that publishes live events, and the per-process fan-out that
delivers them to local sockets.

Why not `channel_layer.group_send` for chat: every delivery through the
channel layer costs a Redis round trip per consumer and a thread hop per
message in Channels' dispatch. Here each process holds one subscription per
group (one Redis pub/sub channel in production, nothing in the embedded
default), the frame is encoded once by the publisher, and the text is handed
to each local socket's bounded outbox. Like the channel layer, this bus is
best-effort: the database is the log, and clients fill gaps from it.

Groups are named by kind and id: ``room.<id>``, ``user.<id>``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import weakref
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction

from hub.protocol import ServerFrame, encode

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "hirfa:"
SWITCH_INTERVAL = 0.0005


class Subscriber(Protocol):
    def deliver(self, group: str, text: str) -> None:
        """Take one encoded frame published to `group`; must not block."""

    def bus_lost(self) -> None:
        """The bus may have dropped events: the subscriber must resynchronise."""


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


# --- publishing --------------------------------------------------------------


def publish_on_commit(group: str, frame: ServerFrame | str) -> None:
    """Publish `frame` to `group` once the current transaction commits (at once outside one).

    A rolled-back write never emits its event.
    """
    text = frame if isinstance(frame, str) else encode(frame)
    transaction.on_commit(lambda: publish_now(group, text))


def publish_now(group: str, text: str) -> None:
    """Publish already-encoded text; safe from any thread."""
    try:
        _backend().publish(group, text)
    except Exception:  # the database has it; clients will fetch the gap
        log.exception("publishing to %s failed", group)


# --- backends ------------------------------------------------------------------

_fanouts: "weakref.WeakSet[Fanout]" = weakref.WeakSet()
_fanouts_lock = threading.Lock()
_backend_instance: "LocalBackend | RedisBackend | None" = None


class LocalBackend:
    """One process: hand the text to every event loop's fan-out."""

    name = "local"

    def publish(self, group: str, text: str) -> None:
        with _fanouts_lock:
            fanouts = list(_fanouts)
        for fanout in fanouts:
            if fanout.has(group):
                fanout.loop.call_soon_threadsafe(fanout.dispatch, group, text)


class RedisBackend:
    """Several processes: one Redis PUBLISH per event, one subscription per group per process."""

    name = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def publish(self, group: str, text: str) -> None:
        self._client.publish(CHANNEL_PREFIX + group, text)


def _backend() -> LocalBackend | RedisBackend:
    global _backend_instance
    if _backend_instance is None:
        url = getattr(settings, "REDIS_URL", "")
        _backend_instance = RedisBackend(url) if url else LocalBackend()
    return _backend_instance


def reset_backend() -> None:
    """Forget the chosen backend (tests switch between the embedded and the Redis one)."""
    global _backend_instance
    _backend_instance = None


# --- fan-out ---------------------------------------------------------------------


class Fanout:
    """The local subscribers of each group, for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # One publish to a large group is a long burst on the event loop thread; with
        # the default 5 ms switch interval the database thread (services) then waits
        # up to 5 ms for the GIL after each query. Lowered once per process.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.loop = loop
        self.groups: dict[str, set[Subscriber]] = {}
        self._redis_url = getattr(settings, "REDIS_URL", "") if _backend().name == "redis" else ""
        self._pubsub = None
        self._reader: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()

    def has(self, group: str) -> bool:
        return group in self.groups

    def dispatch(self, group: str, text: str) -> None:
        for sub in tuple(self.groups.get(group, ())):
            try:
                sub.deliver(group, text)
            except Exception:
                log.exception("delivery to a local subscriber failed")

    async def join(self, group: str, sub: Subscriber) -> None:
        """Add `sub` to `group`; when this returns, every later publish reaches it."""
        subs = self.groups.get(group)
        if subs is not None:
            subs.add(sub)
            if self._redis_url and group in self._confirmed:
                await self._wait_confirmed(group)
            return
        self.groups[group] = {sub}
        if self._redis_url:
            async with self._lock:
                await self._ensure_reader()
                event = self._confirmed.setdefault(group, asyncio.Event())
                assert self._pubsub is not None
                await self._pubsub.subscribe(CHANNEL_PREFIX + group)
            await self._wait_confirmed(group)
            _ = event

    async def _wait_confirmed(self, group: str) -> None:
        event = self._confirmed.get(group)
        if event is not None:
            try:
                await asyncio.wait_for(event.wait(), timeout=5)
            except asyncio.TimeoutError:
                log.warning("no subscribe confirmation for %s", group)

    async def leave(self, group: str, sub: Subscriber) -> None:
        subs = self.groups.get(group)
        if not subs:
            return
        subs.discard(sub)
        if subs:
            return
        del self.groups[group]
        if self._redis_url and self._pubsub is not None:
            self._confirmed.pop(group, None)
            try:
                async with self._lock:
                    await self._pubsub.unsubscribe(CHANNEL_PREFIX + group)
            except Exception:
                log.warning("unsubscribe from %s failed", group, exc_info=True)

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        import redis.asyncio as aioredis

        # No socket timeout: an idle subscription must not die after 5 s (redis-py 8).
        client = aioredis.Redis.from_url(
            self._redis_url, socket_timeout=None, socket_connect_timeout=5, health_check_interval=30
        )
        self._pubsub = client.pubsub()
        self._reader = self.loop.create_task(self._read(), name="hirfa-bus-reader")

    async def _read(self) -> None:
        assert self._pubsub is not None
        pubsub = self._pubsub
        prefix_len = len(CHANNEL_PREFIX)
        try:
            while True:
                if not pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                msg = await pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
                if msg is None:
                    continue
                kind = msg["type"]
                channel = msg["channel"].decode()[prefix_len:]
                if kind == "message":
                    self.dispatch(channel, msg["data"].decode())
                elif kind == "subscribe":
                    event = self._confirmed.get(channel)
                    if event is not None:
                        event.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the bus subscription failed; every local socket must resynchronise")
            self._pubsub = None
            self._confirmed.clear()
            groups = dict(self.groups)
            self.groups.clear()
            seen: set[int] = set()
            for subs in groups.values():
                for sub in subs:
                    if id(sub) not in seen:
                        seen.add(id(sub))
                        sub.bus_lost()


_loop_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout]" = (
    weakref.WeakKeyDictionary()
)


def fanout() -> Fanout:
    """The fan-out of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _loop_fanouts.get(loop)
    if found is None:
        found = Fanout(loop)
        _loop_fanouts[loop] = found
        with _fanouts_lock:
            _fanouts.add(found)
    return found


# --- writing to local sockets ------------------------------------------------------
#
# Under daphne, the ASGI `send` of a websocket passes each frame through three
# coroutine layers (Channels' session wrapper, which reads the session on every
# call, daphne's server, its protocol) and frames the same text once per socket.
# For live events that is most of the cost of a delivery. `DirectSocket` reaches
# the autobahn protocol behind daphne's `send` (a functools.partial of
# `Server.handle_reply` bound to the protocol), frames each text once for all
# sockets with autobahn's public `prepareMessage`/`sendPreparedMessage`, and
# reads how many bytes the Twisted transport still holds, which is the only
# place a slow reader shows: daphne's `send` never blocks. Everything here is
# duck-typed and checked once per socket; when anything is missing (another
# server, the test communicator, a later daphne) `DirectSocket.find` answers
# None and the consumer keeps using the ASGI `send`.

SEND_BACKLOG_MAX_BYTES_DEFAULT = 1 << 20


def send_backlog_max_bytes() -> int:
    """Bytes a socket's transport may hold unsent before the socket is closed with 4010."""
    return int(getattr(settings, "HIRFA_SEND_BACKLOG_MAX_BYTES", SEND_BACKLOG_MAX_BYTES_DEFAULT))


class _PreparedCache:
    """The last text framed, so that one publish is framed once for every local socket."""

    __slots__ = ("text", "factory", "prepared")

    def __init__(self) -> None:
        self.text: str | None = None
        self.factory: object = None
        self.prepared: object = None


_prepared = _PreparedCache()


class DirectSocket:
    """Writes whole text frames straight to one daphne websocket.

    Guarantees: `write` either hands the complete frame to the transport (True)
    or does nothing (False, the socket is not open); frames keep their order;
    `backlog` is the number of bytes accepted but not yet written to the
    kernel, or None when it cannot be read.
    """

    __slots__ = ("protocol", "server", "_open_state", "_transport")

    def __init__(self, server: object, protocol: object, open_state: int) -> None:
        self.server = server
        self.protocol = protocol
        self._open_state = open_state
        self._transport: object = None

    @classmethod
    def find(cls, send: object) -> "DirectSocket | None":
        """The daphne websocket behind an ASGI `send` callable, or None."""
        seen = 0
        # Unwrap middleware that keep the next `send` as `real_send` (Channels' sessions).
        while seen < 5 and not isinstance(send, functools.partial):
            inner = getattr(getattr(send, "__self__", None), "real_send", None)
            if inner is None:
                return None
            send = inner
            seen += 1
        if not isinstance(send, functools.partial) or len(send.args) != 1 or send.keywords:
            return None
        server = getattr(send.func, "__self__", None)
        protocol = send.args[0]
        if getattr(send.func, "__name__", "") != "handle_reply" or server is None:
            return None
        if type(server).__module__.split(".")[0] != "daphne":
            return None
        factory = getattr(protocol, "factory", None)
        open_state = getattr(protocol, "STATE_OPEN", None)
        needed = ("sendPreparedMessage", "state", "transport")
        if not isinstance(open_state, int) or any(not hasattr(protocol, n) for n in needed):
            return None
        if not callable(getattr(factory, "prepareMessage", None)):
            return None
        # Compression would need a frame per socket; daphne does not negotiate it today.
        if getattr(protocol, "_perMessageCompress", None) is not None:
            return None
        if not isinstance(getattr(server, "connections", None), dict):
            return None
        return cls(server, protocol, open_state)

    def set_no_delay(self) -> None:
        """Turn Nagle's algorithm off: small frames must not wait for the peer's delayed ACK.

        Without it, a second small frame written before the first is acknowledged
        (an `ack` after the `message` it announces) waits up to 40 ms.
        """
        transport = getattr(self.protocol, "transport", None)
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if callable(set_no_delay):
            try:
                set_no_delay(True)
            except OSError:
                pass

    def is_open(self) -> bool:
        protocol: Any = self.protocol
        if protocol.state != self._open_state:
            return False
        conn = self.server.connections.get(protocol)  # type: ignore[attr-defined]
        return conn is not None and not conn.get("disconnected")

    def write(self, text: str) -> int | None:
        """Hand `text` to the socket; None when it is not open, else the bytes still held unsent.

        Reading the backlog here, where the transport is at hand anyway, saves a
        second walk per socket per event (it was an eighth of the fan-out's time).
        """
        if not self.is_open():
            return None
        protocol: Any = self.protocol
        cache = _prepared
        factory = protocol.factory
        if cache.text is not text or cache.factory is not factory:
            cache.prepared = factory.prepareMessage(text.encode("utf-8"), isBinary=False)
            cache.text = text
            cache.factory = factory
        prepared: Any = cache.prepared
        data = getattr(prepared, "payloadHybi", None)
        transport = self._plain_transport()
        if isinstance(data, bytes) and transport is not None and not transport.disconnecting:
            held = self._held(transport)
            if held == 0 and not protocol.send_queue:
                # Nothing is queued: write to the kernel now, as asyncio's transports do,
                # instead of registering for writability and writing on the next turn
                # (two epoll_ctl calls and a reactor callback per socket per event).
                try:
                    sent = transport.socket.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = 0  # Twisted's own write below meets the error and closes the socket
                if sent < len(data):
                    transport.write(data[sent:])
                    return len(data) - sent
                return 0
            protocol.sendPreparedMessage(prepared)
            return held + len(data)
        protocol.sendPreparedMessage(prepared)
        backlog = self.backlog()
        return 0 if backlog is None else backlog

    def _plain_transport(self) -> Any:
        """The TCP transport when it is a plain (not TLS) Twisted socket transport, else None."""
        transport = self._transport
        if transport is None:
            transport = getattr(self.protocol, "transport", None)
            ok = (
                transport is not None
                and not getattr(transport, "TLS", True)
                and hasattr(transport, "socket")
                and callable(getattr(transport.socket, "send", None))
                and all(hasattr(transport, n) for n in ("dataBuffer", "offset", "_tempDataLen"))
                and hasattr(self.protocol, "send_queue")
            )
            transport = transport if ok else False
            self._transport = transport
        return transport or None

    @staticmethod
    def _held(transport: Any) -> int:
        return len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)

    def backlog(self) -> int | None:
        """Bytes held by the Twisted transport (and autobahn's own queue) not yet sent."""
        protocol: Any = self.protocol
        transport = protocol.transport
        # TLS and other wrappers keep the socket's transport one level down.
        for _ in range(3):
            if transport is None:
                return None
            if hasattr(transport, "dataBuffer"):
                break
            transport = getattr(transport, "transport", None)
        else:
            return None
        try:
            held = len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)
            queue = getattr(protocol, "send_queue", None)
            if queue:
                held += sum(len(chunk) for chunk, _ in queue)
        except (AttributeError, TypeError, ValueError):
            return None
        return held
