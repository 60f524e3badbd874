"""RED (RFC 2198) made by the SFU for a subscriber whose downlink loses packets, from a publisher's
plain Opus: the payload format, the forwarding with the slot's rewriting, and when it is sent."""

from __future__ import annotations

import itertools

import pytest
from aiortc.rtp import RtpPacket

from signaling.sfu.allocation import DownlinkEstimate, red_distance
from signaling.sfu.forwarding import ForwardTrack
from signaling.sfu.red import RedError, red_blocks, red_payload, red_primary
from signaling.sfu.types import MediaKind
from tests.signaling.sfu.test_units import FakeSource, FakeWriter, rtp

OPUS = 96  # the publisher's and the subscriber's Opus payload type (the server's offers)
RED = 63  # the subscriber's RED payload type


def test_a_red_payload_is_read_back_block_by_block() -> None:
    payload = red_payload(b"new!", OPUS, [(1920, b"older"), (960, b"old")])
    assert red_blocks(payload) == [(OPUS, 1920, b"older"), (OPUS, 960, b"old"), (OPUS, 0, b"new!")]
    assert red_primary(payload) == b"new!"
    # RFC 2198's layout: F=1|PT, 14-bit offset, 10-bit length; then F=0|PT.
    assert payload[:9] == bytes([0x80 | OPUS, 1920 >> 6, (1920 & 0x3F) << 2, 5, 0x80 | OPUS, 960 >> 6, 0, 3, OPUS])
    assert red_payload(b"only", OPUS) == bytes([OPUS]) + b"only"
    assert red_blocks(bytes([OPUS]) + b"only") == [(OPUS, 0, b"only")]
    assert red_blocks(bytes([0x80 | OPUS, 0, 0, 200, OPUS]) + b"short") is None
    assert red_blocks(b"") is None
    with pytest.raises(RedError, match="offset 16384"):
        red_payload(b"x", OPUS, [(16384, b"too old")])
    with pytest.raises(RedError, match="1024 bytes"):
        red_payload(b"x", OPUS, [(960, bytes(1024))])


def opus(seq: int, *, data: bytes | None = None, ts: int | None = None) -> RtpPacket:
    packet = rtp(seq, seq * 960 if ts is None else ts, data if data is not None else f"opus{seq}".encode())
    packet.payload_type = OPUS
    return packet


def red_subscriber(source: FakeSource, *, distance: int) -> tuple[ForwardTrack, FakeWriter]:
    track, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=1000), FakeWriter()
    track.red_payload_type = RED
    track.red_distance = distance
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    return track, writer


def play(track: ForwardTrack, source: FakeSource, packet: RtpPacket) -> None:
    source.packets[packet.sequence_number] = packet
    track.forward(packet, False)


def test_plain_opus_goes_as_red_with_the_previous_packets_to_a_lossy_subscriber() -> None:
    """Karim's phone loses 5 % of what comes down; Amina's microphone (an aiortc client, a
    phone without RED) sends plain Opus. Each of her packets reaches Karim inside a RED packet
    that also carries the one before it (two before, on a worse link): a lost packet's copy
    comes 20 ms later, and his jitter buffer plays it instead of concealing the gap."""
    source = FakeSource()
    one, one_writer = red_subscriber(source, distance=1)
    two, two_writer = red_subscriber(source, distance=2)
    for seq in range(100, 104):
        for track in (one, two):
            play(track, source, opus(seq))
    assert one_writer.payload_types == [RED] * 4 and two_writer.payload_types == [RED] * 4
    blocks = [red_blocks(payload) for payload, *_ in one_writer.sent]
    assert blocks[0] == [(OPUS, 0, b"opus100")], "the run's first packet has nothing before it"
    assert blocks[1] == [(OPUS, 960, b"opus100"), (OPUS, 0, b"opus101")]
    assert blocks[3] == [(OPUS, 960, b"opus102"), (OPUS, 0, b"opus103")]
    assert red_blocks(two_writer.sent[3][0]) == [(OPUS, 1920, b"opus101"), (OPUS, 960, b"opus102"), (OPUS, 0, b"opus103")]
    # Sequence numbers and timestamps are the subscription's own, as for plain Opus.
    seqs = one_writer.seqs()
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stamps = [ts for _, _, ts, _ in one_writer.sent]
    assert all((b - a) & 0xFFFFFFFF == 960 for a, b in itertools.pairwise(stamps))


