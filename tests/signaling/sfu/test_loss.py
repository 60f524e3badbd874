"""Loss between a publisher and the server: recovered by NACK retries, never by a keyframe storm.

The link is the server's media socket: a filter in front of its SRTP handling
drops the packets a test chooses (their RTP header is in clear: SSRC and
sequence number), as a lossy radio link would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from signaling.sfu import Sfu, TrackSource
from signaling.sfu.aiortc_hooks import ice

from .peers import ClientPeer, PatternVideoTrack, wait_until
from .test_forwarding_e2e import close_all, join, publisher_sender

pytestmark = pytest.mark.timeout(120)


class LossyLink:
    """Drops datagrams reaching the server that ``drop(ssrc, seq)`` picks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.drop: Callable[[int, int], bool] = lambda ssrc, seq: False
        self.dropped: list[tuple[int, int]] = []
        real = ice.receive_srtp

        def receive_srtp(connection, data: bytes) -> bool:
            if 192 <= data[1] <= 208:  # RTCP passes
                return real(connection, data)
            ssrc, seq = int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")
            if self.drop(ssrc, seq):
                self.dropped.append((ssrc, seq))
                return True
            return real(connection, data)

        monkeypatch.setattr(ice, "receive_srtp", receive_srtp)


class SteadyClock:
    """A NACK scheduler's time, moved on by its own timers only: each one fires at exactly the
    time it was armed for, however late a loaded event loop runs it.

    On the wall clock, a loop 0.7 s late with its retry timer made a 0.6 s age limit give a
    packet up after its first NACK: right for the product (the packet was too old to be worth
    asking again), but not the case these tests are about. Their timing is pinned here; the
    scheduler's own rules on a fake clock are tests/signaling/sfu/test_units.py's.
    """

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        due = self.now + delay

        def fire() -> None:
            self.now = max(self.now, due)
            callback()

        return asyncio.get_running_loop().call_later(delay, fire)


def steady_nack_time(nack: Any, *, rtt: float) -> None:
    """Run each stream's NACK scheduler on a :class:`SteadyClock` with a fixed round trip
    (measured, it would follow the loaded machine too)."""
    for stream in nack.by_ssrc.values():  # one stream: no simulcast from aiortc
        clock = SteadyClock()
        stream._clock, stream._call_later, stream._rtt_hint = clock, clock.call_later, lambda: rtt


