"""Simulcast from Chromium: the server asks for RID layers, demultiplexes them and forwards one
layer per subscription, switching only at a keyframe of the target layer, with sequence numbers,
timestamps and VP8 picture ids that go on without a jump. No daphne, no Django: the SFU alone."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiortc.rtp import RtpPacket

from signaling.sfu import MediaKind, Sfu, SfuConfig, TrackSource, VideoCodec
from signaling.sfu.aiortc_hooks import AssembledFrame
from signaling.sfu.forwarding import ForwardTrack, TrackForwarder, vp8_picture_ids
from signaling.sfu.simulcast import simulcast_answer, simulcast_offer
from tests.parallel import worker_port

from .peers import ClientPeer, wait_until
from .test_chromium import ChromiumClient, chromium_page  # noqa: F401 - the fixture
from .test_forwarding_e2e import close_all, join
from .test_units import Clock, FakeReceiver, FakeWriter

pytestmark = pytest.mark.timeout(180)

# What the meeting page does to a simulcast camera at its "standard" quality (meeting-peer.js):
# 640x360 capture, a 320x180 layer and a 640x360 one; the third (720p) stays off (Chromium
# itself sends at most two layers of a 360p capture).
SIMULCAST_SCRIPT = """
hirfa.stream = await navigator.mediaDevices.getUserMedia(
  {audio: true, video: {width: 640, height: 360, frameRate: 15}});
hirfa.layers = async () => {
  for (const t of hirfa.pc.getTransceivers()) {
    const p = t.sender.getParameters();
    if (!t.sender.track || t.sender.track.kind !== 'video' || !p.encodings || p.encodings.length < 2) continue;
    p.encodings.forEach((e, i) => { e.scaleResolutionDownBy = [2, 1, 1][i]; e.maxBitrate = [150000, 500000, 500000][i]; e.active = i < 2; });
    await t.sender.setParameters(p);
    return p.encodings.map(e => e.rid);
  }
  return null;
};
"""


def vp8_size(frame: AssembledFrame) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe (RFC 6386 section 9.1), ``None`` for other frames."""
    data = frame.data
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF


def test_offer_asks_for_rid_layers_on_the_named_mids_only() -> None:
    offer = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=mid:0", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=recvonly", "a=rtpmap:97 VP8/90000",
        "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=mid:1", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly", "a=rtpmap:97 VP8/90000", "",
    ])
    edited = simulcast_offer(offer, {"0": ("l", "m", "h")})
    first, second = edited.split("m=video")[1:]
    assert "a=rid:l recv\r\na=rid:m recv\r\na=rid:h recv\r\na=simulcast:recv l;m;h" in first
    assert "a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in first
    assert "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" in first
    assert "rid" not in second and edited.endswith("\r\n")
    assert simulcast_offer(offer, {}) == offer
    with pytest.raises(ValueError):
        simulcast_offer(offer, {"0": ("l", "bad rid")})

    answer = edited.replace("recv", "send").replace("a=simulcast:send l;m;h", "a=simulcast:send l;~m;h,x")
    accepted = simulcast_answer(answer)
    assert accepted.rids == {"0": ("l", "m", "h")} and (accepted.rid_extension, accepted.repaired_rid_extension) == (2, 3)
    assert simulcast_answer(offer).rids == {}


@pytest.fixture
async def manual_sfu():
    """An SFU whose allocator never runs: the test sets each subscription's layer itself."""
    server = Sfu(SfuConfig(port_min=worker_port(42000), port_max=worker_port(42999), allocation_interval=0))
    yield server
    await server.close()


