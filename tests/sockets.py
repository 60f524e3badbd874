"""Talking to the hub consumer through Channels' communicator, without a server; and a
fake socket to test the parts of the socket alone (`hub.sockets`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from channels.testing import WebsocketCommunicator

from hub.consumers import HubConsumer
from hub.db import db_call
from hub.protocol import PROTOCOL_VERSION, ServerFrame, encode


async def open_socket(user: Any, *, hello: bool = True, version: int = PROTOCOL_VERSION) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = user
    connected, _ = await comm.connect(timeout=10)  # a loaded machine can take over a second
    assert connected
    if hello:
        await comm.send_json_to({"type": "hello", "v": version, "ref": "hello"})
        welcome = await comm.receive_json_from(timeout=5)
        assert welcome["type"] == "welcome", welcome
    return comm


async def expect(comm: WebsocketCommunicator, kind: str, *, timeout: float = 5, **match: Any) -> dict[str, Any]:
    """The next frame of type `kind` (matching `match`), skipping others; fails after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        assert left > 0, f"no {kind} frame matching {match} within {timeout}s"
        frame = await comm.receive_json_from(timeout=left)
        if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def subscribe(comm: WebsocketCommunicator, room_id: int, since_rev: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Subscribe; return the replayed messages and the `subscribed` frame."""
    frame: dict[str, Any] = {"type": "subscribe", "room": room_id, "ref": f"sub-{room_id}"}
    if since_rev is not None:
        frame["since_rev"] = since_rev
    await comm.send_json_to(frame)
    replayed = []
    while True:
        got = await comm.receive_json_from(timeout=5)
        if got["type"] == "message" and got["room"] == room_id:
            replayed.append(got)
        elif got["type"] == "subscribed" and got["room"] == room_id:
            return replayed, got
        elif got["type"] == "error":
            raise AssertionError(f"subscribe refused: {got}")


async def nothing_more(comm: WebsocketCommunicator, *, kind: str | None = None, wait: float = 0.3) -> None:
    """Assert that no frame (of `kind`) arrives within `wait` seconds."""
    # receive_nothing, unlike a receive that times out, leaves the application running.
    while not await comm.receive_nothing(timeout=wait):
        frame = await comm.receive_json_from(timeout=1)
        assert kind is not None and frame["type"] != kind, f"unexpected frame {frame}"


async def clear_presence() -> None:
    """Forget every presence entry, so ids reused by an earlier test cannot show as online."""
    from django.conf import settings

    from rooms import presence

    presence._local._rooms.clear()
    if settings.REDIS_URL:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match="hirfa:presence:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


class FakeSocket:
    """A `hub.sockets.Socket` with no connection: what a part writes lands in `sent` (decoded),
    the groups it joins in `groups`; `on_join` runs as a group is joined (before the part
    goes on), the moment a live event may slip in."""

    def __init__(self, user: Any, *, version: int = PROTOCOL_VERSION) -> None:
        self.user = user
        self.conn_id = uuid.uuid4().hex
        self.protocol_version = version
        self.sent: list[dict[str, Any]] = []
        #: The length of each `push_many` (one write to the kernel each on a real socket).
        self.writes_many: list[int] = []
        self.groups: set[str] = set()
        self.on_join: Callable[[str], None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        #: The groups of each `lanes_changed` call (the part's `plain` answer may have changed).
        self.lanes_asked: list[str | None] = []

    async def open_reply_channel(self) -> str:
        return f"local.{self.conn_id}"

    def emit(self, frame: ServerFrame) -> None:
        self.push(encode(frame))

    def push(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def push_many(self, texts: Sequence[str]) -> None:
        self.writes_many.append(len(texts))
        for text in texts:
            self.push(text)

    async def join_group(self, group: str) -> None:
        self.groups.add(group)
        if self.on_join is not None:
            self.on_join(group)

    async def leave_group(self, group: str) -> None:
        self.groups.discard(group)

    def lanes_changed(self, group: str | None = None) -> None:
        self.lanes_asked.append(group)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(work))

    async def display_name(self) -> str:
        return str(await db_call(lambda: self.user.display_name)())

    async def settle(self) -> None:
        """Wait for the work the part spawned (bounded: a few rounds)."""
        for _round in range(5):
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=5)

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.sent]
