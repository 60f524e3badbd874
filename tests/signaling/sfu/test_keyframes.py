"""Keyframe requests on a lossy subscriber's link: only what he actually receives may cost a
publisher a keyframe."""

from __future__ import annotations

import asyncio

from signaling.sfu.forwarding import ForwardTrack, TrackForwarder
from signaling.sfu.types import MediaKind, TrackSource, VideoCodec
from tests.signaling.sfu.test_units import (
    VP8_DELTA_START,
    VP8_KEY_START,
    Clock,
    FakeReceiver,
    FakeWriter,
    rtp,
)


async def test_a_paused_subscriptions_plis_cost_the_publisher_nothing() -> None:
    """Karim's phone got a few packets of Amina's camera, then the allocator paused it for his
    link. His browser, holding a frame it cannot decode, sends a PLI every few hundred ms
    (26 in the lab's 90 s, each a keyframe from Amina — 14 for her in one run). He receives
    nothing of that camera now: his PLIs are not passed on; when the allocator resumes it,
    one keyframe is asked for, and his PLIs count again."""
    clock = Clock()
    receiver = FakeReceiver()
    forwarder = TrackForwarder(
        participant_id="amina", source=TrackSource.CAMERA, codec=VideoCodec.VP8, receiver=receiver,  # type: ignore[arg-type]
        keyframe_interval=0.5, keyframe_timeout=1.0, clock=clock,
    )
    karim = ForwardTrack(MediaKind.VIDEO, max_backlog=100_000)
    karim.attach(forwarder)
    karim.start_sending(FakeWriter())  # type: ignore[arg-type]
    forwarder.on_packet(rtp(1, 3000, VP8_KEY_START, marker=True))
    forwarder.on_packet(rtp(2, 6000, VP8_DELTA_START))
    assert karim.packets_forwarded == 2
    karim.set_paused(True)
    for _ in range(20):
        clock.now += 0.3
        forwarder.on_packet(rtp(3, 9000, VP8_DELTA_START, marker=True))
        karim.on_remote_keyframe_request()
    await asyncio.sleep(0)
    assert forwarder.keyframe_requests_sent == 0 and receiver.plis == []
    karim.set_paused(False)
    await asyncio.sleep(0)
    assert forwarder.keyframe_requests_sent == 1, "resuming asks for the keyframe it starts at"
    forwarder.on_packet(rtp(4, 12000, VP8_KEY_START, marker=True))
    clock.now += 1.0
    karim.on_remote_keyframe_request()
    assert forwarder.keyframe_requests_sent == 2, "receiving again, his PLIs count"
    await forwarder.close()
