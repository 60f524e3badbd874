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
import logging
import threading
import weakref
from typing import Protocol

from django.conf import settings
from django.db import transaction

from hub.protocol import ServerFrame, encode

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "hirfa:"


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