async def test_chromium_simulcast_layers_are_switched_at_keyframes_without_a_jump(
    manual_sfu: Sfu, chromium_page  # noqa: F811
) -> None:
    sfu = manual_sfu
    await chromium_page.evaluate(f"async () => {{ {SIMULCAST_SCRIPT} }}")
    meeting = sfu.meeting("guild-simulcast")
    browser = ChromiumClient(chromium_page)
    publisher = await meeting.join("chromium", on_negotiation_needed=browser.on_negotiation_needed)
    publisher.publish(TrackSource.CAMERA)
    await browser.settle()
    assert "a=simulcast:recv l;m;h" in (await chromium_page.evaluate("() => hirfa.pc.remoteDescription.sdp"))
    assert await chromium_page.evaluate("() => hirfa.layers()") == ["l", "m", "h"]
    (camera,) = publisher.forwarders()
    assert camera.layered and camera.rids == ("l", "m", "h")
    await wait_until(lambda: camera.layer_bitrates()[:2] == tuple(r for r in camera.layer_bitrates()[:2] if r),
                     timeout=30, what="the two layers to arrive")
    assert camera.layer_bitrates()[2] is None, "the inactive layer"

    karim = ClientPeer("karim")
    sessions = [await join(meeting, karim)]
    (subscription,) = meeting.participant("karim").subscription_tracks()
    subscription.set_target_layer(0)
    mid = karim.mid_for("chromium", TrackSource.CAMERA)

    def sizes() -> list[tuple[int, int]]:
        return [size for frame in karim.received[mid] if (size := vp8_size(frame)) is not None]

    await wait_until(lambda: len(karim.received[mid]) >= 10, timeout=30, what="karim's first frames")
    assert sizes()[0] == (320, 180), "the low layer first"
    subscription.set_target_layer(1)
    await wait_until(lambda: (640, 360) in sizes(), timeout=30, what="the switch up to 640x360")
    count = len(karim.received[mid])
    await wait_until(lambda: len(karim.received[mid]) >= count + 10, what="frames of the high layer")
    subscription.set_target_layer(0)
    await wait_until(lambda: sizes()[-1] == (320, 180), timeout=30, what="the switch down to 320x180")
    count = len(karim.received[mid])
    await wait_until(lambda: len(karim.received[mid]) >= count + 10, what="frames of the low layer")
    assert subscription.layer_switches == 2 and subscription.forwarded_layer == 0

    frames = karim.received[mid]
    assert not any(frame.after_loss for frame in frames), "a switch left a hole in the sequence numbers"
    pictures = [vp8_picture_ids(frame.payloads[0])[0] for frame in frames]
    assert all(p is not None for p in pictures)
    jumps = [(a, b) for a, b in itertools.pairwise(pictures) if (b - a) & 0x7FFF != 1]  # type: ignore[operator]
    assert not jumps, f"VP8 picture ids jumped: {jumps}"
    stamps = [frame.timestamp for frame in frames]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
    # Forward only, and no jump of seconds (a loaded machine may hold a frame back a while).
    assert all(0 < step < 3 * 90000 for step in steps), f"timestamps went back or jumped: {sorted(steps)[-3:]}"

    await meeting.leave("chromium")
    await close_all(sfu, sessions)
    await asyncio.sleep(0)


def vp8(picture_id: int, *, key: bool) -> bytes:
    """The start of a VP8 frame with a 15-bit picture id (RFC 7741)."""
    return bytes([0x90, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF, 0x10 if key else 0x11, 0x02, 0x00])


def layer_packet(ssrc: int, rid: str | None, seq: int, ts: int, payload: bytes) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=ssrc)
    packet.marker = 1
    packet.payload = payload
    packet.extensions.rtp_stream_id = rid
    return packet


async def test_layers_are_told_apart_by_rid_and_switched_only_at_a_keyframe() -> None:
    forwarder = TrackForwarder(
        participant_id="amina", source=TrackSource.CAMERA, codec=VideoCodec.VP8,
        receiver=FakeReceiver(), keyframe_interval=0.0, clock=Clock(),  # type: ignore[arg-type]
    )
    forwarder.set_rids(("l", "h"))
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000)
    writer = FakeWriter()
    track.attach(forwarder)
    track.start_sending(writer)  # type: ignore[arg-type]
    low = {"ssrc": 11, "seq": 100, "ts": 5000, "pid": 300}
    high = {"ssrc": 22, "seq": 9000, "ts": 777000, "pid": 20000}

    def send(layer: dict, rid: str | None, *, key: bool = False) -> None:
        layer["seq"] += 1
        layer["ts"] += 6000
        layer["pid"] = (layer["pid"] + 1) & 0x7FFF
        forwarder.on_packet(layer_packet(layer["ssrc"], rid, layer["seq"], layer["ts"], vp8(layer["pid"], key=key)))

    forwarder.on_packet(layer_packet(33, None, 1, 1, vp8(1, key=True)))
    assert forwarder.packets_unrouted == 1, "a stream that named no RID is not routed"
    send(low, "l", key=True)
    send(high, "h", key=True)
    for _ in range(3):
        send(low, None)
        send(high, None)
    assert len(writer.sent) == 4 and track.forwarded_layer == 0, "the low layer only"
    track.set_target_layer(1)
    send(high, None)  # not a keyframe: the low layer goes on
    send(low, None)
    assert track.forwarded_layer == 0 and len(writer.sent) == 5
    send(high, None, key=True)
    send(low, None)
    send(high, None)
    assert track.forwarded_layer == 1 and track.layer_switches == 1 and len(writer.sent) == 7
    seqs = writer.seqs()
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), "no hole, no jump"
    pictures = [vp8_picture_ids(payload)[0] for payload, *_ in writer.sent]
    assert all((b - a) & 0x7FFF == 1 for a, b in itertools.pairwise(pictures)), pictures  # type: ignore[operator]
    stamps = [ts for _, _, ts, _ in writer.sent]
    assert all(0 < (b - a) & 0xFFFFFFFF < 90000 for a, b in itertools.pairwise(stamps))
    # The subscriber's NACK of a packet of the new layer is answered from that layer's cache.
    track.on_nack(seqs[-1])
    assert writer.resent and vp8_picture_ids(writer.resent[0][0])[0] == pictures[-1]
    track.set_paused(True)
    send(high, None, key=True)
    assert len(writer.sent) == 7, "paused: nothing forwarded"
    await forwarder.close()
