"""The live delivery path: per-process fan-out, the direct daphne writer, and
closing a socket that cannot keep up (4010) instead of buffering for it."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections import deque
from typing import Any

import pytest
from django.test import override_settings

from hub import consumers, realtime
from hub.errors import CloseCode
from hub.protocol import Author, ResyncOut
from tests.conftest import skip_or_fail
from tests.daphne_fakes import daphne_send


class Recorder:
    """A local subscriber that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.lost = 0

    def deliver(self, group: str, event: realtime.Event) -> None:
        self.got.append((group, event.text))

    def bus_resumed(self) -> None:
        self.lost += 1


async def _wait_for(predicate: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)


# --- fan-out -------------------------------------------------------------------------


async def test_one_publish_reaches_every_local_socket_once() -> None:
    with override_settings(REDIS_URL=""):
        realtime.reset_backend()
        try:
            fan = realtime.fanout()
            subs = [Recorder() for _ in range(300)]
            for sub in subs:
                await fan.join("room.41", sub)
            outsider = Recorder()
            await fan.join("room.42", outsider)
            realtime.publish_now("room.41", realtime.Event("message", '{"type":"message","id":1}'))
            await _wait_for(lambda: all(s.got for s in subs))
            assert all(s.got == [("room.41", '{"type":"message","id":1}')] for s in subs)
            assert outsider.got == []
            for sub in subs:
                await fan.leave("room.41", sub)
            await fan.leave("room.42", outsider)
            assert not fan.has("room.41")
        finally:
            realtime.reset_backend()


async def test_a_rooms_changes_reach_its_sockets_in_rev_order(monkeypatch: Any) -> None:
    """Two posts committed at once may be published in the other order; members would fetch.
    A change ahead of a gap waits for it, a bounded time; frames without a rev never wait."""
    monkeypatch.setattr(realtime, "REORDER_HOLD_SECONDS", 0.2)
    with override_settings(REDIS_URL=""):
        realtime.reset_backend()
        try:
            fan = realtime.Fanout(asyncio.get_running_loop())
            sub = Recorder()
            await fan.join("room.7", sub)
            fan.rev_known("room.7", 10)

            def change(rev: int) -> realtime.Event:
                return realtime.Event("message", f"rev {rev}", rev)

            fan.dispatch("room.7", change(12))
            fan.dispatch("room.7", realtime.Event("typing", "typing"))
            fan.dispatch("room.7", change(11))
            fan.dispatch("room.7", change(13))
            assert [text for _, text in sub.got] == ["typing", "rev 11", "rev 12", "rev 13"]
            fan.dispatch("room.7", change(15))  # 14 was lost on the way
            assert sub.got[-1][1] == "rev 13"
            await _wait_for(lambda: sub.got[-1][1] == "rev 15", seconds=2)
            assert sub.got[-1][1] == "rev 15"
            fan.dispatch("room.7", change(16))
            assert sub.got[-1][1] == "rev 16"
            fan.dispatch("room.7", change(9))  # older than what was delivered: at once (clients upsert)
            assert sub.got[-1][1] == "rev 9"
            await fan.leave("room.7", sub)
            assert not fan._held and not fan._delivered_rev
        finally:
            realtime.reset_backend()


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: no Redis to test the bus against")
    return url


@pytest.mark.redis
async def test_redis_bus_delivers_after_an_idle_period_longer_than_5_seconds() -> None:
    """redis-py 8 defaults to a 5 s socket timeout, which killed idle subscriptions (channels_redis 422)."""
    url = _redis_url()
    with override_settings(REDIS_URL=url):
        realtime.reset_backend()
        try:
            fan = realtime.Fanout(asyncio.get_running_loop())
            first, second = Recorder(), Recorder()
            group = f"room.{os.getpid()}0917"
            await fan.join(group, first)
            await fan.join(group, second)
            await asyncio.sleep(6.5)
            realtime.publish_now(group, realtime.Event("message", "after the silence", rev=7))
            await _wait_for(lambda: first.got and second.got)
            assert first.got == [(group, "after the silence")]
            assert second.got == [(group, "after the silence")]
            assert first.lost == 0 and second.lost == 0
            await fan.leave(group, first)
            await fan.leave(group, second)
            if fan._reader is not None:
                fan._reader.cancel()
        finally:
            realtime.reset_backend()


