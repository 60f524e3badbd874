"""The network lab itself: each profile's round trip, loss and rate, measured through it.

The lab (tests/netlab.py) impairs links in user space; what the meeting
benchmarks (bench/netlab.py) claim about a profile holds only if a link built
from that profile measures as the profile says: here, within 10 %.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator

import pytest

from tests.netlab import (
    PROFILES,
    Direction,
    Lab,
    _Pipe,
    lab_fixture,
    packet_kind,
    probe_one_way,
    probe_rtt,
)

TOLERANCE = 0.10


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_fixture()


def within(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= TOLERANCE * expected


@pytest.mark.parametrize("name", ["good", "3g", "lossy"])
def test_a_link_measures_as_its_profile_says(lab: Lab, name: str) -> None:
    profile = PROFILES[name]
    lab.add("phone", profile)

    rtt = probe_rtt(lab, "phone", count=100)
    # The first quartile: on a busy machine, scheduling delays add to the median, never subtract.
    assert within(rtt["rtt_p25_ms"], profile.rtt_ms), (rtt, profile)

    for direction, params in (("down", profile.down), ("up", profile.up)):
        # Loss: small datagrams well below the link's rate, so that nothing queues (even when a
        # busy machine makes the sender bursty).
        pace = 0.4 * params.rate_bps if params.rate_bps else 200_000  # 2,000 datagrams/s: a user-space
        # forwarder sharing two cores with another test worker kept up with 20,000/s only mostly
        sent = probe_one_way(lab, "phone", direction=direction, packets=1000, size=12, rate_bps=pace)
        if params.loss:
            assert within(sent["loss"], params.loss), (direction, sent, params)
        else:
            assert sent["loss"] == 0, (direction, sent)
        # Rate: twice as fast as the link for about 2 s; what comes out is the link's rate.
        if params.rate_bps:
            packets = int(2 * params.rate_bps * 2 / (1000 * 8))
            blast = probe_one_way(lab, "phone", direction=direction, packets=packets, size=972,
                                  rate_bps=2 * params.rate_bps)
            assert within(blast["rate_bps"], params.rate_bps), (direction, blast, params)
            assert blast["loss"] > 0.3, blast  # the bounded queue dropped the excess


def test_a_handover_darkens_the_link_then_it_returns_on_another_address(lab: Lab) -> None:
    phone = lab.add("phone", PROFILES["handover"])
    old = phone.address
    assert probe_rtt(lab, "phone", count=10)["loss"] == 0

    dark: dict[str, str] = {}
    mover = threading.Thread(target=lambda: dark.setdefault("address", lab.handover("phone")))
    mover.start()
    during = probe_rtt(lab, "phone", count=40, interval=0.05)  # all within the 3 s dark
    mover.join()
    assert during["loss"] == 1.0, during

    assert dark["address"] != old
    assert probe_rtt(lab, "phone", count=20)["loss"] == 0


def test_a_late_forwarder_still_runs_the_link_at_its_rate() -> None:
    """A busy machine wakes the forwarder late and hands it packets in batches: link time is not lost.

    Packets arrive at twice the link's rate but are read only every 100 ms (all with the time of
    the read, as the forwarder's loop does); over 2 s the link must still carry its 2 s worth.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    size, rate = 1000, 200_000  # 25 packets a second
    pipe = _Pipe(write_end, Direction(delay_ms=0, jitter_ms=0, loss=0, rate_bps=rate, queue_ms=300),
                 random.Random(1))
    released = []
    try:
        for wake in range(1, 21):  # every 100 ms for 2 s
            now = wake * 0.1
            for _ in range(10):  # 100 packets/s offered since the last wake-up
                pipe.ingress(b"x" * size, now)
            pipe.service(now)
            while True:
                try:
                    released.append(len(os.read(read_end, size)))
                except BlockingIOError:
                    break
    finally:
        os.close(read_end)
        os.close(write_end)
    # The link was never idle after the first read at 0.1 s: 1.9 s at 25 packets/s.
    assert len(released) >= int(1.9 * rate / (size * 8)) - 1, len(released)
    assert pipe.dropped > 0  # and the bounded queue dropped the excess


def test_the_link_counts_what_kind_of_packets_fill_it() -> None:
    """The counters say what a narrow link carried (bench/netlab.py's ``link_window``): RTP by
    payload type (its header is not encrypted), RTCP, STUN, DTLS and TCP apart, and which were
    dropped by the queue."""
    def udp(payload: bytes) -> bytes:
        return bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17]) + bytes(18) + payload  # (length not read)

    rtp = lambda pt: bytes([0x80, pt]) + bytes(10)
    assert packet_kind(udp(rtp(96))) == "rtp96"
    assert packet_kind(udp(rtp(0x80 | 63))) == "rtp63"  # the marker bit is not the type
    assert packet_kind(udp(bytes([0x81, 200]) + bytes(6))) == "rtcp"
    assert packet_kind(udp(bytes([0, 1]) + bytes(18))) == "stun"
    assert packet_kind(udp(bytes([22, 0xFE, 0xFD]) + bytes(10))) == "dtls"
    tcp = bytearray(udp(bytes(20)))
    tcp[9] = 6
    assert packet_kind(bytes(tcp)) == "tcp"
    assert packet_kind(b"\x60" + bytes(60)) == "other"  # IPv6 is not looked into

    read_end, write_end = os.pipe()
    try:
        pipe = _Pipe(write_end, Direction(delay_ms=0, jitter_ms=0, loss=0, rate_bps=8_000, queue_ms=0),
                     random.Random(1))
        for _ in range(3):
            pipe.ingress(udp(rtp(97) + bytes(988)), 0.0)  # 1,028 bytes each
        # The first goes onto the link at once, the queue (1,500 bytes at least) holds the second.
        assert pipe.kinds == {"rtp97": [3, 3 * 1028, 1]}
    finally:
        os.close(read_end)
        os.close(write_end)
