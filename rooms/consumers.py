"""Room frames of the hub socket: translate each frame into a service or
selector call and the answer into frames (docs/protocol.md). `RoomFrames` is
one part of the socket (`hub.sockets`), registered by `rooms.hooks`."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from hub import protocol, realtime
from hub.db import CallsTogether, db_call
from hub.errors import ErrorCode, HirfaError
from hub.protocol import (
    Ack,
    Messages,
    PresenceList,
    PresenceOut,
    Removed,
    ResyncOut,
    Subscribed,
    TypingOut,
    Unsubscribed,
)
from hub.sockets import FrameHandler, Socket, SocketPart
from rooms import replays, selectors, services
from rooms.presence import ONLINE_LIST_MAX, presence_deltas, presence_store

log = logging.getLogger(__name__)

MAX_ROOMS_PER_SOCKET = 500
# Admission smoothing: a process's clients coming back together (a restart, a
# network blip) are all accepted, but at most this many subscriptions are served at
# once, so the sends of members already connected are not starved. Their state reads go
# to the database together (`_states_together`): 32 at once cost the pool one or two calls,
# where eight each a call of their own let 15 a second through while a crowd's openings
# went on (10,000 members subscribing: 29-31 s with 32, 36 s with 8, docs/performance.md).
SUBSCRIBES_AT_ONCE_DEFAULT = 32
# A replay goes out in batches, one write each, yielding to the other sockets between them.
REPLAY_BATCH = 50
TYPING_EVERY_SECONDS = 2.0
# A crowded room's first page of who is online (more than one page: a sample anyway) is
# read once a second per process, not once per subscription: in a storm of a thousand
# members joining, each would otherwise read Redis and a hundred names from the database.
ONLINE_PAGE_KEPT_SECONDS = 1.0
#: room → (when its read began, the page, the count)
_online_pages: dict[int, tuple[float, list[protocol.Author], int]] = {}


class _PageRead:
    """A crowded room's first page being read now: the subscriptions that arrive meanwhile
    wait for it rather than each read it again (a crowd of 10,000 read it once per eight
    members, 32 subscriptions at once all missing the page the second it went out of date)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.result: asyncio.Future[tuple[list[protocol.Author], int]] = loop.create_future()
        self.out_of_date = False


_online_reads: dict[int, _PageRead] = {}


def _online_page_out_of_date(room_id: int) -> None:
    """Presence in the room changed (its delta reached this process, or a socket here left):
    a page read before is given to no later subscription. His socket joined the room after
    the delta went by, so nothing would correct it while the room stays quiet. The room is
    still known to be crowded (its page kept, out of date)."""
    kept = _online_pages.get(room_id)
    if kept is not None:
        _online_pages[room_id] = (float("-inf"), kept[1], kept[2])
    reading = _online_reads.pop(room_id, None)
    if reading is not None:
        reading.out_of_date = True


def _presence_delta_delivered(group: str, event: realtime.Event) -> None:
    room_id = realtime.room_of(group)
    if room_id is not None:
        _online_page_out_of_date(room_id)


realtime.watch_kind("presence_delta", _presence_delta_delivered)


PRESENCE_REFRESH_SECONDS = 30


@dataclass
class RoomSub:
    replaying: bool = True
    buffered: list[realtime.Event] = field(default_factory=list)
    last_typing: float = 0.0
    in_presence: bool = False


@dataclass(frozen=True)
class SubscriptionState:
    view: selectors.SubscriptionView
    #: Changes since the client's `since_rev` (none without one), and whether more follow.
    messages: list[protocol.MessageOut]
    more: bool
    #: The room's rev when `messages` were read (a subscription's own `view.last_rev`, or
    #: that of the subscription whose read it shares).
    rev_before: int


def subscription_state(user: Any, room_id: int, since_rev: int | None) -> SubscriptionState:
    """One statement for the room and the member's read state (`room_subscription`), and the
    changes since `since_rev` when the client resumes."""
    view = selectors.room_subscription(user_id=user.pk, room_id=room_id)
    messages: list[protocol.MessageOut] = []
    more = False
    if since_rev is not None:
        messages, more = selectors.room_changes_unchecked(
            room_id=room_id, since_rev=since_rev, limit=settings.HIRFA_RESUME_MAX
        )
    return SubscriptionState(view=view, messages=messages, more=more, rev_before=view.last_rev)


@dataclass(frozen=True)
class StateAsk:
    """One subscription's read: the member, the room, since when, in his language."""

    user: Any
    room_id: int
    since_rev: int | None
    language: str | None


