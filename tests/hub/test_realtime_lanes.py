"""The fan-out's lanes (`realtime.Lane`): a live event is framed once and written by the
fan-out itself to every socket that would write it unchanged, one `send()` per socket and
turn, while the sockets that must look at it (a replay under way, a kind a part handles, a
socket no longer open) still get it through their own `deliver`, in order."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import override_settings

from hub import consumers, realtime, sockets
from hub.errors import CloseCode
from tests.daphne_fakes import daphne_send
from tests.hub.test_realtime import CountingSocket, _bare_consumer, _read_text_frames

ROOM = "room.5151"
USER = "user.5151"


class Gate(sockets.SocketPart):
    """A part whose `plain` answer the test sets; it looks at `presence_delta` itself."""

    def __init__(self) -> None:
        self.plain_groups: set[str] = set()
        self.asked: list[tuple[str, str]] = []

    def plain(self, group: str) -> bool:
        return group in self.plain_groups

    def kinds_seen(self) -> Collection[str]:
        return ("presence_delta",)

    def deliver(self, group: str, event: realtime.Event) -> bool:
        self.asked.append((group, event.kind))
        return True


class Member:
    """A hub consumer over a real socket pair, shaped as daphne hands it over."""

    def __init__(self, factory: Any = None) -> None:
        self.left, self.right = socket.socketpair()
        self.left.setblocking(False)
        send, self.protocol = daphne_send(self.left)
        if factory is not None:
            self.protocol.factory = factory  # one listening port: one factory for every socket
        self.protocol.transport.socket = self.counted = CountingSocket(self.protocol.transport.socket)
        self.consumer, self.closed = _bare_consumer(send)
        self.consumer.user = type("U", (), {"pk": 5151})()
        self.gate = Gate()
        self.consumer.parts = [self.gate]

    def read(self, count: int) -> list[str]:
        return _read_text_frames(self.right, count)

    def close(self) -> None:
        self.left.close()
        self.right.close()


@contextmanager
def local_bus() -> Iterator[None]:
    with override_settings(REDIS_URL=""):
        realtime.reset_backend()
        try:
            yield
        finally:
            realtime._loop_fanouts.pop(asyncio.get_running_loop(), None)
            realtime.reset_backend()


def message(n: int) -> realtime.Event:
    return realtime.Event("message", f'{{"type":"message","id":{n}}}', n)


async def _members(count: int, *groups: str, plain: bool = True) -> list[Member]:
    first = Member()
    members = [first] + [Member(first.protocol.factory) for _ in range(count - 1)]
    for member in members:
        if plain:
            member.gate.plain_groups.update(groups)
        for group in groups:
            await member.consumer.join_group(group)
    return members


async def test_a_live_event_is_framed_once_and_written_by_the_fan_out_to_each_open_lane() -> None:
    with local_bus():
        members = await _members(3, ROOM)
        try:
            factory = members[0].protocol.factory
            prepared: list[bytes] = []
            prepare = factory.prepareMessage

            def counting_prepare(payload: bytes, isBinary: bool = False) -> Any:
                prepared.append(payload)
                return prepare(payload, isBinary=isBinary)

            factory.prepareMessage = counting_prepare
            assert all(m.consumer.lanes[ROOM].open for m in members)
            realtime.fanout().dispatch(ROOM, message(1))
            for member in members:
                assert member.read(1) == ['{"type":"message","id":1}']
                assert member.counted.sends == 1
                assert member.gate.asked == []  # no call into the socket or its parts
            assert prepared == [b'{"type":"message","id":1}']
        finally:
            for member in members:
                member.close()


async def test_a_socket_whose_lane_is_closed_gets_each_event_through_its_parts() -> None:
    with local_bus():
        (member,) = await _members(1, ROOM, plain=False)
        try:
            assert not member.consumer.lanes[ROOM].open
            realtime.fanout().dispatch(ROOM, message(1))
            assert member.gate.asked == [(ROOM, "message")]
            assert member.read(1) == ['{"type":"message","id":1}']
            member.gate.plain_groups.add(ROOM)
            member.consumer.lanes_changed(ROOM)
            realtime.fanout().dispatch(ROOM, message(2))
            assert member.gate.asked == [(ROOM, "message")]
            assert member.read(1) == ['{"type":"message","id":2}']
        finally:
            member.close()


async def test_events_read_in_one_turn_go_to_a_socket_in_one_send_per_run_of_a_group_in_their_order() -> None:
    with local_bus():
        (member,) = await _members(1, ROOM, USER)
        try:
            fan = realtime.fanout()
            notice = realtime.Event("notification", '{"type":"notification"}')
            for group, event in [(ROOM, message(1)), (USER, notice), (ROOM, message(2)), (ROOM, message(3))]:
                fan._arrive(group, event)
            await asyncio.sleep(0)
            assert member.read(4) == [message(1).text, notice.text, message(2).text, message(3).text]
            assert member.counted.sends == 3  # [1], [notice], [2, 3]
        finally:
            member.close()


async def test_a_kind_a_part_must_see_takes_the_run_through_the_socket_in_order() -> None:
    with local_bus():
        seeing, other = await _members(2, ROOM)
        try:
            fan = realtime.fanout()
            delta = realtime.Event("presence_delta", '{"type":"presence_delta"}')
            for event in (message(1), delta, message(2)):
                fan._arrive(ROOM, event)
            await asyncio.sleep(0)
            texts = [message(1).text, delta.text, message(2).text]
            for member in (seeing, other):
                assert member.gate.asked == [(ROOM, "message"), (ROOM, "presence_delta"), (ROOM, "message")]
                assert member.read(3) == texts
        finally:
            seeing.close()
            other.close()


async def test_a_socket_no_longer_open_is_handed_its_events_and_writes_nothing() -> None:
    with local_bus():
        gone, open_ = await _members(2, ROOM)
        try:
            gone.protocol.state = gone.protocol.STATE_CLOSING
            realtime.fanout().dispatch(ROOM, message(1))
            assert gone.gate.asked == [(ROOM, "message")]
            assert gone.counted.sends == 0
            assert open_.read(1) == [message(1).text] and open_.gate.asked == []
        finally:
            gone.close()
            open_.close()


async def test_a_closing_socket_closes_its_lanes_and_leaving_forgets_the_lane() -> None:
    with local_bus():
        (member,) = await _members(1, ROOM, USER)
        try:
            consumer = member.consumer
            await consumer.leave_group(USER)
            assert USER not in consumer.lanes and USER not in realtime.fanout().lanes
            consumer.closing = True
            assert not consumer.lanes[ROOM].open
            consumer.lanes_changed()
            assert not consumer.lanes[ROOM].open  # a part's say cannot open a closing socket's lane
            realtime.fanout().dispatch(ROOM, message(1))
            assert member.counted.sends == 0
        finally:
            member.close()


async def test_a_slow_reader_on_a_lane_is_closed_with_4010(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumers, "_SEND_BACKLOG_MAX", [64 * 1024])
    with local_bus():
        (member,) = await _members(1, ROOM)
        member.left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        try:
            fan = realtime.fanout()
            for n in range(1, 2000):  # bounded: the kernel buffer fills after a few dozen
                fan.dispatch(ROOM, realtime.Event("message", '{"type":"message","text":"' + "z" * 2000 + f'","id":{n}}}'))
                if member.consumer.closing:
                    break
            await asyncio.sleep(0)
            assert member.closed == [int(CloseCode.TOO_SLOW_RESUME)]
            assert not member.consumer.lanes[ROOM].open
        finally:
            member.close()