@pytest.mark.redis
async def test_joining_a_group_already_confirmed_by_redis_takes_no_turn_of_the_loop() -> None:
    """The second member of a room on a process joins at once: under a crowd, each turn of
    the loop waits behind every other socket's work."""
    url = _redis_url()
    with override_settings(REDIS_URL=url):
        realtime.reset_backend()
        try:
            fan = realtime.Fanout(asyncio.get_running_loop())
            first, second = Recorder(), Recorder()
            group = f"room.{os.getpid()}0919"
            await fan.join(group, first)
            joining = fan.join(group, second)
            with pytest.raises(StopIteration):
                joining.send(None)  # done without suspending
            assert fan.groups[group] == {first, second}
            await fan.leave(group, first)
            await fan.leave(group, second)
            if fan._reader is not None:
                fan._reader.cancel()
        finally:
            realtime.reset_backend()


@pytest.mark.redis
async def test_a_crowd_joining_new_groups_at_once_subscribes_in_one_command() -> None:
    """A restarted hub's members each join their own user group: one SUBSCRIBE (one write to
    Redis) per socket was a tenth of the process's time in the storm; those that arrive while
    one is on its way go together. Every one of them still hears what is published after it
    joined."""
    url = _redis_url()
    with override_settings(REDIS_URL=url):
        realtime.reset_backend()
        try:
            fan = realtime.Fanout(asyncio.get_running_loop())
            base = f"user.{os.getpid()}0921"
            first = Recorder()
            await fan.join(f"{base}-0", first)
            sent: list[int] = []
            real_subscribe = fan._pubsub.subscribe

            async def counted(*channels: Any) -> Any:
                sent.append(len(channels))
                return await real_subscribe(*channels)

            fan._pubsub.subscribe = counted
            crowd = [Recorder() for _ in range(40)]
            await asyncio.gather(*(fan.join(f"{base}-{i + 1}", r) for i, r in enumerate(crowd)))
            assert sum(sent) == 40 and len(sent) <= 2, sent
            for i in range(len(crowd)):
                realtime.publish_now(f"{base}-{i + 1}", realtime.Event("notice", f"to {i + 1}"))
            await _wait_for(lambda: all(r.got for r in crowd))
            assert [r.got for r in crowd] == [[(f"{base}-{i + 1}", f"to {i + 1}")] for i in range(len(crowd))]
            for i, r in enumerate([first, *crowd]):
                await fan.leave(f"{base}-{i}", r)
            if fan._reader is not None:
                fan._reader.cancel()
        finally:
            realtime.reset_backend()


@pytest.mark.redis
async def test_the_bus_publisher_ends_when_cancelled_at_any_turn_of_a_publish() -> None:
    """A cancel that lands as a publish's write to Redis completes still ends the publisher.
    On Python 3.11 `asyncio.wait_for`, in which redis-py wraps each write of a client with a
    socket timeout, returns the finished write and drops such a cancel (bpo-42130, mended in
    3.12): the publisher went back to waiting for events, and the loop's close (a test's end,
    `asyncio.run`'s) waited for it without end."""
    url = _redis_url()
    with override_settings(REDIS_URL=url):
        realtime.reset_backend()
        fan = realtime.Fanout(asyncio.get_running_loop())
        group = f"room.{os.getpid()}0920"
        went_on = []
        try:
            fan.submit(group, realtime.Event("typing", "{}"))
            await _wait_for(lambda: not fan._outgoing)  # connected: the cancels below land on writes
            for turns in range(16):
                fan.submit(group, realtime.Event("typing", "{}"))
                publisher = fan._publisher
                assert publisher is not None
                for _ in range(turns):
                    await asyncio.sleep(0)
                publisher.cancel()
                await asyncio.wait({publisher}, timeout=5)
                if not publisher.done():
                    went_on.append(turns)
                    publisher.cancel()  # waiting for the next event: this cancel ends it
                    await asyncio.wait({publisher}, timeout=5)
                assert publisher.done()
        finally:
            if fan._publish_client is not None:
                await fan._publish_client.aclose()
            realtime.reset_backend()
        assert went_on == [], f"the publisher went on after a cancel at turns {went_on}"