def subscription_states(asks: list[StateAsk]) -> list[SubscriptionState | BaseException]:
    """`subscription_state` of each ask, one after the other on one thread: each ask's result
    in its place, or what it raised (`not_found` in the member's own language). Asks resuming
    the same room since the same rev share the changes the first of them read (each still
    reads his own state): a restarted hub's crowd resumes since the same rev, and each read
    the same changes, a model per message, in the call."""
    found: list[SubscriptionState | BaseException] = []
    read: dict[tuple[int, int], SubscriptionState] = {}
    for ask in asks:
        try:
            with translation.override(ask.language):
                shared = read.get((ask.room_id, ask.since_rev)) if ask.since_rev is not None else None
                if shared is None:
                    state = subscription_state(ask.user, ask.room_id, ask.since_rev)
                    if ask.since_rev is not None:
                        read[(ask.room_id, ask.since_rev)] = state
                else:
                    own = subscription_state(ask.user, ask.room_id, None)
                    state = SubscriptionState(
                        view=own.view, messages=shared.messages, more=shared.more, rev_before=shared.rev_before
                    )
                found.append(state)
        except Exception as exc:
            found.append(exc)
    return found


#: A crowd's subscriptions read their state together: those that arrive while a read is on
#: the pool go in the next call (one or two calls at once, 64 subscriptions each). One call
#: each was a hop to a thread of the pool per subscription, the threads taking the GIL from
#: the loop still serving the crowd's openings (docs/performance.md, 2026-12-01 `crowd`).
_states_together = CallsTogether(subscription_states, most=64, calls_at_once=2)


async def _subscription_state(user: Any, room_id: int, since_rev: int | None) -> SubscriptionState:
    return await _states_together.call(StateAsk(user, room_id, since_rev, translation.get_language()))


_admission: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def subscribe_admission() -> asyncio.Semaphore:
    """The running loop's bound on subscriptions reading the database at once."""
    loop = asyncio.get_running_loop()
    gate = _admission.get(loop)
    if gate is None:
        at_once = int(getattr(settings, "HIRFA_SUBSCRIBES_AT_ONCE", SUBSCRIBES_AT_ONCE_DEFAULT))
        gate = _admission[loop] = asyncio.Semaphore(at_once)
    return gate


_background: set[asyncio.Future[Any]] = set()


def _in_background(work: Awaitable[Any]) -> None:
    """Run `work` on the loop, apart from any socket; a failure is logged."""

    def done(task: asyncio.Future[Any]) -> None:
        _background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(done)


@db_call
def _authors(user_ids: list[int]) -> list[protocol.Author]:
    from hub.models import User

    users = User.objects.filter(pk__in=user_ids).select_related("profile")
    return [protocol.Author(id=u.pk, name=u.display_name) for u in users]


