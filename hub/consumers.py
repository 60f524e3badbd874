"""The one websocket each browser tab opens. It multiplexes every room the
user follows and the meeting he is in: it checks the handshake, decodes and
validates frames, hands each to its handler, and writes replies and live
events through one bounded outbox. What the frames mean lives with their apps,
in parts the apps register (`hub.sockets`: `rooms.consumers.RoomFrames`,
`signaling.consumers.MeetingFrames`); nothing here touches the ORM."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from pydantic import ValidationError

from hub import admission, limits, logs, metrics, protocol, realtime, revocation, shutdown, sockets
from hub.db import db_call
from hub.errors import CloseCode, ErrorCode, HirfaError
from hub.protocol import Author, ErrorOut, Pong, ServerFrame, Welcome, encode

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10
# Read once, not on every delivery (settings lookups are slow on the hot path); lists so tests can patch.
_SEND_QUEUE_MAX = [settings.HIRFA_SEND_QUEUE_MAX]
_SEND_BACKLOG_MAX = [realtime.send_backlog_max_bytes()]
# A client that keeps sending refused frames is cut off rather than answered forever.
MAX_REFUSED_IN_A_ROW = 200
FRAME_BURST = 60
FRAMES_PER_SECOND = 20.0
#: The scope key of the member's display name, read with him when the socket opened (hub.asgi).
DISPLAY_NAME_KEY = "hirfa_display_name"
# A socket's id is its process's random prefix and a number: a uuid4 per socket asked the
# kernel for randomness (a system call, 40 µs each on the bench's machine) at every opening.
_PROCESS_ID = uuid.uuid4().hex[:16]
_socket_numbers = itertools.count(1)


def new_conn_id() -> str:
    """An id no other socket of the deployment has (presence and the socket slots count by it)."""
    return f"{_PROCESS_ID}{next(_socket_numbers):x}"


class HubConsumer(AsyncWebsocketConsumer):
    """The socket: `hub.sockets.Socket` for the parts it is built from."""

    protocol_version: int = protocol.PROTOCOL_VERSION
    # Each group's lane (`realtime.Lane`): the fan-out writes the group's events itself while
    # this socket would write them unchanged (`lanes_changed`).
    lanes: dict[str, realtime.Lane]
    _closing = False

    @property
    def closing(self) -> bool:
        """Closing: nothing more is written, and no lane stays open."""
        return self._closing

    @closing.setter
    def closing(self, value: bool) -> None:
        self._closing = value
        if value:
            for lane in getattr(self, "lanes", {}).values():
                lane.open = False

    async def connect(self) -> None:
        self.user: Any = self.scope.get("user")
        self.conn_id = new_conn_id()
        # The socket's channel on the channel layer (SFU workers answer there): opened when a
        # part first asks (`open_reply_channel`, a meeting join), not for every socket.
        self.reply_channel: str | None = None
        # The consumer's task (and what it starts) logs with this id (hub/logs.py).
        logs.conn_id.set(self.conn_id)
        # The session the socket was opened under: a log-out of that session closes it.
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.ready = False
        self.closing = False
        self.draining = False
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.refused_in_a_row = 0
        self.frame_tokens = float(FRAME_BURST)
        self.frame_clock = asyncio.get_running_loop().time()
        self.tasks: set[asyncio.Task[Any]] = set()
        # Not `groups`: Channels would discard each of them from the channel layer on disconnect.
        self.bus_groups: set[str] = set()
        self.lanes = {}
        self.frame_ref: str | None = None
        # Read with the member when the socket opened through hub.asgi; else on first use.
        name = self.scope.get(DISPLAY_NAME_KEY)
        self._display_name: str | None = name if isinstance(name, str) else None
        self.parts = [factory(self) for factory in sockets.part_factories()]
        # Built once per socket, not once per frame: receive() looks every frame up here.
        self.frame_handlers = self.handlers()
        self.channel_handlers = {k: h for part in self.parts for k, h in part.channel_handlers().items()}
        self.frame_limits = {k: n for part in self.parts for k, n in part.frame_limits().items()}
        self.released = False
        self.slot_held = False
        # This opening's turn in the process's admission (hub.admission): given back once the
        # socket has settled, so that the next opening comes in.
        ticket = self.scope.get(admission.SCOPE_KEY)
        self.admission_ticket: admission.Ticket | None = ticket if isinstance(ticket, admission.Ticket) else None
        # Frames being handled now; a draining socket waits for them before it closes.
        self.in_flight = 0
        # Error messages follow the member's language (context-local, so the
        # service threads started from this socket see it too).
        translation.activate(_socket_language(self.scope))
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=int(CloseCode.UNAUTHENTICATED))
            return
        if not await limits.socket_slots().acquire(self.user.pk, self.conn_id, settings.HIRFA_SOCKETS_PER_MEMBER):
            log.info("user %s: more than %s sockets; refused", self.user.pk, settings.HIRFA_SOCKETS_PER_MEMBER)
            await self.close(code=int(CloseCode.TOO_MANY_SOCKETS))
            return
        self.slot_held = True
        shutdown.socket_opened(self)
        if shutdown.is_draining():
            # The drain began while this socket was opening (its slot read above), so it was
            # not among those drained: reconnect elsewhere, as they were told.
            await self.close(code=int(CloseCode.SERVICE_RESTART))
            return
        self._direct = realtime.DirectSocket.find(self.base_send)
        if self._direct is not None:
            self._direct.set_no_delay()
        loop = asyncio.get_running_loop()
        self.tasks.add(loop.create_task(self._writer(), name=f"writer-{self.conn_id}"))
        self.tasks.add(loop.create_task(self._handshake_deadline()))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # A channel-layer message for a part (an SFU worker's event) is routed by its type.
        handler = getattr(self, "channel_handlers", {}).get(message.get("type"))
        if handler is not None:
            if not self.closing:
                await handler(message)
            return
        # Not super().dispatch(): Channels first closes old database connections on Django's
        # one thread-sensitive thread, so every message of every socket of the process queued
        # for that thread. No query of a socket runs there (db_call closes its own).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels' AsyncConsumer.__call__ (channels 4.3.2, pinned in hub.daphne_hooks), less
        # the channel it opens on the channel layer for every consumer: chat sockets never
        # receive on it, and each one's pending read was 4 % of a hub's loop while a crowd
        # connected (a BZPOPMIN restarted for every socket closing while it held channels_redis's
        # receive lock). A part that needs it opens it (`open_reply_channel`).
        # Whatever ends the consumer (a close, a cancel, a failure nothing caught),
        # its presence, fan-out registrations and meeting seat are released.
        try:
            self.scope = scope
            self.channel_layer = None
            self.base_send = send
            try:
                await await_many_dispatch([receive], self.dispatch)
            except StopConsumer:
                pass
        finally:
            await self.release()

    async def open_reply_channel(self) -> str:
        """This socket's channel on the channel layer, opened on first use, its messages
        dispatched (`channel_handlers`) until the socket closes; a local address without a layer."""
        if self.reply_channel is None:
            layer = get_channel_layer(self.channel_layer_alias)
            if layer is None:
                self.reply_channel = f"local.{self.conn_id}"
            else:
                self.channel_layer = layer
                self.channel_name = self.reply_channel = await layer.new_channel()
                self.spawn(self._read_channel(layer, self.channel_name))
        return self.reply_channel

    async def _read_channel(self, layer: Any, name: str) -> None:
        while not self.closing:
            message = await layer.receive(name)
            try:
                await self.dispatch(message)
            except Exception:
                log.exception("a channel message failed on socket %s", self.conn_id)

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def release(self) -> None:
        """Give back everything this socket holds; runs once, and each part runs even if another fails."""
        if getattr(self, "released", True):
            return  # already released, or connect() never set anything up
        self.released = True
        self.closing = True
        self.settled()
        shutdown.socket_closed(self)
        try:
            for part in reversed(self.parts):  # upper layers first: a meeting, then the rooms
                try:
                    await part.close()
                except Exception:
                    log.exception("releasing %s of socket %s failed", type(part).__name__, self.conn_id)
        finally:
            fan = realtime.fanout()
            for group in list(self.bus_groups):
                try:
                    await fan.leave(group, self)
                except Exception:
                    log.exception("leaving %s failed", group)
            self.bus_groups.clear()
            for task in list(self.tasks):
                task.cancel()
            self.tasks.clear()
            if self.slot_held:
                self.slot_held = False
                try:
                    await limits.socket_slots().release(self.user.pk, self.conn_id)
                except Exception:
                    log.exception("releasing the socket slot of %s failed", self.user.pk)

    def settled(self) -> None:
        """The opening is over (the first frame after the welcome answered, or a while after
        the welcome, or the socket closing): the process lets the next one in."""
        ticket, self.admission_ticket = self.admission_ticket, None
        if ticket is not None:
            ticket.done()

    # --- outgoing ---------------------------------------------------------------

    def deliver(self, group: str, event: realtime.Event) -> None:
        """Called by the fan-out for every live event of a group this socket joined."""
        if self.closing:
            return
        if event.kind == revocation.KIND:
            revoked = revocation.decode(event.text)
            if revoked is not None and group == realtime.user_group(self.user.pk):
                self._revoked(revoked)
            return  # never passed on to the client
        passes = True
        for part in self.parts:
            passes = part.deliver(group, event) and passes
        if passes:
            self.push(event.text)

    def _revoked(self, event: revocation.Revocation) -> None:
        loop = asyncio.get_running_loop()
        if event.scope == "rights":
            self.spawn(self.recheck_rights(event.room))
        elif event.scope == "account" or event.session == self.session_key:
            log.info("closing a socket of user %s: %s revoked", self.user.pk, event.scope)
            self.closing = True
            self.outbox.clear()
            loop.create_task(self._end_revoked())

    async def _end_revoked(self) -> None:
        await self.close(code=int(CloseCode.UNAUTHENTICATED))
        # Not left to disconnect(): the meeting's media and the room subscriptions stop now.
        await self.release()

    async def recheck_rights(self, room_id: int | None) -> None:
        """Drop what the member may no longer read (one room, or all), and leave a meeting he
        may no longer be in."""
        for part in self.parts:
            try:
                await part.recheck(room_id)
            except Exception:
                log.exception("checking the rights of socket %s again failed", self.conn_id)

    def bus_resumed(self) -> None:
        # Live events may have been lost while the bus was cut off: the client fetches them.
        if not self.closing:
            for part in self.parts:
                part.bus_resumed()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the frames; cancelled when the socket is released."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def display_name(self) -> str:
        # Read once: presence is announced often, and the name does not change mid-socket.
        if self._display_name is None:
            self._display_name = await db_call(lambda: self.user.display_name)()
        return self._display_name

    # Found on the first push: the daphne websocket behind `send`, or None (see realtime.DirectSocket).
    _direct: realtime.DirectSocket | None | bool = False

    def push(self, text: str) -> None:
        """Write `text` now, or queue it behind frames not yet written; never blocks.

        A socket that cannot keep up (more than HIRFA_SEND_BACKLOG_MAX_BYTES held
        by its transport, or HIRFA_SEND_QUEUE_MAX frames queued) is closed with
        4010: its client resumes from the database, so nothing is lost silently.
        """
        if self.closing:
            return
        outbox = self.outbox
        if not outbox:
            direct = self._direct_socket()
            if direct is not None:
                held = direct.write(text)
                if held is not None:
                    self._check_backlog(held)
                    return
        if len(outbox) >= _SEND_QUEUE_MAX[0]:
            log.info("closing a socket that cannot keep up (%s queued)", len(outbox))
            metrics.send_queue_closes.inc()
            self.close_soon(CloseCode.TOO_SLOW_RESUME)
            return
        outbox.append(text)
        self.wake.set()

    def push_many(self, texts: Sequence[str]) -> None:
        """`push` each of `texts` in order, in one write to the kernel when nothing is queued."""
        if self.closing or not texts:
            return
        if not self.outbox:
            direct = self._direct_socket()
            if direct is not None:
                held = direct.write_many(texts)
                if held is not None:
                    self._check_backlog(held)
                    return
        for text in texts:
            self.push(text)

    def _direct_socket(self) -> realtime.DirectSocket | None:
        direct = self._direct
        if direct is False:
            direct = self._direct = realtime.DirectSocket.find(self.base_send)
        assert not isinstance(direct, bool)
        return direct

    def _check_backlog(self, held: int) -> None:
        if held > _SEND_BACKLOG_MAX[0]:
            log.info("closing a socket that cannot keep up (%s bytes unsent)", held)
            metrics.send_queue_closes.inc()
            self.close_soon(CloseCode.TOO_SLOW_RESUME)

    def emit(self, frame: ServerFrame) -> None:
        self.push(encode(frame))

    def close_soon(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        self.outbox.clear()
        # int(): autobahn refuses an IntEnum close code.
        asyncio.get_running_loop().create_task(self.close(code=int(code)))

    async def close_after_flush(self, code: int) -> None:
        """Close once the frames already queued are written (bounded to a second)."""
        for _attempt in range(100):
            if not self.outbox:
                break
            await asyncio.sleep(0.01)
        self.closing = True
        await self.close(code=int(code))

    async def drain(self) -> None:
        """The hub stops (hub/shutdown.py): finish the frame in hand, refuse new ones, write
        what is queued, close with 1012, let each part suspend (a meeting keeps its seat for
        the rejoin from another hub) and give the rest back."""
        self.draining = True
        for _attempt in range(int(shutdown.DRAIN_SECONDS * 50)):
            if not self.in_flight:
                break
            await asyncio.sleep(0.02)
        for part in reversed(self.parts):
            try:
                await part.suspend()
            except Exception:
                log.exception("suspending %s of socket %s failed", type(part).__name__, self.conn_id)
        if not self.closing:
            await self.close_after_flush(CloseCode.SERVICE_RESTART)
        await self.release()

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        # Under daphne, autobahn's public close refuses the registered 1001 and 1012
        # (only 1000 and 3000-4999); the protocol's own close frame takes them.
        if isinstance(code, int) and not isinstance(code, bool) and 1001 <= code < 3000:
            direct = realtime.DirectSocket.find(self.base_send)
            if direct is not None:
                direct.close_with(code)
                return
        await super().close(code=code, reason=reason)

    async def _writer(self) -> None:
        send = self.base_send
        outbox = self.outbox
        while True:
            await self.wake.wait()
            self.wake.clear()
            while outbox:
                # Popped after the send, so that push() queues behind a frame in flight.
                await send({"type": "websocket.send", "text": outbox[0]})
                if outbox:
                    outbox.popleft()

    async def join_group(self, group: str) -> None:
        if group not in self.bus_groups:
            self.bus_groups.add(group)
            lane = self._lane(group)
            await realtime.fanout().join(group, self, lane)

    async def leave_group(self, group: str) -> None:
        if group in self.bus_groups:
            self.bus_groups.discard(group)
            lane = self.lanes.pop(group, None)
            if lane is not None:
                lane.open = False
            await realtime.fanout().leave(group, self)

    def _lane(self, group: str) -> realtime.Lane | None:
        """A lane for `group` when the socket is daphne's over plain TCP (else every event
        comes through `deliver`), open as the parts say (`lanes_changed`)."""
        direct = self._direct_socket()
        if direct is None or not direct.plain():
            return None
        seen = {revocation.KIND}
        for part in self.parts:
            seen.update(part.kinds_seen())
        lane = realtime.Lane(direct, seen=_interned(frozenset(seen)), held=self._check_backlog)
        self.lanes[group] = lane
        self.lanes_changed(group)
        return lane

    def lanes_changed(self, group: str | None = None) -> None:
        """A part's `SocketPart.plain` answer for `group` (None: any group) may have changed:
        ask again, before the next live event can arrive."""
        names = list(self.lanes) if group is None else [group] if group in self.lanes else []
        for name in names:
            self.lanes[name].open = not self.closing and all(part.plain(name) for part in self.parts)

    # --- incoming ---------------------------------------------------------------

    async def _handshake_deadline(self) -> None:
        await asyncio.sleep(HANDSHAKE_SECONDS)
        if not self.ready:
            self.close_soon(CloseCode.HANDSHAKE_FAILED)

    def _refuse(self, code: ErrorCode, message: str, ref: str | None = None, **extra: Any) -> None:
        self.refused_in_a_row += 1
        if self.refused_in_a_row > MAX_REFUSED_IN_A_ROW:
            self.close_soon(CloseCode.ABUSE)
            return
        try:
            text = encode(ErrorOut(ref=ref, code=code.value, message=message, **extra))
        except Exception:  # whatever the refused frame held, the refusal itself goes out
            log.exception("encoding an error frame failed")
            text = encode(ErrorOut(code=code.value, message=str(code.value)))
        self.push(text)

    def _take_frame_token(self) -> float:
        now = asyncio.get_running_loop().time()
        self.frame_tokens = min(
            FRAME_BURST, self.frame_tokens + (now - self.frame_clock) * FRAMES_PER_SECOND
        )
        self.frame_clock = now
        if self.frame_tokens >= 1:
            self.frame_tokens -= 1
            return 0.0
        return (1 - self.frame_tokens) / FRAMES_PER_SECOND

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Every client frame passes here, and no failure escapes: a refusal is an
        ``error`` frame with its code, anything unexpected is ``internal_error`` (the
        traceback is logged on the server only), and the socket stays usable."""
        if self.closing or self.draining:
            # Draining: the client sends it again once reconnected (sends are idempotent).
            return
        self.frame_ref = None
        self.in_flight += 1
        # The first frame after the welcome (a subscription and its replay) ends the opening.
        settles = self.ready and self.admission_ticket is not None
        try:
            await self._handle_frame(text_data)
        except HirfaError as exc:
            self._refuse(exc.code, exc.message, self.frame_ref, **_error_extra(exc))
        except Exception:
            log.exception("a frame failed on socket %s", self.conn_id)
            self._refuse(ErrorCode.INTERNAL_ERROR, _("Something went wrong on the server."), self.frame_ref)
        finally:
            self.in_flight -= 1
            if settles:
                self.settled()

    async def _handle_frame(self, text_data: str | None) -> None:
        if text_data is None:
            raise HirfaError(ErrorCode.INVALID_FRAME, _("Frames are JSON text."))
        too_large = HirfaError(
            ErrorCode.FRAME_TOO_LARGE,
            _("A frame holds at most %(max)d bytes.") % {"max": settings.HIRFA_FRAME_MAX_BYTES},
        )
        if len(text_data) > max([settings.HIRFA_FRAME_MAX_BYTES, *self.frame_limits.values()]):
            raise too_large
        wait = self._take_frame_token()
        if wait:
            raise HirfaError(ErrorCode.RATE_LIMITED, _("Too many frames."), retry_after=wait)
        try:
            raw = protocol.decode_json(text_data)
        except protocol.TooDeep:
            raise HirfaError(ErrorCode.INVALID_FRAME, _("The frame nests too deeply.")) from None
        except protocol.Unstorable:
            raise HirfaError(
                ErrorCode.INVALID_FRAME, _("Text may not hold NUL characters or lone surrogates.")
            ) from None
        except (ValueError, RecursionError):
            raise HirfaError(ErrorCode.BAD_JSON, _("The frame is not valid JSON.")) from None
        if isinstance(raw, dict) and isinstance(raw.get("ref"), str) and len(raw["ref"]) <= 64:
            self.frame_ref = raw["ref"]
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str):
            kind = None
        if len(text_data) > max(settings.HIRFA_FRAME_MAX_BYTES, self.frame_limits.get(kind or "", 0)):
            raise too_large
        handler = self.frame_handlers.get(kind or "")
        if handler is None:
            raise HirfaError(ErrorCode.UNKNOWN_TYPE, _("Unknown frame type."))
        try:
            frame = protocol.client_frame_adapter.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "frame"
            raise HirfaError(ErrorCode.INVALID_FRAME, f"{where}: {first.get('msg', 'invalid')}") from None
        if not self.ready and kind != "hello":
            raise HirfaError(ErrorCode.HANDSHAKE_REQUIRED, _("Send hello first."))
        await handler(frame)
        self.refused_in_a_row = 0

    def handlers(self) -> dict[str, sockets.FrameHandler]:
        table: dict[str, sockets.FrameHandler] = {"hello": self.on_hello, "ping": self.on_ping}
        for part in self.parts:
            for kind, handler in part.handlers().items():
                if kind in table:
                    raise RuntimeError(f"two handlers for the frame type {kind!r}")
                table[kind] = handler
        return table

    async def on_hello(self, frame: protocol.Hello) -> None:
        if frame.v not in protocol.SUPPORTED_VERSIONS:
            self.emit(
                ErrorOut(
                    ref=frame.ref,
                    code=ErrorCode.UNSUPPORTED_VERSION.value,
                    message=_("This server speaks version %(v)d.") % {"v": protocol.PROTOCOL_VERSION},
                )
            )
            await self.close_after_flush(CloseCode.UNSUPPORTED_VERSION)
            return
        if not self.ready:
            self.ready = True
            self.protocol_version = frame.v
            await self.join_group(realtime.user_group(self.user.pk))
            if self.admission_ticket is not None:
                # A page that subscribes to nothing right away still settles.
                asyncio.get_running_loop().call_later(admission.SETTLE_SECONDS, self.settled)
        self.emit(
            Welcome(
                ref=frame.ref,
                v=self.protocol_version,
                user=Author(id=self.user.pk, name=await self.display_name()),
                ping_seconds=settings.HIRFA_PING_SECONDS,
                limits={
                    "message_chars": settings.HIRFA_MESSAGE_MAX_CHARS,
                    "frame_bytes": settings.HIRFA_FRAME_MAX_BYTES,
                    "rate_burst": settings.HIRFA_RATE_BURST,
                    "rate_per_second": settings.HIRFA_RATE_PER_SECOND,
                },
            )
        )

    async def on_ping(self, frame: protocol.Ping) -> None:
        self.emit(Pong(ref=frame.ref))


_seen_sets: dict[frozenset[str], frozenset[str]] = {}


def _interned(seen: frozenset[str]) -> frozenset[str]:
    """One object per distinct set of kinds seen: the fan-out asks once per set and event."""
    return _seen_sets.setdefault(seen, seen)


def _error_extra(exc: HirfaError) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    room = exc.details.get("room")
    if isinstance(room, int):
        extra["room"] = room
    if exc.retry_after is not None:
        extra["retry_after"] = round(exc.retry_after, 2)
    return extra


def _socket_language(scope: dict[str, Any]) -> str:
    """The language of the page that opened the socket: its language cookie, else Accept-Language."""
    supported = {code for code, _name in settings.LANGUAGES}
    cookie = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME, "")
    if cookie[:2] in supported:
        return cookie[:2]
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            for part in value.decode("latin-1").split(","):
                code = part.split(";")[0].strip()[:2].lower()
                if code in supported:
                    return code
    return settings.LANGUAGE_CODE