def test_red_skips_what_it_cannot_carry_and_never_reaches_before_the_run() -> None:
    source = FakeSource()
    track, writer = red_subscriber(source, distance=2)
    play(track, source, opus(10))
    play(track, source, opus(12))  # 11 lost upstream: not in the cache, not in the redundancy
    assert red_blocks(writer.sent[-1][0]) == [(OPUS, 1920, b"opus10"), (OPUS, 0, b"opus12")]
    play(track, source, opus(13, data=bytes(1100)))  # too long for a RED block
    play(track, source, opus(14))
    assert red_blocks(writer.sent[-1][0]) == [(OPUS, 1920, b"opus12"), (OPUS, 0, b"opus14")]
    play(track, source, opus(15, ts=14 * 960 + 20000))  # after a long silence (DTX): too far back
    assert red_blocks(writer.sent[-1][0]) == [(OPUS, 0, b"opus15")]
    # Paused by the allocator, then back: the new run starts without redundancy from before it.
    track.set_paused(True)
    play(track, source, opus(16, ts=15 * 960 + 20000))
    track.set_paused(False)
    play(track, source, opus(17, ts=16 * 960 + 20000))
    assert red_blocks(writer.sent[-1][0]) == [(OPUS, 0, b"opus17")]
    # Another publisher switched into the slot: nothing of the old one goes as redundancy.
    other = FakeSource()
    track.attach(other)  # type: ignore[arg-type]
    play(track, other, opus(18))
    play(track, other, opus(19))
    assert red_blocks(writer.sent[-2][0]) == [(OPUS, 0, b"opus18")]
    assert red_blocks(writer.sent[-1][0]) == [(OPUS, 960, b"opus18"), (OPUS, 0, b"opus19")]


def test_plain_opus_stays_plain_for_clean_links_and_subscribers_without_red() -> None:
    source = FakeSource()
    clean, clean_writer = red_subscriber(source, distance=0)
    narrow, narrow_writer = red_subscriber(source, distance=1)
    narrow.send_red = False  # the allocator: his link is too narrow for the redundancy
    without = ForwardTrack(MediaKind.AUDIO, max_backlog=1000)
    without.red_distance = 1
    without_writer = FakeWriter()
    without.attach(source)  # type: ignore[arg-type]
    without.start_sending(without_writer)  # type: ignore[arg-type]
    for seq in (1, 2):
        for track in (clean, narrow, without):
            play(track, source, opus(seq))
    for writer in (clean_writer, narrow_writer, without_writer):
        assert writer.payload_types == [None, None] and [p for p, *_ in writer.sent] == [b"opus1", b"opus2"]


def test_a_publishers_red_goes_through_as_it_came() -> None:
    """A browser publisher sends RED itself: it is forwarded as is, not wrapped again."""
    source = FakeSource()
    source.red_payload_type = RED
    track, writer = red_subscriber(source, distance=2)
    for seq in (1, 2):
        packet = rtp(seq, seq * 960, red_payload(f"new{seq}".encode(), OPUS, [(960, b"old")]))
        packet.payload_type = RED
        play(track, source, packet)
    assert writer.payload_types == [RED, RED]
    assert red_blocks(writer.sent[1][0]) == [(OPUS, 960, b"old"), (OPUS, 0, b"new2")]


