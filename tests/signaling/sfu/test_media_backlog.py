"""A starved SFU worker's media sockets: stale media is dropped, STUN is answered.

On two cores shared with a hundred load-generator peers the worker's loop came back to a
camera's socket seconds late; with 4 MB receive buffers it then read (and forwarded) media 30 s
old, and the peers' STUN consent checks, queued behind it, were answered after the peers had
given up on consent. Here a real media socket receives a flood while the loop is blocked, and
each media datagram costs the loop time to handle, as forwarding does.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import pytest
from aioice import stun

from signaling.sfu.aiortc_hooks import ice
from tests.parallel import worker_port

pytestmark = pytest.mark.timeout(60)

_RTP = 0x80  # the first byte of an RTP packet (version 2): never STUN's


class _Connection:
    """What the media socket's protocol needs of aioice's Connection: it records when each
    media datagram was handed over and answers binding requests at once."""

    _hirfa_dtls = None

    def __init__(self, cost: float) -> None:
        self._protocols: list[Any] = []
        self.cost = cost
        self.media_ages: list[float] = []
        self.requests = 0

    def data_received(self, data: bytes, component: int) -> None:
        (sent,) = struct.unpack_from("!d", data, 12)
        self.media_ages.append(time.time() - sent)
        until = time.perf_counter() + self.cost
        while time.perf_counter() < until:  # what forwarding one packet costs the loop
            pass

    def protocol_lost(self, protocol: Any) -> None:
        pass

    def request_received(self, message: stun.Message, addr: tuple[str, int], protocol: Any) -> None:
        self.requests += 1
        response = stun.Message(
            message_method=message.message_method, message_class=stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        protocol.send_stun(response, addr)


async def _media_socket(connection: _Connection) -> tuple[str, int]:
    policy = ice.HostCandidatePolicy(
        bind_address="127.0.0.1", announced_addresses=("127.0.0.1",), port_min=worker_port(43300), port_max=worker_port(43349)
    )
    (candidate,) = await ice._candidate_gatherer(connection, policy)(1, [])
    return candidate.host, candidate.port


def _media(seq: int) -> bytes:
    return bytes((_RTP, 96)) + seq.to_bytes(2, "big") + bytes(8) + struct.pack("!d", time.time()) + bytes(1000)


def _flood_while_the_loop_is_blocked(peer: socket.socket, address: tuple[str, int]) -> dict[bytes, float]:
    """3 s of a camera and its voice (100 packets a second) with a binding request every
    0.5 s, sent without yielding to the loop; the requests' transaction ids."""
    requests: dict[bytes, float] = {}
    started = time.monotonic()
    for seq in range(300):
        time.sleep(max(0.0, started + seq * 0.01 - time.monotonic()))
        peer.sendto(_media(seq), address)
        if seq % 50 == 49:
            request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
            peer.sendto(bytes(request), address)
            requests[request.transaction_id] = time.monotonic()
    return requests


async def test_a_blocked_loop_drops_stale_media_and_still_answers_binding_requests() -> None:
    """While the loop is blocked 3 s, a camera's socket fills with 3 s of media (100 packets a
    second, a 500 kbit/s camera and its voice) and a binding request every 0.5 s; each media
    packet costs the loop 5 ms (a starved worker's share of forwarding a voice to a hundred).
    Once the loop is back, no media older than the bound is handed on, and every binding request
    is answered within half a second, not after the stale backlog."""
    connection = _Connection(cost=0.005)
    address = await _media_socket(connection)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    try:
        requests = _flood_while_the_loop_is_blocked(peer, address)
        resumed = time.monotonic()
        answered: dict[bytes, float] = {}
        while len(answered) < len(requests) and time.monotonic() - resumed < 10:
            await asyncio.sleep(0.005)
            while True:
                try:
                    data = peer.recv(2048)
                except BlockingIOError:
                    break
                answered[stun.parse_message(data).transaction_id] = time.monotonic() - resumed
        await asyncio.sleep(0.2)
    finally:
        peer.close()
        for protocol in connection._protocols:
            protocol.transport.close()
    assert len(requests) == 6
    assert set(answered) == set(requests), "a binding request was never answered"
    assert max(answered.values()) < 0.5, f"binding requests answered {sorted(answered.values())} s after the loop resumed"
    stale = [age for age in connection.media_ages if age > ice.MEDIA_MAX_AGE + 0.3]
    assert not stale, f"{len(stale)} of {len(connection.media_ages)} media datagrams handed on up to {max(stale):.1f} s old"
    assert connection.media_ages, "fresh media is handed on"


