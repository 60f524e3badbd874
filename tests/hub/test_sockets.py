"""The socket is built from the parts the apps register (`hub.sockets`): each part's frames
reach its handlers, its say decides which live events go out, and it is asked on a rights
change and released on close. Through Channels' communicator, with a probe part."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from asgiref.sync import sync_to_async

from hub import protocol, realtime, revocation, sockets
from hub.protocol import Ack, Author, TypingOut, Unsubscribed
from rooms.consumers import RoomFrames
from signaling.consumers import MeetingFrames
from tests import factories
from tests.sockets import FakeSocket, expect, nothing_more, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

PROBE_ROOM = 424_242


class Probe(sockets.SocketPart):
    """Answers `unsubscribe` (a frame type it borrows), keeps typing hints from the client."""

    made: list[Probe] = []

    def __init__(self, socket: sockets.Socket) -> None:
        self.socket = socket
        self.rechecked: list[int | None] = []
        self.closed = False
        Probe.made.append(self)

    def handlers(self) -> Mapping[str, sockets.FrameHandler]:
        return {"unsubscribe": self.on_unsubscribe}

    async def on_unsubscribe(self, frame: protocol.Unsubscribe) -> None:
        await self.socket.join_group(realtime.room_group(frame.room))
        self.socket.emit(Unsubscribed(ref=frame.ref, room=frame.room))

    def deliver(self, group: str, event: realtime.Event) -> bool:
        return event.kind != "typing"

    async def recheck(self, room_id: int | None) -> None:
        self.rechecked.append(room_id)

    async def close(self) -> None:
        self.closed = True


def test_a_part_that_keeps_its_own_deliver_is_asked_about_every_event_unless_it_says_otherwise():
    """The fan-out writes a group's events without asking the socket (`realtime.Lane`) only
    while every part answers `plain`: a part that filters in `deliver` and says nothing of
    `plain` is never bypassed."""
    assert sockets.SocketPart().plain("room.1") is True
    assert Probe(FakeSocket(None)).plain("room.1") is False
    assert MeetingFrames(FakeSocket(None)).plain("room.1") is True  # it looks at `removed` only
    assert "removed" in MeetingFrames(FakeSocket(None)).kinds_seen()


def test_the_apps_register_their_parts_and_every_client_frame_has_one_handler():
    assert sockets.part_factories() == [RoomFrames, MeetingFrames]  # rooms below signaling
    kinds = ["hello", "ping"]
    for factory in sockets.part_factories():
        kinds += factory(FakeSocket(None)).handlers()
    assert sorted(kinds) == sorted(protocol.CLIENT_FRAME_TYPES)


async def test_a_registered_part_gets_its_frames_events_rights_changes_and_the_close(monkeypatch):
    monkeypatch.setattr(sockets, "_parts", {"probe": Probe})
    Probe.made.clear()
    amina = await sync_to_async(factories.artisan)("amina")
    comm = await open_socket(amina)
    (probe,) = Probe.made
    await comm.send_json_to({"type": "unsubscribe", "room": PROBE_ROOM, "ref": "u"})
    await expect(comm, "unsubscribed", ref="u")
    # The frames no part answers are unknown now.
    await comm.send_json_to({"type": "subscribe", "room": PROBE_ROOM, "ref": "s"})
    assert (await expect(comm, "error", ref="s"))["code"] == "unknown_type"

    group = realtime.room_group(PROBE_ROOM)
    realtime.publish_now(group, TypingOut(room=PROBE_ROOM, user=Author(id=1, name="Yacine")))
    realtime.publish_now(group, Ack(room=PROBE_ROOM, id=3))
    assert (await expect(comm, "ack"))["id"] == 3
    await nothing_more(comm, kind="typing")

    revoke = revocation.Revocation(scope="rights", room=PROBE_ROOM)
    realtime.publish_now(realtime.user_group(amina.pk), realtime.Event(revocation.KIND, revoke.model_dump_json()))
    for _ in range(250):  # bounded: the event crosses the bus first
        if probe.rechecked:
            break
        await asyncio.sleep(0.02)
    assert probe.rechecked == [PROBE_ROOM]
    await nothing_more(comm, kind="revoke")  # never passed on to the client
    await comm.disconnect()
    assert probe.closed


async def test_a_frame_does_not_wait_for_djangos_one_sync_thread():
    """Channels closes old database connections on Django's one thread-sensitive thread
    before it hands a socket any message: every frame of every socket of the process then
    queued for that thread (a crowd subscribing spent a tenth of the hub's time there),
    though no socket's query runs on it (`hub.db.db_call` has its own threads)."""
    import threading

    amina = await sync_to_async(factories.amina)()
    comm = await open_socket(amina)
    held = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(held.wait)())  # the one thread, taken
    try:
        await comm.send_json_to({"type": "ping", "ref": "p"})
        await expect(comm, "pong", ref="p", timeout=10)
    finally:
        held.set()
        await busy
        await comm.disconnect()


def test_socket_ids_are_unique_and_ask_the_kernel_for_no_randomness():
    """A socket's id (presence and the socket slots count by it) is its process's random
    prefix and a number: a uuid4 per opening was a system call on every socket."""
    from hub import consumers

    real_uuid = consumers.uuid
    try:
        consumers.uuid = None  # type: ignore[assignment]
        ids = [consumers.new_conn_id() for _ in range(10_000)]
    finally:
        consumers.uuid = real_uuid
    assert len(set(ids)) == 10_000
    assert all(i.startswith(consumers._PROCESS_ID) for i in ids) and len(consumers._PROCESS_ID) == 16


class ChannelProbe(Probe):
    """Keeps the channel-layer messages sent to its socket (`probe.event`)."""

    def __init__(self, socket: sockets.Socket) -> None:
        super().__init__(socket)
        self.events: list[dict[str, object]] = []

    def channel_handlers(self) -> Mapping[str, sockets.ChannelHandler]:
        async def keep(message: dict[str, object]) -> None:
            self.events.append(message)

        return {"probe.event": keep}


async def test_a_socket_opens_a_channel_on_the_channel_layer_only_when_a_part_asks(monkeypatch):
    """Channels opens a channel for every consumer and keeps a read pending on it; chat
    sockets never receive there, and a crowd's pending reads were 4 % of a hub's loop. A
    meeting join asks for it (SFU workers answer there)."""
    from channels.layers import get_channel_layer

    monkeypatch.setattr(sockets, "_parts", {"probe": ChannelProbe})
    Probe.made.clear()
    layer = get_channel_layer()
    assert layer is not None
    opened: list[str] = []
    new_channel = layer.new_channel

    async def counted(*args: object, **kwargs: object) -> str:
        name = await new_channel(*args, **kwargs)
        opened.append(name)
        return name

    monkeypatch.setattr(layer, "new_channel", counted)
    amina = await sync_to_async(factories.artisan)("amina")
    comm = await open_socket(amina)
    (probe,) = Probe.made
    await comm.send_json_to({"type": "unsubscribe", "room": PROBE_ROOM, "ref": "u"})
    await expect(comm, "unsubscribed", ref="u")
    assert opened == []
    name = await probe.socket.open_reply_channel()
    assert await probe.socket.open_reply_channel() == name and opened == [name]
    await layer.send(name, {"type": "probe.event", "n": 1})
    for _ in range(250):
        if probe.events:
            break
        await asyncio.sleep(0.02)
    assert probe.events == [{"type": "probe.event", "n": 1}]
    await comm.disconnect()
    assert probe.closed
