"""A member's hub socket over a real websocket (to a daphne server or through nginx), and a
chat client that behaves as the page does across restarts and failovers."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

#: Error codes after which the page sends again (frontend/static/hirfa/socket.js).
RETRYABLE = {"rate_limited", "slow_mode", "internal_error"}


async def connect_ws(
    server: Any, cookie: dict[str, str], *, ssl_context: ssl.SSLContext | None = None
) -> Any:
    """A hub socket of `server` (anything with `url` and `ws_url`) past the hello/welcome handshake."""
    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
        origin=server.url,
        open_timeout=10,
        ssl=ssl_context,
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def next_frame(ws: Any, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
    """The next frame of type `kind` whose fields equal `match`, skipping the others."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame


class Hubs:
    """The hubs behind the 'load balancer': a client connects to the next one that is up."""

    def __init__(self, servers: list[Any]) -> None:
        self.servers = servers
        self.down: set[int] = set()
        self._next = 0

    def pick(self) -> Any:
        for _ in range(len(self.servers)):
            server = self.servers[self._next % len(self.servers)]
            self._next += 1
            if server.port not in self.down:
                return server
        raise AssertionError("no hub is up")


@dataclass
class Chatter:
    """A chat client as the page behaves: it reconnects, resumes, and resends what was not acked."""

    name: str
    cookie: dict[str, str]
    room: int
    hubs: Hubs
    ws: Any = None
    rev: int = 0
    seen: dict[int, str] = field(default_factory=dict)  # message id -> client_id
    deliveries: int = 0
    unacked: dict[str, str] = field(default_factory=dict)  # client_id -> text
    closes: list[int] = field(default_factory=list)
    #: client_id -> when it was sent (first time), and when it arrived live (not fetched).
    sent_at: dict[str, float] = field(default_factory=dict)
    live_at: dict[str, float] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    other_frames: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: Sends refused with a retryable code (rate_limited, …) and sent again later.
    retried: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ssl_context: ssl.SSLContext | None = None

    async def connect(self) -> None:
        while True:
            try:
                self.ws = await connect_ws(self.hubs.pick(), self.cookie, ssl_context=self.ssl_context)
                break
            except (OSError, websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed):
                await asyncio.sleep(0.05)
        frame: dict[str, Any] = {"type": "subscribe", "room": self.room}
        if self.rev:
            frame["since_rev"] = self.rev
        await self.ws.send(json.dumps(frame))
        for client_id, text in list(self.unacked.items()):
            await self.ws.send(json.dumps({"type": "send", "room": self.room, "client_id": client_id, "text": text, "ref": client_id}))

    async def run(self) -> None:
        await self.connect()
        while True:
            try:
                frame = json.loads(await self.ws.recv())
            except websockets.exceptions.ConnectionClosed as exc:
                self.connected.clear()
                self.closes.append(exc.rcvd.code if exc.rcvd else 1006)
                await self.connect()
                continue
            kind = frame["type"]
            if kind == "message" and frame["room"] == self.room:
                self.deliveries += 1
                self.live_at.setdefault(frame["client_id"], time.monotonic())
                self.seen[frame["id"]] = frame["client_id"]
                self.rev = max(self.rev, frame["rev"])
            elif kind == "subscribed":
                self.rev = max(self.rev, frame.get("rev") or 0)
                self.connected.set()
            elif kind == "ack":
                self.unacked.pop(frame.get("ref") or "", None)
            elif kind == "error" and frame.get("ref") in self.unacked and frame.get("code") in RETRYABLE:
                # As the page does (socket.js): a refused send that may be retried is, later.
                self.retried += 1
                task = asyncio.create_task(self._resend_later(frame["ref"], frame.get("retry_after") or 1.0))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif kind == "error":
                self.errors.append(frame)
            elif kind == "resync":
                await self.ws.send(json.dumps({"type": "fetch", "room": self.room, "since_rev": self.rev}))
            elif kind == "messages":
                for message in frame["messages"]:
                    self.seen[message["id"]] = message["client_id"]
                    self.rev = max(self.rev, message["rev"])
            else:
                self.other_frames.append(frame)

    async def _resend_later(self, client_id: str, delay: float) -> None:
        await asyncio.sleep(max(0.5, float(delay)))
        text = self.unacked.get(client_id)
        if text is None or self.ws is None:
            return
        try:
            await self.ws.send(json.dumps({"type": "send", "room": self.room, "client_id": client_id, "text": text, "ref": client_id}))
        except websockets.exceptions.ConnectionClosed:
            pass  # sent again once reconnected

    async def send(self, client_id: str, text: str) -> None:
        self.unacked[client_id] = text
        self.sent_at.setdefault(client_id, time.monotonic())
        await self.connected.wait()
        try:
            await self.ws.send(json.dumps({"type": "send", "room": self.room, "client_id": client_id, "text": text, "ref": client_id}))
        except websockets.exceptions.ConnectionClosed:
            pass  # sent again once reconnected
