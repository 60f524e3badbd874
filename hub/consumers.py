"""The one websocket each browser tab opens. It multiplexes every room the
user follows (and, later, meetings): it checks the handshake, decodes and
validates frames, hands each to its handler, and writes replies and live
events through one bounded outbox. Handlers live with their apps
(`rooms.consumers.RoomFrames`); nothing here touches the ORM."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from typing import Any, Awaitable, Callable

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from pydantic import ValidationError

from hub import protocol, realtime
from hub.errors import CloseCode, ErrorCode, HirfaError
from hub.protocol import Author, ErrorOut, Pong, ServerFrame, Welcome, encode
from rooms.consumers import RoomFrames

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10
# A client that keeps sending refused frames is cut off rather than answered forever.
MAX_REFUSED_IN_A_ROW = 200
FRAME_BURST = 60
FRAMES_PER_SECOND = 20.0


class HubConsumer(RoomFrames, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.conn_id = uuid.uuid4().hex
        self.ready = False
        self.closing = False
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.refused_in_a_row = 0
        self.frame_tokens = float(FRAME_BURST)
        self.frame_clock = asyncio.get_running_loop().time()
        self.tasks: list[asyncio.Task[Any]] = []
        self.groups: set[str] = set()
        self.room_frames_init()
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CloseCode.UNAUTHENTICATED)
            return
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._writer(), name=f"writer-{self.conn_id}"))
        self.tasks.append(loop.create_task(self._handshake_deadline()))

    async def disconnect(self, code: int) -> None:
        self.closing = True
        try:
            await self.room_frames_close()
        finally:
            fan = realtime.fanout()
            for group in list(self.groups):
                await fan.leave(group, self)
            self.groups.clear()
            for task in self.tasks:
                task.cancel()
            self.tasks.clear()

    # --- outgoing ---------------------------------------------------------------

    def deliver(self, group: str, text: str) -> None:
        """Called by the fan-out for every live event of a group this socket joined."""
        if self.closing:
            return
        if not self.room_frames_filter(group, text):
            return
        self.push(text)

    def bus_lost(self) -> None:
        # Live events may have been lost: the client reconnects and resumes from the database.
        self.close_soon(CloseCode.TOO_SLOW_RESUME)

    def push(self, text: str) -> None:
        if self.closing:
            return
        if len(self.outbox) >= settings.HIRFA_SEND_QUEUE_MAX:
            log.info("closing a socket that cannot keep up (%s queued)", len(self.outbox))
            self.close_soon(CloseCode.TOO_SLOW_RESUME)
            return
        self.outbox.append(text)
        self.wake.set()

    def emit(self, frame: ServerFrame) -> None:
        self.push(encode(frame))

    def close_soon(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        self.outbox.clear()
        asyncio.get_running_loop().create_task(self.close(code=code))

    async def close_after_flush(self, code: int) -> None:
        """Close once the frames already queued are written (bounded to a second)."""
        for _ in range(100):
            if not self.outbox:
                break
            await asyncio.sleep(0.01)
        self.closing = True
        await self.close(code=code)

    async def _writer(self) -> None:
        send = self.base_send
        outbox = self.outbox
        while True:
            await self.wake.wait()
            self.wake.clear()
            while outbox:
                await send({"type": "websocket.send", "text": outbox.popleft()})

    async def join_group(self, group: str) -> None:
        if group not in self.groups:
            self.groups.add(group)
            await realtime.fanout().join(group, self)

    async def leave_group(self, group: str) -> None:
        if group in self.groups:
            self.groups.discard(group)
            await realtime.fanout().leave(group, self)

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
        self.emit(ErrorOut(ref=ref, code=code.value, message=message, **extra))

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
        if self.closing:
            return
        if text_data is None:
            self._refuse(ErrorCode.INVALID_FRAME, "Frames are JSON text.")
            return
        if len(text_data) > settings.HIRFA_FRAME_MAX_BYTES:
            self._refuse(
                ErrorCode.FRAME_TOO_LARGE,
                f"A frame holds at most {settings.HIRFA_FRAME_MAX_BYTES} bytes.",
            )
            return
        wait = self._take_frame_token()
        if wait:
            self._refuse(ErrorCode.RATE_LIMITED, "Too many frames.", retry_after=round(wait, 2))
            return
        try:
            raw = json.loads(text_data)
        except ValueError:
            self._refuse(ErrorCode.BAD_JSON, "The frame is not valid JSON.")
            return
        ref = raw.get("ref") if isinstance(raw, dict) and isinstance(raw.get("ref"), str) else None
        kind = raw.get("type") if isinstance(raw, dict) else None
        handler = self.handlers().get(kind) if isinstance(kind, str) else None
        if handler is None:
            self._refuse(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {str(kind)[:40]!r}.", ref)
            return
        try:
            frame = protocol.client_frame_adapter.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "frame"
            self._refuse(ErrorCode.INVALID_FRAME, f"{where}: {first.get('msg', 'invalid')}", ref)
            return
        if not self.ready and kind != "hello":
            self._refuse(ErrorCode.HANDSHAKE_REQUIRED, "Send hello first.", ref)
            return
        try:
            await handler(frame)
            self.refused_in_a_row = 0
        except HirfaError as exc:
            self._refuse(exc.code, exc.message, ref, **_error_extra(exc))
        except Exception:
            log.exception("frame %s failed", kind)
            self._refuse(ErrorCode.INTERNAL_ERROR, "Something went wrong on the server.", ref)

    def handlers(self) -> dict[str, Callable[[Any], Awaitable[None]]]:
        return {"hello": self.on_hello, "ping": self.on_ping, **self.room_handlers()}

    async def on_hello(self, frame: protocol.Hello) -> None:
        if frame.v != protocol.PROTOCOL_VERSION:
            self.emit(
                ErrorOut(
                    ref=frame.ref,
                    code=ErrorCode.UNSUPPORTED_VERSION.value,
                    message=f"This server speaks version {protocol.PROTOCOL_VERSION}.",
                )
            )
            await self.close_after_flush(CloseCode.UNSUPPORTED_VERSION)
            return
        if not self.ready:
            self.ready = True
            await self.join_group(realtime.user_group(self.user.pk))
        self.emit(
            Welcome(
                ref=frame.ref,
                user=Author(id=self.user.pk, name=await self.user_display_name()),
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


def _error_extra(exc: HirfaError) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    room = exc.details.get("room")
    if isinstance(room, int):
        extra["room"] = room
    if exc.retry_after is not None:
        extra["retry_after"] = round(exc.retry_after, 2)
    return extra