def test_red_distance_follows_the_subscribers_loss_with_hysteresis() -> None:
    assert red_distance(0.0) == 0
    assert red_distance(0.005) == 0, "a clean link keeps its bandwidth"
    assert red_distance(0.02) == 1
    assert red_distance(0.05) == 1
    assert red_distance(0.12) == 2
    assert red_distance(0.006, current=1) == 1, "it does not flap at the threshold"
    assert red_distance(0.002, current=1) == 0
    assert red_distance(0.06, current=2) == 2
    assert red_distance(0.02, current=2) == 1


def test_the_worst_streams_loss_is_what_red_answers_to() -> None:
    """His video's losses are repaired by retransmissions before his reports count them; his
    audio's are not: the loss RED must cover is the worst stream's, not the average."""
    estimate = DownlinkEstimate()
    assert estimate.stream_loss(0.0) == 0.0
    estimate.on_report(1, 1000, 0, 0.0)  # a video
    estimate.on_report(2, 1000, 0, 0.0)  # a voice
    estimate.on_report(1, 1400, 1, 1.0)
    estimate.on_report(2, 1250, 12, 5.0)  # 12 of 250
    assert estimate.stream_loss(5.0) == pytest.approx(12 / 250)
    estimate.on_report(2, 1500, 12, 10.0)  # a clean period: the figure comes down, smoothed
    assert 0 < estimate.stream_loss(10.0) < 12 / 250
    assert estimate.stream_loss(40.0) == 0.0, "stale reports say nothing"


def test_red_never_makes_a_3g_subscriber_audio_only() -> None:
    """The lab's 3G link (400 kbit/s, 2 % lost): one voice as RED (145 kbit/s on the wire, 82
    plain) beside a 250 kbit/s camera (270 on the wire) is more than his 400 kbit/s estimate,
    and he was left audio-only for most of a run. The first video comes before RED's
    redundancy: his voice goes plain beside it; with room for both, both."""
    from signaling.sfu.allocation import AudioDemand, VideoDemand, allocate

    voice = AudioDemand(key="amina-mic", rank=(0,), rate=145_000, plain=82_000)
    camera = VideoDemand(key="amina-cam", rank=(0,), layers=(270_000,))
    narrow = allocate(400_000, [voice], [camera])
    assert not narrow.audio_only and narrow.layers == {"amina-cam": 0} and not narrow.red
    assert narrow.cost == 82_000 + 270_000
    wide = allocate(600_000, [voice], [camera])
    assert wide.red and wide.layers == {"amina-cam": 0} and wide.cost == 145_000 + 270_000
    too_narrow = allocate(300_000, [voice], [camera])
    assert too_narrow.audio_only


def test_an_audio_only_3g_subscriber_probes_for_what_leaving_it_takes() -> None:
    """Audio-only on the 3G link after a loss cut (loss-based figure 350 kbit/s): leaving it takes
    the camera times 1.3 beside the plain voice, 434 kbit/s. His probes were capped at 1.1 times
    what he would receive with no limit (camera and voice in RED, 388: 427 kbit/s), and a 2 %-loss
    link never gives the loss-free reports that raise the figure: he stayed audio-only (2.9 fps
    in the lab). What he wants, while audio-only, is what leaving it takes."""
    from signaling.sfu.allocation import AudioDemand, VideoDemand, allocate, resume_cost

    voice = AudioDemand(key="amina-mic", rank=(0,), rate=118_000, plain=83_000)
    camera = VideoDemand(key="amina-cam", rank=(0,), layers=(270_000,))
    other = VideoDemand(key="karim-cam", rank=(1,), layers=(None, 600_000))
    assert resume_cost([voice], [other, camera]) == pytest.approx(83_000 + 1.3 * 270_000)
    wanted = max(allocate(float("inf"), [voice], [camera]).cost, resume_cost([voice], [camera]))
    estimate = DownlinkEstimate(initial=350_000, startup=False)
    estimate.cut = True
    assert estimate.round(0.0, wanted) is None, "not calm yet"
    target = estimate.round(10.0, wanted)
    assert target is not None and target >= 434_000
    assert not allocate(200_000, [voice], [camera], audio_only=True, loss_budget=target).audio_only