async def test_publishing_from_the_event_loop_never_waits_for_a_stalled_redis() -> None:
    """A Redis that accepts connections and never answers must not freeze the process's sockets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    with override_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0", HIRFA_REDIS_TIMEOUT_SECONDS=1.0):
        realtime.reset_backend()
        try:
            fan = realtime.fanout()
            local = Recorder()
            fan.groups.setdefault("room.77", set()).add(local)
            loop = asyncio.get_running_loop()
            started = loop.time()
            realtime.publish_now("room.77", realtime.Event("typing", '{"type":"typing","room":77}'))
            # The old synchronous publish held the loop for its whole socket timeout (10 s).
            assert loop.time() - started < 0.5
            await _wait_for(lambda: fan.degraded, seconds=5)
            # Cut off from Redis, the process still serves its own sockets.
            assert local.got == [("room.77", '{"type":"typing","room":77}')]
        finally:
            fan.groups.pop("room.77", None)
            if fan._recovering is not None:
                fan._recovering.cancel()
            realtime._loop_fanouts.pop(asyncio.get_running_loop(), None)
            realtime.reset_backend()
            listener.close()


# --- the direct daphne writer, with real autobahn framing and a real kernel socket ---------


def _read_text_frames(sock: socket.socket, count: int) -> list[str]:
    sock.settimeout(5)
    data = b""
    texts: list[str] = []
    while len(texts) < count:
        data += sock.recv(65536)
        while len(data) >= 2:
            length = data[1] & 0x7F
            head = 2
            if length == 126:
                length, head = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(data[2:10], "big"), 10
            if len(data) < head + length:
                break
            assert data[0] == 0x81  # a final text frame, unmasked (server to client)
            texts.append(data[head : head + length].decode())
            data = data[head + length :]
    return texts


def test_direct_socket_is_found_behind_daphne_send_and_frames_text() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        send, protocol = daphne_send(left)
        direct = realtime.DirectSocket.find(send)
        assert direct is not None
        texts = ['{"type":"message","text":"سلام"}', "x" * 200, "y" * 70000]
        for text in texts:
            assert direct.write(text) is not None
        assert _read_text_frames(right, 3) == texts
        assert direct.backlog() == 0
        protocol.state = protocol.STATE_CLOSING
        assert direct.write("late") is None
    finally:
        left.close()
        right.close()


class CountingSocket:
    """A kernel socket that counts the `send` calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)


def test_a_replay_batch_is_framed_once_for_all_sockets_and_written_in_one_send() -> None:
    """A crowd resuming the same messages: each text is framed once for every socket (not
    once per socket when other texts were written in between), and each socket's batch
    goes to the kernel in one system call."""
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        sends = []
        for left, _right in pairs:
            left.setblocking(False)
            sends.append(daphne_send(left))
        factory = sends[0][1].factory
        sends[1][1].factory = factory  # one listening port: one factory for every socket
        framed: list[bytes] = []
        prepare = factory.prepareMessage

        def counting_prepare(payload: bytes, isBinary: bool = False) -> Any:
            framed.append(payload)
            return prepare(payload, isBinary=isBinary)

        factory.prepareMessage = counting_prepare
        counted = []
        for _send, protocol in sends:
            protocol.transport.socket = CountingSocket(protocol.transport.socket)
            counted.append(protocol.transport.socket)
        batch = [f'{{"type":"message","id":{i},"text":"{"x" * i}"}}' for i in range(1, 51)]
        directs = [realtime.DirectSocket.find(send) for send, _protocol in sends]
        assert all(directs)
        for direct in directs:
            assert direct.write("a live event between two replays") == 0  # type: ignore[union-attr]
            assert direct.write_many(batch) == 0  # type: ignore[union-attr]
        assert len(framed) == len(batch) + 1
        assert [c.sends for c in counted] == [2, 2]
        for _left, right in pairs:
            assert _read_text_frames(right, 51) == ["a live event between two replays", *batch]
    finally:
        for left, right in pairs:
            left.close()
            right.close()