class RoomFrames(SocketPart):
    """The rooms a socket follows: their frames, their live events, presence."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.user = socket.user
        self.rooms: dict[int, RoomSub] = {}
        # The same subscriptions by group name: the fan-out looks them up on every event.
        self.room_groups: dict[str, RoomSub] = {}

    def handlers(self) -> Mapping[str, FrameHandler]:
        return {
            "subscribe": self.on_subscribe,
            "unsubscribe": self.on_unsubscribe,
            "send": self.on_send,
            "edit": self.on_edit,
            "delete": self.on_delete,
            "react": self.on_react,
            "typing": self.on_typing,
            "read": self.on_read,
            "history": self.on_history,
            "fetch": self.on_fetch,
            "report": self.on_report,
            "mute": self.on_mute,
            "ban": self.on_ban,
            "presence": self.on_presence,
        }

    # --- live events --------------------------------------------------------------

    def deliver(self, group: str, event: realtime.Event) -> bool:
        """Whether a live event goes out now; holds a room's events back while it replays."""
        sub = self.room_groups.get(group)
        if sub is not None:
            if event.kind == "presence_delta" and self.socket.protocol_version == 1:
                for old in _presence_v1(event.text):
                    self.socket.push(old)
                return False
            if sub.replaying:
                sub.buffered.append(event)
                return False
            return True
        if group.startswith("room."):
            return False  # left while the event was on its way
        if event.kind == "removed" and group.startswith("user."):
            room_id = protocol.Removed.model_validate_json(event.text).room
            if room_id in self.rooms:
                # Not one more live event of the room, even one read from the bus in this turn.
                room_group = realtime.room_group(room_id)
                if self.room_groups.pop(room_group, None) is not None:
                    self.socket.lanes_changed(room_group)
                self.socket.spawn(self._drop_room(room_id))
        return True

    def plain(self, group: str) -> bool:
        sub = self.room_groups.get(group)
        if sub is not None:
            return not sub.replaying
        return not group.startswith("room.")

    def kinds_seen(self) -> Collection[str]:
        # A version 1 client is sent a delta as `presence` frames (`_presence_v1`).
        return ("removed", "presence_delta") if self.socket.protocol_version == 1 else ("removed",)

    async def recheck(self, room_id: int | None) -> None:
        """Unsubscribe from the room (or every room) the member may no longer read, with `removed`."""
        for rid in [room_id] if room_id is not None else list(self.rooms):
            if rid not in self.rooms:
                continue
            try:
                await db_call(selectors.room_access)(user=self.user, room_id=rid)
            except HirfaError:
                await self._drop_room(rid)
                self.socket.emit(Removed(room=rid, reason="removed"))

    async def _drop_room(self, room_id: int) -> None:
        sub = self.rooms.pop(room_id, None)
        if sub is None:
            return
        if self.room_groups.pop(realtime.room_group(room_id), None) is not None:
            self.socket.lanes_changed(realtime.room_group(room_id))
        await self.socket.leave_group(realtime.room_group(room_id))
        # A page read before lists him; and if he was the last here to follow the room, no
        # delta reaches this process to say a page went out of date.
        _online_page_out_of_date(room_id)
        if sub.in_presence:
            await self._presence_leave(room_id)

    async def close(self) -> None:
        for room_id in list(self.rooms):
            await self._drop_room(room_id)

    # --- the bus was cut off ----------------------------------------------------

    def bus_resumed(self) -> None:
        """Tell the client which rooms to fetch, and re-check that it still reads each.

        A `removed` event published while the bus was cut off never arrived:
        rights end here at the latest.
        """
        if not self.rooms:
            return
        rooms = sorted(self.rooms)
        self.socket.emit(ResyncOut(rooms=rooms))
        self.socket.spawn(self._recheck_access(rooms))

    async def _recheck_access(self, rooms: list[int]) -> None:
        for room_id in rooms:
            if room_id not in self.rooms:
                continue
            try:
                await db_call(selectors.room_access)(user=self.user, room_id=room_id)
            except HirfaError:
                await self._drop_room(room_id)
                self.socket.emit(Removed(room=room_id, reason="banned"))
            except Exception:
                log.warning("re-checking access to room %s failed", room_id, exc_info=True)

    # --- presence -----------------------------------------------------------------
    # Presence is a hint: when Redis is unreachable it is skipped quietly, and the
    # store's periodic refresh puts this process's entries back once Redis returns.

    def _bus_degraded(self) -> bool:
        return realtime.fanout().degraded

    async def _presence_join(self, room_id: int) -> None:
        if self._bus_degraded():
            return
        try:
            first = await presence_store().add(room_id, self.user.pk, self.socket.conn_id)
        except Exception as exc:
            log.warning("presence unavailable for room %s (%s)", room_id, exc)
            return
        if first:
            author = protocol.Author(id=self.user.pk, name=await self.socket.display_name())
            presence_deltas().note(room_id, author, online=True)

    async def _presence_leave(self, room_id: int) -> None:
        try:
            if await presence_store().remove(room_id, self.user.pk, self.socket.conn_id):
                author = protocol.Author(id=self.user.pk, name=await self.socket.display_name())
                presence_deltas().note(room_id, author, online=False)
        except Exception as exc:
            log.warning("presence removal failed for room %s (%s)", room_id, exc)

    async def _online(
        self, room_id: int, offset: int = 0, limit: int = ONLINE_LIST_MAX
    ) -> tuple[list[protocol.Author], int]:
        if self._bus_degraded():
            return [], 0
        if not (offset == 0 and limit == ONLINE_LIST_MAX):
            return await _online_read(room_id, offset=offset, limit=limit)
        kept = _online_pages.get(room_id)
        if kept is not None and time.monotonic() - kept[0] < ONLINE_PAGE_KEPT_SECONDS:
            return kept[1], kept[2]
        loop = asyncio.get_running_loop()
        reading = _online_reads.get(room_id)
        # Only a room known to be crowded (a page kept) shares a read begun before this
        # member asked: in a small room he must find himself in the page.
        if kept is not None and reading is not None and reading.result.get_loop() is loop:
            try:
                return await asyncio.shield(reading.result)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not reading.result.cancelled() or (task is not None and task.cancelling()):
                    raise  # this subscription itself was cancelled
                # The socket reading it closed meanwhile: read it here.
        reading = _online_reads[room_id] = _PageRead(loop)
        began = time.monotonic()
        try:
            authors, online_count = await _online_read(room_id, offset=0, limit=ONLINE_LIST_MAX)
            if online_count <= ONLINE_LIST_MAX:
                _online_pages.pop(room_id, None)
            elif not reading.out_of_date:
                _online_pages[room_id] = (began, authors, online_count)
            reading.result.set_result((authors, online_count))
        except BaseException:
            reading.result.cancel()
            raise
        finally:
            if _online_reads.get(room_id) is reading:
                del _online_reads[room_id]
        return authors, online_count

    # --- handlers -----------------------------------------------------------------

    async def on_subscribe(self, frame: protocol.Subscribe) -> None:
        room_id = frame.room
        if room_id not in self.rooms and len(self.rooms) >= MAX_ROOMS_PER_SOCKET:
            raise HirfaError(ErrorCode.INVALID, _("Too many rooms on one socket."), room=room_id)
        async with subscribe_admission():
            await self._subscribe(frame)

    async def _subscribe(self, frame: protocol.Subscribe) -> None:
        # The access check is the state's read below: until it passes, live events of the
        # room are only held back (`replaying`), never written, and dropped if it fails.
        room_id = frame.room
        sub = RoomSub()
        previous = self.rooms.get(room_id)
        if previous is not None:
            sub.in_presence = previous.in_presence
        self.rooms[room_id] = sub
        group = realtime.room_group(room_id)
        self.room_groups[group] = sub
        self.socket.lanes_changed(group)  # a room subscribed again replays before it is live
        kept: replays.Replay | None = None
        try:
            # Join the live group first, so that nothing committed after the read below is missed.
            await self.socket.join_group(group)
            # Taken after the join and before the read: a crowd resuming since the same rev
            # shares one replay while no change reaches the room here (rooms/replays.py).
            stamp = realtime.fanout().changes_stamp(group) if frame.since_rev is not None else None
            if stamp is not None and frame.since_rev is not None:
                kept = replays.replay_kept(room_id=room_id, since_rev=frame.since_rev, stamp=stamp)
            # With a kept replay, only the member's own state is read (his access, his unread).
            state = await _subscription_state(self.user, room_id, frame.since_rev if kept is None else None)
        except BaseException:
            self.rooms.pop(room_id, None)
            self.room_groups.pop(group, None)
            self.socket.lanes_changed(group)
            await self.socket.leave_group(group)
            raise
        view = state.view
        realtime.fanout().rev_known(group, view.last_rev)
        if kept is None and stamp is not None and frame.since_rev is not None:
            # Read with others since the same rev (`subscription_states`): the first of them
            # to get here kept the frames, under the same stamp.
            kept = replays.replay_kept(room_id=room_id, since_rev=frame.since_rev, stamp=stamp)
        if kept is None:
            messages = state.messages
            texts = [protocol.encode(m) for m in messages]
            replayed = max([frame.since_rev or 0] + [m.rev for m in messages])
            more = state.more
            rev_before = state.rev_before
            if stamp is not None and frame.since_rev is not None:
                replays.replay_keep(
                    room_id=room_id, since_rev=frame.since_rev, stamp=stamp, texts=texts, top_rev=replayed,
                    rev_before=rev_before, more=more,
                )
        else:
            # The room as the kept replay read it: what changed after that comes live.
            texts, replayed, more, rev_before = list(kept.texts), kept.top_rev, kept.more, kept.rev_before
        for start in range(0, len(texts), REPLAY_BATCH):
            if start:
                await asyncio.sleep(0)
            self.socket.push_many(texts[start : start + REPLAY_BATCH])
        if frame.since_rev is None:
            replayed = rev_before
        if not sub.in_presence:
            sub.in_presence = True
            await self._presence_join(room_id)
        online, online_count = await self._online(room_id)
        self.socket.emit(
            Subscribed(
                ref=frame.ref,
                room=room_id,
                rev=replayed if more else max(replayed, rev_before),
                last_id=view.last_seq,
                read_id=view.read_id,
                unread=view.unread,
                more=more,
                online=online,
                online_count=online_count,
            )
        )
        sub.replaying = False
        for event in sub.buffered:
            if event.rev is None or event.rev > replayed:
                self.socket.push(event.text)
        sub.buffered.clear()
        self.socket.lanes_changed(group)

    async def on_unsubscribe(self, frame: protocol.Unsubscribe) -> None:
        await self._drop_room(frame.room)
        self.socket.emit(Unsubscribed(ref=frame.ref, room=frame.room))

    async def on_send(self, frame: protocol.Send) -> None:
        result = await services.message_send(
            user=self.user,
            room_id=frame.room,
            client_id=frame.client_id,
            text=frame.text,
            reply_to=frame.reply_to,
            attachment_ids=frame.attachments,
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=result.message.id, rev=result.message.rev))
        if result.to_notify is not None:
            # After the ack, and not tied to this socket: the author may close it at once.
            _in_background(db_call(services.mentions_notify)(notice=result.to_notify))

    async def on_edit(self, frame: protocol.Edit) -> None:
        out = await db_call(services.message_edit)(
            user=self.user, room_id=frame.room, seq=frame.id, text=frame.text
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=out.id, rev=out.rev))

    async def on_delete(self, frame: protocol.Delete) -> None:
        out = await db_call(services.message_delete)(user=self.user, room_id=frame.room, seq=frame.id)
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=out.id, rev=out.rev))

    async def on_react(self, frame: protocol.React) -> None:
        out = await db_call(services.reaction_set)(
            user=self.user, room_id=frame.room, seq=frame.id, emoji=frame.emoji, on=frame.on
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=out.id, rev=out.rev))

    async def on_typing(self, frame: protocol.Typing) -> None:
        sub = self.rooms.get(frame.room)
        if sub is None:
            raise HirfaError(ErrorCode.NOT_FOUND, _("Subscribe to the room first."), room=frame.room)
        now = time.monotonic()
        if now - sub.last_typing < TYPING_EVERY_SECONDS:
            return  # typing is a hint: extra ones are dropped quietly
        sub.last_typing = now
        author = protocol.Author(id=self.user.pk, name=await self.socket.display_name())
        realtime.publish_now(realtime.room_group(frame.room), TypingOut(room=frame.room, user=author))

    async def on_read(self, frame: protocol.Read) -> None:
        await db_call(services.read_marker_set)(user=self.user, room_id=frame.room, seq=frame.id)
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=frame.id))

    async def on_history(self, frame: protocol.History) -> None:
        messages, more = await db_call(selectors.room_history)(
            user=self.user, room_id=frame.room, before=frame.before, limit=frame.limit
        )
        self.socket.emit(Messages(ref=frame.ref, room=frame.room, messages=messages, more=more))

    async def on_fetch(self, frame: protocol.Fetch) -> None:
        messages, more = await db_call(selectors.room_changes)(
            user=self.user, room_id=frame.room, since_rev=frame.since_rev, limit=frame.limit
        )
        self.socket.emit(Messages(ref=frame.ref, room=frame.room, messages=messages, more=more))

    async def on_report(self, frame: protocol.ReportFrame) -> None:
        await db_call(services.message_report)(
            user=self.user, room_id=frame.room, seq=frame.id, reason=frame.reason
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room, id=frame.id))

    async def on_mute(self, frame: protocol.Mute) -> None:
        await db_call(services.member_mute)(
            moderator=self.user, room_id=frame.room, target_id=frame.user, minutes=frame.minutes
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room))

    async def on_ban(self, frame: protocol.Ban) -> None:
        await db_call(services.member_ban)(
            moderator=self.user, room_id=frame.room, target_id=frame.user, on=frame.on
        )
        self.socket.emit(Ack(ref=frame.ref, room=frame.room))

    async def on_presence(self, frame: protocol.Presence) -> None:
        await db_call(selectors.room_access)(user=self.user, room_id=frame.room)
        online, online_count = await self._online(frame.room, offset=frame.offset, limit=frame.limit)
        self.socket.emit(
            PresenceList(
                ref=frame.ref, room=frame.room, online=online, online_count=online_count, offset=frame.offset
            )
        )


async def _online_read(room_id: int, *, offset: int, limit: int) -> tuple[list[protocol.Author], int]:
    """A page of who is online in the room and how many are, or nothing while presence is
    unreachable (it is a hint)."""
    try:
        online_ids, online_count = await presence_store().online(room_id, limit=limit, offset=offset)
    except Exception as exc:
        log.warning("presence unavailable for room %s (%s)", room_id, exc)
        return [], 0
    return await _authors(online_ids), online_count


@functools.lru_cache(maxsize=16)
def _presence_v1(text: str) -> tuple[str, ...]:
    """A `presence_delta` as the version 1 `presence` frames it stands for.

    Cached: the fan-out hands the same text to every socket of the room, and converting it
    (a parse and one encode per member named) once per version 1 socket made a large room's
    delta cost as much as a message's delivery to each of them."""
    delta = protocol.PresenceDelta.model_validate_json(text)
    return tuple(
        protocol.encode(PresenceOut(room=delta.room, user=author, online=online))
        for authors, online in ((delta.joined, True), (delta.left, False))
        for author in authors
    )