async def test_the_media_sockets_receive_buffer_holds_a_fraction_of_a_second() -> None:
    """The kernel's backlog of one media socket is bounded: 1 MiB as the kernel counts it (about
    450 full-size datagrams, seconds of a camera), not the 8 MiB that held 30 s of a camera."""
    connection = _Connection(cost=0)
    await _media_socket(connection)
    (protocol,) = connection._protocols
    try:
        size = protocol.hirfa_socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        protocol.transport.close()
    assert 256 * 1024 <= size <= 1024 * 1024


class _Answering:
    """A peer on another thread that answers each binding request at once (a browser's network
    thread, which the server's loop does not hold up)."""

    def __init__(self) -> None:
        import threading

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.answered = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                data, addr = self.socket.recvfrom(2048)
            except TimeoutError:
                continue
            request = stun.parse_message(data)
            response = stun.Message(message_method=request.message_method, message_class=stun.Class.RESPONSE,
                                    transaction_id=request.transaction_id)
            response.add_message_integrity(b"secret")  # the request's key: the server checks it
            response.add_fingerprint()
            self.socket.sendto(bytes(response), addr)
            self.answered.set()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.socket.close()


class _PeerConnection:
    """What ``stun_round_trip`` reads of an RTCPeerConnection: its ICE connection's nominated pair."""

    def __init__(self, protocol: Any, remote: tuple[str, int]) -> None:
        from types import SimpleNamespace

        pair = SimpleNamespace(protocol=protocol, remote_addr=remote)
        connection = SimpleNamespace(
            _nominated={1: pair}, remote_password="secret",
            build_request=lambda pair, nominate: stun.Message(message_method=stun.Method.BINDING,
                                                              message_class=stun.Class.REQUEST),
        )
        self.transceiver = SimpleNamespace(
            receiver=SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(_connection=connection))))

    def getTransceivers(self) -> list[Any]:
        return [self.transceiver]


def _hold_the_loop(seconds: float) -> None:
    """What a busy worker's loop does to everything else: nothing runs for ``seconds``."""
    time.sleep(seconds)


@pytest.mark.parametrize("busy", [0.5, 1.2])
async def test_a_round_trip_is_timed_to_the_answers_arrival_not_to_when_a_busy_loop_reads_it(busy: float) -> None:
    """The allocator's delay signal is the subscriber's link: an answer that came back at once
    but waited in the socket while the worker's loop was busy (0.5 s; 1.2 s, past the ping's
    1 s timeout) is a short round trip, not a late or an unanswered one. Timed when the loop
    read it, a starved worker's round trips rose and fell by hundreds of milliseconds with
    nothing queued on any link, and its subscribers' probes failed."""
    connection = _Connection(cost=0)
    await _media_socket(connection)
    (protocol,) = connection._protocols
    peer = _Answering()
    try:
        measuring = asyncio.ensure_future(
            ice.stun_round_trip(_PeerConnection(protocol, peer.socket.getsockname()), timeout=1.0))  # type: ignore[arg-type]
        while not peer.answered.is_set():
            await asyncio.sleep(0.001)
        _hold_the_loop(busy)  # the answer waits in the socket meanwhile
        rtt = await measuring
    finally:
        peer.close()
        protocol.transport.close()
    assert rtt is not None and rtt < 0.1, f"a round trip of {rtt} s"
