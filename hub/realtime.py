"""The one place that publishes live events, and the per-process fan-out that
delivers them to local sockets.

Why not `channel_layer.group_send` for chat: every delivery through the
channel layer costs a Redis round trip per consumer and a thread hop per
message in Channels' dispatch. Here each process holds one subscription per
group (one Redis pub/sub channel in production, nothing in the embedded
default), the frame is encoded once by the publisher, and the text is handed
to each local socket's bounded outbox. Like the channel layer, this bus is
best-effort: the database is the log, and clients fill gaps from it.

Publishing never blocks: from any thread it hands the text to the process's
event loop, where one task writes queued events to Redis in pipelines. When
Redis fails (a restart, a stall longer than the command timeout), the
fan-out *degrades*: events published in this process still reach its own
sockets, joins and leaves are only recorded, and a task reconnects with
backoff. Once the bus is back, every local subscriber is told (`bus_resumed`,
which sockets turn into a `resync` frame) and the rooms this process
published to while cut off get a `resync` through Redis, so that members on
other processes fetch what the bus dropped. Sends never depend on Redis.

Groups are named by kind and id: ``room.<id>``, ``user.<id>``. Each event
carries its kind (the frame's ``type``) and, for a message's change, its ``rev``
as data beside the text (`Event`), so that a socket decides what to do with it
without reading the text; on Redis they travel as a one-line header.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from django.conf import settings
from django.db import transaction

from hub import metrics
from hub.protocol import ResyncOut, ServerFrame, encode

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "hirfa:"
SWITCH_INTERVAL = 0.0005
# Events waiting for Redis beyond this are dropped and the bus counts as lost (resync follows).
PUBLISH_QUEUE_MAX = 20000
PUBLISH_BATCH_MAX = 500
#: Channels in one SUBSCRIBE of groups joined together (as many as `_recover` sends at once).
SUBSCRIBE_AT_ONCE = 500
RECONNECT_FIRST_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# A room's changes reach a process in rev order: one that comes ahead of a rev still on its
# way (two posts committed at once, by two threads or two processes) is held back this long
# at most, then delivered anyway (the earlier one was lost; clients fetch it).
REORDER_HOLD_SECONDS = 0.25


class Event(NamedTuple):
    """One live event: what kind it is, the text a socket writes, and the ``rev`` of the
    message change it carries (what a room's resume covers), if any."""

    #: The frame's ``type`` (``message``, ``presence_delta``, …), or ``revoke`` (hub.revocation).
    kind: str
    text: str
    rev: int | None = None

    @classmethod
    def of(cls, frame: ServerFrame) -> Event:
        """The event of a server frame, encoded once here for every socket."""
        kind, rev = getattr(frame, "type", None), getattr(frame, "rev", None)
        if not isinstance(kind, str):
            raise TypeError(f"{type(frame).__name__} has no type: it is part of a frame, not one")
        return cls(kind, encode(frame), rev if isinstance(rev, int) else None)

    def wire(self) -> str:
        """The event as one Redis message: a header line ``<kind>[ <rev>]``, then the text."""
        head = self.kind if self.rev is None else f"{self.kind} {self.rev}"
        return f"{head}\n{self.text}"

    @classmethod
    def from_wire(cls, data: str) -> Event | None:
        """The event in one Redis message, or None when it is not one."""
        head, newline, text = data.partition("\n")
        kind, _, rev = head.partition(" ")
        if not newline or not kind:
            return None
        try:
            return cls(kind, text, int(rev) if rev else None)
        except ValueError:
            return None


class Subscriber(Protocol):
    def deliver(self, group: str, event: Event) -> None:
        """Take one event published to `group`; must not block."""

    def bus_resumed(self) -> None:
        """The bus was cut off and is back: events may have been lost, resynchronise."""


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


# Called once per event of a kind delivered on this process, before its subscribers get it,
# whichever way they do (a lane writes to a socket without its parts seeing the event).
_kind_watchers: dict[str, list[Callable[[str, Event], None]]] = {}


def watch_kind(kind: str, watcher: Callable[[str, Event], None]) -> None:
    """Have `watcher(group, event)` called for every event of `kind` this process delivers."""
    _kind_watchers.setdefault(kind, []).append(watcher)


def room_of(group: str) -> int | None:
    """The room of a room's group (`room_group`), else None."""
    if group.startswith("room."):
        try:
            return int(group[5:])
        except ValueError:
            return None
    return None


# --- publishing --------------------------------------------------------------


def publish_on_commit(group: str, frame: ServerFrame | Event) -> None:
    """Publish `frame` to `group` once the current transaction commits (at once outside one).

    A rolled-back write never emits its event.
    """
    event = frame if isinstance(frame, Event) else Event.of(frame)
    transaction.on_commit(lambda: publish_now(group, event))


def publish_now(group: str, frame: ServerFrame | Event) -> None:
    """Publish now; safe from any thread, never blocks an event loop, never raises."""
    try:
        _backend().publish(group, frame if isinstance(frame, Event) else Event.of(frame))
    except Exception:  # the database has it; clients will fetch the gap
        log.exception("publishing to %s failed", group)


# --- backends ------------------------------------------------------------------

_fanouts: weakref.WeakSet[Fanout] = weakref.WeakSet()
_fanouts_lock = threading.Lock()
_backend_instance: LocalBackend | RedisBackend | None = None


class LocalBackend:
    """One process: hand the text to every event loop's fan-out."""

    name = "local"

    def publish(self, group: str, event: Event) -> None:
        with _fanouts_lock:
            fanouts = list(_fanouts)
        for fan in fanouts:
            if fan.has(group) and not fan.loop.is_closed():
                fan.loop.call_soon_threadsafe(fan.dispatch, group, event)


class RedisBackend:
    """Several processes: one Redis PUBLISH per event, one subscription per group per process.

    An event is queued on the fan-out of a running event loop of this process
    (the caller's own, else any), whose publisher task writes it. Only a
    process with no running loop at all (a management command, a job runner)
    publishes synchronously, from its own thread.
    """

    name = "redis"

    def __init__(self) -> None:
        self._sync_client: Any = None

    def publish(self, group: str, event: Event) -> None:
        fan = _publishing_fanout()
        if fan is not None:
            fan.submit(group, event)
            return
        if self._sync_client is None:
            from hub.redis_client import redis_client

            self._sync_client = redis_client(asynchronous=False)
        self._sync_client.publish(CHANNEL_PREFIX + group, event.wire())


def _publishing_fanout() -> Fanout | None:
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return fanout()
    with _fanouts_lock:
        candidates = [f for f in _fanouts if f.loop.is_running() and not f.loop.is_closed()]
    return candidates[-1] if candidates else None


def _backend() -> LocalBackend | RedisBackend:
    global _backend_instance
    if _backend_instance is None:
        url = getattr(settings, "REDIS_URL", "")
        _backend_instance = RedisBackend() if url else LocalBackend()
    return _backend_instance


def reset_backend() -> None:
    """Forget the chosen backend (tests switch between the embedded and the Redis one)."""
    global _backend_instance
    _backend_instance = None


# --- fan-out ---------------------------------------------------------------------


class Lane:
    """A subscriber's lane in one group: while `open`, the fan-out writes the group's events
    to the subscriber's socket (`direct`) itself, framed once for every socket and without a
    call into the subscriber, unless an event's kind is one of `seen` (those the subscriber
    must look at, delivered to it as to any other). The subscriber keeps `open` true only
    while it would write every other event of the group unchanged, at once and in order;
    `held(n)` is called when its socket holds `n` bytes unsent after a write."""

    __slots__ = ("direct", "held", "open", "seen")

    def __init__(self, direct: DirectSocket, *, seen: frozenset[str], held: Callable[[int], None]) -> None:
        self.direct = direct
        self.seen = seen
        self.held = held
        self.open = False


class Fanout:
    """The local subscribers of each group, for one event loop, and its link to Redis."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # One publish to a large group is a long burst on the event loop thread; with
        # the default 5 ms switch interval the database thread (services) then waits
        # up to 5 ms for the GIL after each query. Lowered once per process.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.loop = loop
        self.groups: dict[str, set[Subscriber]] = {}
        self._redis = _backend().name == "redis"
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        # Groups joined and not yet asked of Redis, and the task that asks (`join`).
        self._to_subscribe: list[str] = []
        self._subscriber: asyncio.Task[None] | None = None
        # Publishing: a queue drained by one task into Redis pipelines.
        self._outgoing: deque[tuple[str, Event]] = deque()
        self._outgoing_wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._publish_client: Any = None
        self._loop_thread = threading.get_ident() if loop.is_running() else None
        # Cut off from Redis: events stay local until `_recover` reconnects.
        self.degraded = False
        self._recovering: asyncio.Task[None] | None = None
        self._published_while_degraded: set[str] = set()
        self.outages = 0
        # Per room group: the highest rev delivered, and the changes held back above a gap.
        self._delivered_rev: dict[str, int] = {}
        self._held: dict[str, dict[int, Event]] = {}
        self._held_timers: dict[str, asyncio.TimerHandle] = {}
        self.reordered = 0
        # Per group with local subscribers: a stamp that moves whenever a change (an event
        # with a rev) reaches this process, or the group is joined afresh (`changes_stamp`).
        self._stamps: dict[str, int] = {}
        self._stamp_seq = 0
        # Events read from the bus in this turn of the loop, delivered together at its end.
        self._arrived: list[tuple[str, Event]] = []
        # The lanes of each group's subscribers that have one (`Lane`).
        self.lanes: dict[str, dict[Subscriber, Lane]] = {}
        # While the events of one turn are dispatched: what to deliver, in order (`_deliver`).
        self._batch: list[tuple[str, Event]] | None = None

    def has(self, group: str) -> bool:
        return group in self.groups

    def changes_stamp(self, group: str) -> tuple[int, int, int] | None:
        """A token that stays the same as long as no change of `group` has reached this process
        and none can have been missed (the group kept a local subscriber, the bus stayed up);
        None when that is not known (no local subscriber, the bus cut off).

        A subscriber that joined `group`, then read the database, and finds the same token
        later, knows that every change after its read is still to come live."""
        stamp = self._stamps.get(group)
        if stamp is None or self.degraded:
            return None
        return (id(self), self.outages, stamp)

    def _stamp(self, group: str) -> None:
        self._stamp_seq += 1
        self._stamps[group] = self._stamp_seq

    def dispatch(self, group: str, event: Event) -> None:
        """Deliver `event` to the local subscribers of `group`, a room's changes in rev order.

        Clients fetch from the database when a rev jumps: changes committed at once and
        published in the other order would make every member of the room fetch.
        """
        rev = event.rev
        if rev is None:
            self._deliver(group, event)
            return
        if group in self._stamps:
            self._stamp(group)
        last = self._delivered_rev.get(group)
        if last is not None and rev > last + 1:
            self._held.setdefault(group, {})[rev] = event
            self.reordered += 1
            if group not in self._held_timers:
                self._held_timers[group] = self.loop.call_later(REORDER_HOLD_SECONDS, self._release_held, group)
            return
        self._deliver(group, event)
        if last is None or rev > last:
            self._delivered_rev[group] = rev
            held = self._held.get(group)
            if held:
                self._release_next(group, held)

    def _arrive(self, group: str, event: Event) -> None:
        """An event read from the bus: dispatched when the reader has read every event already
        waiting (the end of this turn of the loop), with the others."""
        arrived = self._arrived
        arrived.append((group, event))
        if len(arrived) == 1:
            self.loop.call_soon(self._dispatch_arrived)

    def _dispatch_arrived(self) -> None:
        """Dispatch the events read in one turn. Several (the process fell behind, or a burst):
        each socket's frames of a group's events that follow one another go out in one write,
        so a process that falls behind catches up at a lower cost per event instead of falling
        further behind."""
        arrived, self._arrived = self._arrived, []
        if len(arrived) == 1:
            self.dispatch(*arrived[0])
            return
        batch: list[tuple[str, Event]] = []
        self._batch = batch
        try:
            for group, event in arrived:
                self.dispatch(group, event)
        finally:
            self._batch = None
        # In runs of one group: a socket gets the events of all its groups in their order.
        start = 0
        for end in range(1, len(batch) + 1):
            if end == len(batch) or batch[end][0] != batch[start][0]:
                self._deliver_run(batch[start][0], [event for _group, event in batch[start:end]])
                start = end

    def rev_known(self, group: str, rev: int) -> None:
        """A subscriber read the room's rev from the database: later changes follow it in order."""
        if group in self.groups and group not in self._delivered_rev:
            self._delivered_rev[group] = rev

    def _release_next(self, group: str, held: dict[int, Event]) -> None:
        last = self._delivered_rev[group]
        while last + 1 in held:
            last += 1
            self._deliver(group, held.pop(last))
        for stale in [r for r in held if r <= last]:
            self._deliver(group, held.pop(stale))
        self._delivered_rev[group] = last
        if not held:
            self._held.pop(group, None)
            timer = self._held_timers.pop(group, None)
            if timer is not None:
                timer.cancel()

    def _release_held(self, group: str) -> None:
        """The gap did not fill in time: deliver what was held back, in rev order."""
        timer = self._held_timers.pop(group, None)
        if timer is not None:
            timer.cancel()
        held = self._held.pop(group, {})
        for rev in sorted(held):
            self._deliver(group, held[rev])
            self._delivered_rev[group] = max(self._delivered_rev.get(group, rev), rev)

    def _forget_group(self, group: str) -> None:
        self._stamps.pop(group, None)
        self._delivered_rev.pop(group, None)
        self._held.pop(group, None)
        timer = self._held_timers.pop(group, None)
        if timer is not None:
            timer.cancel()

    def _deliver(self, group: str, event: Event) -> None:
        if self._batch is not None:
            self._batch.append((group, event))
        else:
            self._deliver_run(group, [event])

    def _deliver_run(self, group: str, events: list[Event]) -> None:
        """Deliver `events` (of `group`, in order) to its local subscribers: through the open
        lanes that need not see any of them, in one write per socket (`DirectSocket.write_each`);
        to each other subscriber, one `deliver` per event."""
        for event in events:
            watchers = _kind_watchers.get(event.kind)
            if watchers:
                for watcher in watchers:
                    try:
                        watcher(group, event)
                    except Exception:
                        log.exception("watching a %s event failed", event.kind)
        subs = self.groups.get(group)
        if not subs:
            return
        for event in events:
            metrics.observe_delivery(event.text)
        lanes = self.lanes.get(group)
        direct: list[tuple[Subscriber, DirectSocket]] = []
        others: list[Subscriber] = []
        if lanes:
            kinds = {event.kind for event in events}
            # Whether a lane's `seen` kinds miss every event: asked once per distinct set.
            passes: dict[frozenset[str], bool] = {}
            for sub in tuple(subs):
                lane = lanes.get(sub)
                if lane is not None and lane.open:
                    seen = lane.seen
                    ok = passes.get(seen)
                    if ok is None:
                        ok = passes[seen] = seen.isdisjoint(kinds)
                    if ok:
                        direct.append((sub, lane.direct))
                        continue
                others.append(sub)
        else:
            others = list(subs)
        if direct and lanes:
            try:
                not_open, holding = DirectSocket.write_each(direct, [event.text for event in events])
            except Exception:
                log.exception("writing to the lanes of %s failed", group)
                not_open, holding = [], []
            others.extend(not_open)
            for sub, held in holding:
                lane = lanes.get(sub)
                try:
                    if lane is not None:
                        lane.held(held)
                except Exception:
                    log.exception("a local subscriber's backlog check failed")
        for sub in others:
            for event in events:
                try:
                    sub.deliver(group, event)
                except Exception:
                    log.exception("delivery to a local subscriber failed")

    # --- publishing ---

    def submit(self, group: str, event: Event) -> None:
        """Queue one event for Redis; safe from any thread."""
        if threading.get_ident() == self._loop_thread:
            self._enqueue(group, event)
        else:
            try:
                self.loop.call_soon_threadsafe(self._enqueue, group, event)
            except RuntimeError:  # the loop closed (a test's loop, a process stopping)
                log.warning("dropped an event for %s: its event loop is closed", group)

    def _enqueue(self, group: str, event: Event) -> None:
        self._loop_thread = threading.get_ident()
        if self.degraded:
            self._published_while_degraded.add(group)
            self.dispatch(group, event)
            return
        if len(self._outgoing) >= PUBLISH_QUEUE_MAX:
            log.warning("the bus is too slow: %s events queued, degrading", len(self._outgoing))
            self._bus_failed()
            self._published_while_degraded.add(group)
            self.dispatch(group, event)
            return
        self._outgoing.append((group, event))
        self._outgoing_wake.set()
        if self._publisher is None or self._publisher.done():
            self._publisher = self.loop.create_task(self._publish_forever(), name="hirfa-bus-publisher")

    async def _publish_forever(self) -> None:
        from hub.redis_client import raise_if_cancelled, redis_client

        outgoing = self._outgoing
        while True:
            raise_if_cancelled()  # a publish's write may have dropped the cancel that ends this task
            await self._outgoing_wake.wait()
            self._outgoing_wake.clear()
            while outgoing and not self.degraded:
                batch = [outgoing.popleft() for _ in range(min(len(outgoing), PUBLISH_BATCH_MAX))]
                try:
                    if self._publish_client is None:
                        self._publish_client = redis_client()
                    async with self._publish_client.pipeline(transaction=False) as pipe:
                        for group, event in batch:
                            pipe.publish(CHANNEL_PREFIX + group, event.wire())
                        await pipe.execute()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("publishing to Redis failed (%s): serving from this process", exc)
                    self._bus_failed()
                    # Redis may have taken some of them: a local duplicate is harmless
                    # (clients apply a message by id), a local loss is not.
                    for group, event in batch:
                        self._published_while_degraded.add(group)
                        self.dispatch(group, event)
            if self.degraded:
                while outgoing:
                    group, event = outgoing.popleft()
                    self._published_while_degraded.add(group)
                    self.dispatch(group, event)

    # --- subscribing ---

    async def join(self, group: str, sub: Subscriber, lane: Lane | None = None) -> None:
        """Add `sub` to `group`; when this returns, every later publish reaches it (through
        `lane` while it is open, else `sub.deliver`).

        While the bus is cut off, only events of this process do; the
        subscriber hears `bus_resumed` once the others' reach it again.
        """
        if lane is not None:
            self.lanes.setdefault(group, {})[sub] = lane
        subs = self.groups.get(group)
        if subs is not None:
            subs.add(sub)
            if self._redis and not self.degraded and group in self._confirmed:
                await self._wait_confirmed(group)
            return
        self.groups[group] = {sub}
        self._stamp(group)
        if not self._redis or self.degraded:
            return
        self._confirmed.setdefault(group, asyncio.Event())
        # The groups joined while a SUBSCRIBE is on its way go in the next one: a restarted
        # hub's crowd each joins a group of its own (its user's), one write to Redis apiece.
        self._to_subscribe.append(group)
        if self._subscriber is None or self._subscriber.done():
            self._subscriber = self.loop.create_task(self._subscribe_waiting(), name="hirfa-bus-subscribe")
        await self._wait_confirmed(group)

    async def _subscribe_waiting(self) -> None:
        """Subscribe, SUBSCRIBE_AT_ONCE channels to a command, to the groups `join` queued."""
        async with self._lock:
            while self._to_subscribe:
                batch = self._to_subscribe[:SUBSCRIBE_AT_ONCE]
                del self._to_subscribe[:SUBSCRIBE_AT_ONCE]
                if self.degraded:
                    continue  # _recover subscribes to every group there is
                # Left meanwhile: nobody to subscribe for.
                groups = [g for g in dict.fromkeys(batch) if g in self.groups]
                if not groups:
                    continue
                try:
                    await self._ensure_reader()
                    await self._pubsub.subscribe(*(CHANNEL_PREFIX + g for g in groups))
                except Exception as exc:
                    log.warning("subscribing to %s failed (%s): serving from this process", groups[0], exc)
                    self._bus_failed()

    async def _wait_confirmed(self, group: str) -> None:
        event = self._confirmed.get(group)
        # Confirmed already (every join to a room followed here but the first): no wait, not
        # even a turn of the loop, which wait_for's task costs; a crowd subscribing to one room
        # spends each turn behind every other socket's work, inside the subscribe admission.
        if event is not None and not event.is_set():
            try:
                await asyncio.wait_for(event.wait(), timeout=5)
            except TimeoutError:
                log.warning("no subscribe confirmation for %s", group)

    async def leave(self, group: str, sub: Subscriber) -> None:
        lanes = self.lanes.get(group)
        if lanes is not None:
            lanes.pop(sub, None)
            if not lanes:
                del self.lanes[group]
        subs = self.groups.get(group)
        if not subs:
            return
        subs.discard(sub)
        if subs:
            return
        del self.groups[group]
        self._confirmed.pop(group, None)
        self._forget_group(group)
        if self._redis and self._pubsub is not None and not self.degraded:
            try:
                async with self._lock:
                    if group not in self.groups and self._pubsub is not None:
                        await asyncio.wait_for(self._pubsub.unsubscribe(CHANNEL_PREFIX + group), 2)
            except Exception:
                log.warning("unsubscribe from %s failed", group, exc_info=True)

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done() and self._pubsub is not None:
            return
        from hub.redis_client import redis_client

        self._pubsub = redis_client(blocking_reads=True).pubsub()
        self._reader = self.loop.create_task(self._read(self._pubsub), name="hirfa-bus-reader")

    async def _read(self, pubsub: Any) -> None:
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
                    bus_event = Event.from_wire(msg["data"].decode())
                    if bus_event is None:
                        log.warning("a malformed event on %s was dropped", channel)
                    else:
                        self._arrive(channel, bus_event)
                elif kind == "subscribe":
                    event = self._confirmed.get(channel)
                    if event is not None:
                        event.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if pubsub is self._pubsub:
                log.warning("the bus subscription failed (%s): serving from this process", exc)
                self._bus_failed()

    # --- outage and recovery ---

    def _bus_failed(self) -> None:
        if self.degraded:
            return
        self.degraded = True
        self.outages += 1
        metrics.bus_outages.inc()
        # Revs will be missing: what was held goes out now, and order starts again from the next.
        for group in list(self._held):
            self._release_held(group)
        for timer in self._held_timers.values():
            timer.cancel()
        self._held_timers.clear()
        self._delivered_rev.clear()
        pubsub, self._pubsub = self._pubsub, None
        reader, self._reader = self._reader, None
        client, self._publish_client = self._publish_client, None
        for event in self._confirmed.values():
            event.set()  # nobody waits for a confirmation that cannot come
        self._confirmed.clear()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        self.loop.create_task(_close_quietly(pubsub, client))
        if self._recovering is None or self._recovering.done():
            self._recovering = self.loop.create_task(self._recover(), name="hirfa-bus-recover")

    async def _recover(self) -> None:
        from hub.redis_client import redis_client

        delay = RECONNECT_FIRST_SECONDS
        while True:
            # Jitter: the processes of a deployment do not all come back in the same instant.
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            client = redis_client()
            try:
                await client.ping()
                async with self._lock:
                    groups = list(self.groups)
                    self._pubsub = redis_client(blocking_reads=True).pubsub()
                    for group in groups:
                        self._confirmed[group] = asyncio.Event()
                    for start in range(0, len(groups), SUBSCRIBE_AT_ONCE):
                        channels = groups[start : start + SUBSCRIBE_AT_ONCE]
                        await self._pubsub.subscribe(*(CHANNEL_PREFIX + g for g in channels))
                    self._reader = self.loop.create_task(self._read(self._pubsub), name="hirfa-bus-reader")
                    self._publish_client = client
                    self.degraded = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("the bus is still unreachable (%s); next try in %.1f s", exc, delay)
                pubsub, self._pubsub = self._pubsub, None
                await _close_quietly(pubsub, client)
                continue
            break
        log.warning("the bus is back: every local subscriber resynchronises")
        # Members on other processes missed what this one published while cut off.
        for group in sorted(self._published_while_degraded):
            room = room_of(group)
            if room is not None:
                self._enqueue(group, Event.of(ResyncOut(rooms=[room])))
        self._published_while_degraded.clear()
        if self._outgoing:
            self._outgoing_wake.set()
            if self._publisher is None or self._publisher.done():
                self._publisher = self.loop.create_task(self._publish_forever(), name="hirfa-bus-publisher")
        seen: set[int] = set()
        for subs in list(self.groups.values()):
            for sub in tuple(subs):
                if id(sub) not in seen:
                    seen.add(id(sub))
                    try:
                        sub.bus_resumed()
                    except Exception:
                        log.exception("a subscriber failed to resynchronise")


async def _close_quietly(*closables: Any) -> None:
    for item in closables:
        if item is None:
            continue
        try:
            close = getattr(item, "aclose", None) or item.close
            await asyncio.wait_for(close(), 2)
        except Exception:  # noqa: S110 (closing what already failed)
            pass


_loop_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = (
    weakref.WeakKeyDictionary()
)


def rooms_followed() -> int:
    """Room groups this process is subscribed to (over all its event loops)."""
    with _fanouts_lock:
        fanouts = list(_fanouts)
    return sum(1 for fan in fanouts for group in list(fan.groups) if group.startswith("room."))


metrics.gauge_function("hirfa_rooms_followed", "Rooms followed by this hub process's sockets", rooms_followed)


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



# Direct socket writes under daphne live with their version guard (hub/daphne_hooks.py).
from hub.daphne_hooks import DirectSocket, send_backlog_max_bytes  # noqa: F401