def count_calls(obj, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(obj, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    setattr(obj, name, counting)
    return calls


async def test_a_packet_lost_twice_is_recovered_by_nack_retries_without_a_keyframe(
    sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = LossyLink(monkeypatch)
    meeting = sfu.meeting("guild-lossy-aures")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim", loss_timeout=3.0)  # a browser's jitter buffer waits for NACKed packets
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 20, what="karim video")
    sender = publisher_sender(amina, "video")
    keyframes_asked = count_calls(sender, "_send_keyframe")
    (forwarder,) = meeting.participant("amina").forwarders()
    nack = forwarder.nack
    assert nack is not None
    steady_nack_time(nack, rtt=0.1)
    assembler = karim.assemblers[karim.mid_for("amina", TrackSource.CAMERA)]
    requests_before, losses_before = forwarder.keyframe_requests_sent, assembler.losses
    frames_before = len(karim.frames_from("amina", TrackSource.CAMERA))

    victim: list[int] = []
    rtx_dropped: list[int] = []

    def drop(ssrc: int, seq: int) -> bool:
        if ssrc == sender._ssrc and not victim:
            victim.append(seq)
            return True  # the original
        if ssrc == sender._rtx_ssrc and victim and len(rtx_dropped) < 2:
            rtx_dropped.append(seq)
            return True  # ...and its first two retransmissions
        return False

    link.drop = drop
    await wait_until(lambda: nack.recovered >= 1, what="the lost packet to be recovered")
    await wait_until(
        lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= frames_before + 30, what="video to go on"
    )
    assert len(rtx_dropped) == 2, "the first two retransmissions were not dropped"
    assert nack.nacks_sent >= 3 and nack.given_up == 0
    assert forwarder.keyframe_requests_sent == requests_before, "a keyframe was asked for a recoverable loss"
    assert keyframes_asked == [], "the publisher was asked for a keyframe"
    assert assembler.losses == losses_before, "karim lost a frame"
    await close_all(sfu, sessions)


async def test_a_packet_lost_for_good_gives_up_and_asks_one_keyframe(
    sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = LossyLink(monkeypatch)
    meeting = sfu.meeting("guild-lossy-sahara")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    # karim's frames wait behind the hole for as long as the test lasts: his own PLI (after
    # 0.1 s by default) asked for a keyframe too, and whether the give-up's request, 0.5 s
    # later, was absorbed by the 0.5 s minimum interval depended on the loaded machine
    karim = ClientPeer("karim", loss_timeout=60.0)
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 20, what="karim video")
    sender = publisher_sender(amina, "video")
    keyframes_asked = count_calls(sender, "_send_keyframe")
    (forwarder,) = meeting.participant("amina").forwarders()
    nack = forwarder.nack
    assert nack is not None
    steady_nack_time(nack, rtt=0.1)
    for stream in nack.by_ssrc.values():
        stream._max_age = 0.6  # give up sooner than the default 1.5 s
    victim: list[int] = []
    rtx_dropped: list[int] = []

    def drop(ssrc: int, seq: int) -> bool:
        if ssrc == sender._ssrc and not victim:
            victim.append(seq)
            return True
        if victim and ssrc == sender._rtx_ssrc:
            rtx_dropped.append(seq)
            return True  # every retransmission lost too
        return False

    link.drop = drop
    await wait_until(lambda: nack.given_up >= 1, what="the NACK retries to give up")
    await wait_until(lambda: keyframes_asked, what="a keyframe request to reach amina")
    await wait_until(lambda: rtx_dropped, what="amina to answer a NACK")
    await asyncio.sleep(0.3)
    assert len(keyframes_asked) == 1
    assert nack.nacks_sent >= 3, "gave up without retrying"  # NACKs at 0, 0.1, ... 0.4 or 0.5 s
    await close_all(sfu, sessions)


async def test_many_subscribers_asking_for_a_keyframe_make_one_request(sfu: Sfu) -> None:
    meeting = sfu.meeting("guild-many-plis")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    viewers = [ClientPeer(name) for name in ("karim", "yasmine", "nadia")]
    sessions = [await join(meeting, amina, TrackSource.CAMERA)]
    for viewer in viewers:
        sessions.append(await join(meeting, viewer))
    for viewer in viewers:
        await wait_until(lambda: len(viewer.frames_from("amina", TrackSource.CAMERA)) >= 10, what=f"{viewer.name} video")  # noqa: B023 (awaited here)
    (forwarder,) = meeting.participant("amina").forwarders()
    nack = forwarder.nack
    assert nack is not None
    await wait_until(lambda: not forwarder.keyframe_pending, what="the start-up keyframes to arrive")
    await asyncio.sleep(0.6)  # past the minimum interval between two requests
    keyframes_asked = count_calls(publisher_sender(amina, "video"), "_send_keyframe")
    await asyncio.gather(*(viewer.send_pli("amina", TrackSource.CAMERA) for viewer in viewers))
    tracks = [t for p in meeting.participants() for t in p.subscription_tracks()]
    await wait_until(lambda: sum(t.keyframe_requests_received for t in tracks) >= 3, what="the three PLIs")
    await wait_until(lambda: keyframes_asked, what="the request to reach amina")
    await asyncio.sleep(0.3)
    assert len(keyframes_asked) == 1 and forwarder.keyframe_requests_absorbed >= 2
    await close_all(sfu, sessions)