def test_a_batch_queues_behind_bytes_the_transport_still_holds() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        send, protocol = daphne_send(left)
        direct = realtime.DirectSocket.find(send)
        assert direct is not None
        protocol.transport.dataBuffer = b"z"  # one byte not yet written: nothing jumps ahead of it
        held = direct.write_many(["one", "two"])
        assert protocol.transport._tempDataBuffer == [b"\x81\x03one", b"\x81\x03two"]
        assert held == 1 + 10
        protocol.state = protocol.STATE_CLOSING
        assert direct.write_many(["late"]) is None
    finally:
        left.close()
        right.close()


def test_direct_socket_is_not_used_for_other_servers() -> None:
    async def send(message: dict[str, Any]) -> None:
        return None

    assert realtime.DirectSocket.find(send) is None
    assert realtime.DirectSocket.find(functools.partial(send)) is None


# --- the consumer's outbox ------------------------------------------------------------


def _bare_consumer(send: Any) -> tuple[consumers.HubConsumer, list[int]]:
    consumer = consumers.HubConsumer()
    consumer.base_send = send
    consumer.outbox = deque()
    consumer.closing = False
    consumer.parts = []
    consumer.lanes = {}
    consumer.bus_groups = set()
    consumer.wake = asyncio.Event()
    closed: list[int] = []

    async def close(code: int | bool | None = None, reason: str | None = None) -> None:
        closed.append(code)  # type: ignore[arg-type]

    consumer.close = close  # type: ignore[method-assign]
    return consumer, closed


async def test_a_slow_reader_is_closed_with_4010_instead_of_buffering(monkeypatch: Any) -> None:
    """Daphne's send never blocks: the unsent bytes in the transport reveal the slow reader."""
    monkeypatch.setattr(consumers, "_SEND_BACKLOG_MAX", [256 * 1024])
    left, right = socket.socketpair()
    left.setblocking(False)
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    try:
        send, protocol = daphne_send(left)
        consumer, closed = _bare_consumer(send)
        text = '{"type":"message","text":"' + "z" * 1000 + '"}'
        pushed = 0
        for _ in range(10_000):  # bounded: the kernel buffer fills after a few hundred
            consumer.push(text)
            pushed += 1
            if consumer.closing:
                break
        await asyncio.sleep(0)
        assert closed == [int(CloseCode.TOO_SLOW_RESUME)]
        assert pushed < 10_000
        held = realtime.DirectSocket.find(send).backlog()  # type: ignore[union-attr]
        assert held is not None and held <= 256 * 1024 + len(text) + 16
        consumer.push(text)  # nothing more is taken once closing
        assert protocol.transport._tempDataLen == held
    finally:
        left.close()
        right.close()


async def test_a_full_outbox_closes_with_4010_when_the_transport_is_unknown(monkeypatch: Any) -> None:
    monkeypatch.setattr(consumers, "_SEND_QUEUE_MAX", [50])
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    consumer, closed = _bare_consumer(send)
    for i in range(51):  # no await: the writer cannot drain in between
        consumer.push(f"frame {i}")
    await asyncio.sleep(0)
    assert closed == [int(CloseCode.TOO_SLOW_RESUME)]
    assert consumer.closing and not consumer.outbox


async def test_frames_keep_their_order_through_the_outbox() -> None:
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        sent.append(message["text"])

    consumer, closed = _bare_consumer(send)
    writer = asyncio.get_running_loop().create_task(consumer._writer())
    try:
        for i in range(100):
            consumer.push(str(i))
            if i % 7 == 0:
                await asyncio.sleep(0)
        await _wait_for(lambda: len(sent) == 100)
        assert sent == [str(i) for i in range(100)]
        assert closed == []
    finally:
        writer.cancel()


async def test_push_many_keeps_its_frames_behind_those_already_queued() -> None:
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        sent.append(message["text"])

    consumer, closed = _bare_consumer(send)
    writer = asyncio.get_running_loop().create_task(consumer._writer())
    try:
        consumer.push("0")
        consumer.push_many(["1", "2", "3"])
        consumer.push("4")
        await _wait_for(lambda: len(sent) == 5)
        assert sent == ["0", "1", "2", "3", "4"]
        assert closed == []
    finally:
        writer.cancel()


@pytest.mark.redis
async def test_events_read_from_the_bus_together_reach_a_socket_in_one_write() -> None:
    """A process that fell behind finds several events waiting on the bus: each socket gets
    them in one write (one system call), in their order, instead of one write per event."""
    url = _redis_url()
    left, right = socket.socketpair()
    left.setblocking(False)
    with override_settings(REDIS_URL=url):
        realtime.reset_backend()
        try:
            realtime.fanout()
            send, protocol = daphne_send(left)
            protocol.transport.socket = counted = CountingSocket(protocol.transport.socket)
            consumer, closed = _bare_consumer(send)
            group = f"room.{os.getpid()}0918"
            await consumer.join_group(group)
            texts = [f'{{"type":"typing","room":{i}}}' for i in range(5)]
            for text in texts:  # one turn of the loop: one pipeline to Redis, read back together
                realtime.publish_now(group, realtime.Event("typing", text))
            await _wait_for(lambda: counted.sends > 0)
            await asyncio.sleep(0.2)  # any later write would be done by now
            assert _read_text_frames(right, 5) == texts
            assert counted.sends == 1
            assert closed == []
            await consumer.leave_group(group)
        finally:
            reader = realtime.fanout()._reader
            if reader is not None:
                reader.cancel()
            realtime._loop_fanouts.pop(asyncio.get_running_loop(), None)
            realtime.reset_backend()
            left.close()
            right.close()


def test_direct_socket_turns_nagle_off():
    """Small frames must not wait for the client's delayed ACK (up to 40 ms each)."""
    from types import SimpleNamespace

    calls = []
    transport = SimpleNamespace(setTcpNoDelay=lambda on: calls.append(on))
    socket = realtime.DirectSocket(server=None, protocol=SimpleNamespace(transport=transport), open_state=3)
    socket.set_no_delay()
    assert calls == [True]


def test_nagle_off_on_a_connection_already_gone_is_not_an_error():
    """A client that gave up while its handshake waited: Twisted has dropped the socket."""
    from types import SimpleNamespace

    from twisted.internet import tcp

    gone = tcp.Connection.__new__(tcp.Connection)  # no `socket` attribute, as after connectionLost
    socket = realtime.DirectSocket(server=None, protocol=SimpleNamespace(transport=gone), open_state=3)
    socket.set_no_delay()  # no AttributeError ('Server' object has no attribute 'socket')


# --- events carry their kind -----------------------------------------------------------


def test_an_event_keeps_its_kind_and_rev_across_the_wire() -> None:
    message = realtime.Event("message", '{"type":"message","text":"line\\nline"}\n', rev=12)
    assert realtime.Event.from_wire(message.wire()) == message
    resync = realtime.Event.of(ResyncOut(rooms=[4]))
    assert (resync.kind, resync.rev) == ("resync", None)
    assert realtime.Event.from_wire(resync.wire()) == resync
    for malformed in ("", "no header", "\n{}", "message twelve\n{}"):
        assert realtime.Event.from_wire(malformed) is None
    with pytest.raises(TypeError):
        realtime.Event.of(Author(id=1, name="Amina"))  # a part of a frame has no kind
