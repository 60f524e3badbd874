"""The SFU's pieces without a network: frame assembly, packet forwarding, NACKs, keyframes, speakers, API errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from signaling.sfu import (
    InvalidSfuState,
    MediaKind,
    Sfu,
    SfuConfig,
    TooManyTracks,
    TrackSource,
    VideoCodec,
)
from signaling.sfu.aiortc_hooks import AssembledFrame, FrameAssembler, NackScheduler
from signaling.sfu.forwarding import WIRE_OVERHEAD_BITS, ForwardTrack, is_keyframe, starts_keyframe
from signaling.sfu.meeting import _PAD_INTERVAL, _PAD_SIZE, padding_packets
from signaling.sfu.speaker import ActiveSpeakerDetector
from tests.parallel import worker_port


def packet(seq: int, ts: int, data: bytes, *, marker: bool = False) -> RtpPacket:
    result = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
    result.marker = int(marker)
    result.ssrc = 1234
    result.payload = data
    result._data = data  # type: ignore[attr-defined]
    return result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_assembler(clock: Clock) -> tuple[FrameAssembler, list[AssembledFrame]]:
    frames: list[AssembledFrame] = []
    assembler = FrameAssembler(
        is_video=True, sink=frames.append, starts_frame=lambda p: p.payload.startswith(b"S"), clock=clock,
        loss_timeout=0.1,
    )
    return assembler, frames


def test_assembler_delivers_a_frame_on_its_marker_packet() -> None:
    assembler, frames = make_assembler(Clock())
    assembler.add(packet(10, 100, b"Sa"))
    assembler.add(packet(11, 100, b"b"))
    assert frames == []
    assert assembler.add(packet(12, 100, b"c", marker=True)) == (False, None)
    assert [f.data for f in frames] == [b"Sabc"]
    assert assembler.media_ssrc == 1234


def test_assembler_waits_for_a_retransmission_then_gives_up_and_asks_for_a_keyframe() -> None:
    clock = Clock()
    assembler, frames = make_assembler(clock)
    assembler.add(packet(1, 100, b"S1", marker=True))
    assembler.add(packet(3, 200, b"x", marker=True))  # 2 is missing
    assembler.add(packet(2, 200, b"S2"))  # ...and retransmitted in time
    assert [f.data for f in frames] == [b"S1", b"S2x"]

    assembler.add(packet(5, 300, b"y", marker=True))  # 4 is lost for good
    clock.now += 0.05
    assembler.add(packet(6, 400, b"S4", marker=True))
    assert len(frames) == 2
    clock.now += 0.1
    send_pli, _ = assembler.add(packet(7, 500, b"S5", marker=True))
    assert send_pli
    assert [f.data for f in frames[2:]] == [b"S4", b"S5"]
    assert frames[2].after_loss and not frames[3].after_loss
    assert assembler.losses == 1


def test_assembler_drops_duplicates_and_skips_to_a_frame_start_on_first_packets() -> None:
    assembler, frames = make_assembler(Clock())
    assembler.add(packet(20, 100, b"tail", marker=True))  # joined mid-frame
    assembler.add(packet(21, 200, b"S", marker=True))
    assembler.add(packet(21, 200, b"S", marker=True))
    assert [f.data for f in frames] == [b"S"]



KEY = b"\x10\x02\x00key"  # VP8 frame tag bit 0 clear
DELTA = b"\x11\x02\x00delta"
# RTP payloads as a VP8 publisher packetizes them (RFC 7741): descriptor, then the frame.
VP8_KEY_START = b"\x90\x80\x81\x23" + b"\x10\x02\x00"  # X, S; I with a 15-bit picture id; key
VP8_DELTA_START = b"\x90\x80\x81\x24" + b"\x11\x02\x00"
VP8_MIDDLE = b"\x80\x80\x81\x23" + b"rest"  # no S bit


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, level: int | None = None) -> RtpPacket:
    result = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=1234)
    result.marker = int(marker)
    result.payload = payload
    if level is not None:
        result.extensions.audio_level = (False, level)
    return result


class FakeSource:
    """What a subscription needs of its publisher's forwarder."""

    def __init__(self) -> None:
        self.requests = 0
        self.subs: set = set()
        self.packets: dict[int, RtpPacket] = {}
        self.red_payload_type: int | None = None
        #: Sequence numbers NACKed that it never had (a piped track asks its worker for them).
        self.missing: list[int] = []

    def request_keyframe(self, layer: int = 0) -> bool:
        self.requests += 1
        return True

    def cached(self, seq: int, layer: int = 0) -> RtpPacket | None:
        return self.packets.get(seq)

    def on_missing(self, seq: int, layer: int = 0) -> None:
        self.missing.append(seq)

    def ntp_time(self, timestamp: int, layer: int = 0) -> int | None:
        return None

    def _attach(self, track) -> None:
        self.subs.add(track)

    def _detach(self, track) -> None:
        self.subs.discard(track)


class FakeWriter:
    """Records what a subscription writes; ``backlog_bytes`` plays a subscriber that does not keep up."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, int, int, bool]] = []
        self.resent: list[tuple[bytes, int, int, bool]] = []
        self.payload_types: list[int | None] = []
        self.backlog_bytes = 0
        self.clock_mapping = None
        self.round_trip: float | None = 0.1
        self.payload_type = 96

    def send(
        self, payload: bytes, seq: int, timestamp: int, marker: bool, audio_level: int | None = None,
        payload_type: int | None = None,
    ) -> bool:
        self.sent.append((payload, seq, timestamp, marker))
        self.payload_types.append(payload_type)
        return True

    def resend(self, payload: bytes, seq: int, timestamp: int, marker: bool) -> bool:
        self.resent.append((payload, seq, timestamp, marker))
        return True

    def backlog(self) -> int:
        return self.backlog_bytes

    def send_padding(self, count: int, size: int = 255) -> int:
        return 0

    def rtt(self) -> float | None:
        return self.round_trip

    def seqs(self) -> list[int]:
        return [seq for _, seq, _, _ in self.sent]


def feed(track: ForwardTrack, source: FakeSource, packet: RtpPacket) -> None:
    source.packets[packet.sequence_number] = packet
    track.forward(packet, starts_keyframe(VideoCodec.VP8, packet.payload))


def test_keyframe_starts_are_found_in_vp8_and_h264_payloads() -> None:
    assert starts_keyframe(VideoCodec.VP8, VP8_KEY_START)
    assert not starts_keyframe(VideoCodec.VP8, VP8_DELTA_START)
    assert not starts_keyframe(VideoCodec.VP8, VP8_MIDDLE)
    assert starts_keyframe(VideoCodec.VP8, b"\x10\x10\x02\x00")  # no extension byte
    assert not starts_keyframe(VideoCodec.VP8, b"\x90\x80")  # truncated descriptor
    assert starts_keyframe(VideoCodec.H264, b"\x65idr")
    assert starts_keyframe(VideoCodec.H264, b"\x18\x00\x03\x67sp\x00\x02\x68p")  # STAP-A: SPS, PPS
    assert starts_keyframe(VideoCodec.H264, b"\x7c\x85idr")  # FU-A start of an IDR slice
    assert not starts_keyframe(VideoCodec.H264, b"\x7c\x45idr")  # FU-A, not the start
    assert not starts_keyframe(VideoCodec.H264, b"\x41slice")
    assert not starts_keyframe(VideoCodec.VP8, b"")


async def test_video_starts_at_a_keyframe_and_late_packets_are_forwarded_in_place() -> None:
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000)
    source, writer = FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    feed(track, source, rtp(100, 3000, VP8_KEY_START))
    assert source.requests == 0 and not track.sending, "nothing is written before the sender starts"
    track.start_sending(writer)  # type: ignore[arg-type]
    assert source.requests == 1, "a new subscription asks for a keyframe"
    feed(track, source, rtp(101, 3000, VP8_DELTA_START, marker=True))
    assert writer.sent == [] and track.waiting
    assert source.requests == 2, "a frame ended while waiting: ask again (the forwarder absorbs it if pending)"
    feed(track, source, rtp(102, 6000, VP8_KEY_START))
    first = writer.seqs()[0]
    feed(track, source, rtp(104, 6000, VP8_MIDDLE, marker=True))  # 103 lost upstream...
    feed(track, source, rtp(105, 9000, VP8_DELTA_START, marker=True))
    feed(track, source, rtp(103, 6000, VP8_MIDDLE))  # ...and retransmitted after 105
    assert writer.seqs() == [first, (first + 2) & 0xFFFF, (first + 3) & 0xFFFF, (first + 1) & 0xFFFF]
    assert [marker for *_, marker in writer.sent] == [False, True, True, False]
    assert writer.sent[0][0] == VP8_KEY_START, "the publisher's payload is forwarded as it came"
    base = writer.sent[0][2]
    assert [(ts - base) & 0xFFFFFFFF for _, _, ts, _ in writer.sent] == [0, 0, 3000, 0]
    feed(track, source, rtp(101, 3000, VP8_DELTA_START))  # from before the start: never
    assert len(writer.sent) == 4 and source.requests == 2, "no keyframe is asked for a packet lost upstream"
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_a_slow_subscriber_loses_video_until_a_keyframe_with_no_hole_in_sequence_numbers() -> None:
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000)
    source, writer = FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    feed(track, source, rtp(1, 3000, VP8_KEY_START, marker=True))
    writer.backlog_bytes = 1001
    feed(track, source, rtp(2, 6000, VP8_DELTA_START, marker=True))
    writer.backlog_bytes = 0
    feed(track, source, rtp(3, 9000, VP8_DELTA_START, marker=True))
    assert len(writer.sent) == 1 and track.waiting
    assert source.requests == 3, "start, drop, and the end of a frame while waiting all ask (deduplicated upstream)"
    feed(track, source, rtp(4, 12000, VP8_KEY_START, marker=True))
    assert writer.seqs() == [writer.seqs()[0], (writer.seqs()[0] + 1) & 0xFFFF], "the dropped packets left a hole"
    assert track.packets_dropped == 2


def test_audio_is_not_dropped_behind_video_and_is_forwarded_out_of_order() -> None:
    track = ForwardTrack(MediaKind.AUDIO, max_backlog=1000)
    source, writer = FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    track.forward(rtp(10, 960, b"a"), False)
    writer.backlog_bytes = 1500  # video filled the socket past the bound
    track.forward(rtp(12, 2880, b"c"), False)
    track.forward(rtp(11, 1920, b"b"), False)  # late, and forwarded
    first = writer.seqs()[0]
    assert writer.seqs() == [first, (first + 2) & 0xFFFF, (first + 1) & 0xFFFF]
    writer.backlog_bytes = 2001  # past twice the bound: memory is bounded for audio too
    track.forward(rtp(13, 3840, b"d"), False)
    assert len(writer.sent) == 3 and track.packets_dropped == 1
    assert source.requests == 0


def test_nacks_are_answered_from_the_cache_once_per_round_trip_within_the_backlog_bound() -> None:
    clock = Clock()
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000, max_resends_per_second=3, clock=clock)
    source, writer = FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    for seq in range(50, 56):
        feed(track, source, rtp(seq, 3000 * (seq // 2), VP8_KEY_START if seq == 50 else VP8_MIDDLE, marker=seq % 2 == 1))
    out = writer.seqs()
    track.on_nack(out[2])
    assert writer.resent == [(writer.sent[2][0], out[2], writer.sent[2][2], False)]
    track.on_nack(out[2])  # again, before a round trip (0.1 s) passed
    assert len(writer.resent) == 1
    clock.now += 0.15
    track.on_nack(out[2])
    assert len(writer.resent) == 2
    writer.backlog_bytes = 1001
    track.on_nack(out[3])
    assert len(writer.resent) == 2, "a resend went past the backlog bound"
    writer.backlog_bytes = 0
    track.on_nack(out[3])
    track.on_nack(out[4])  # over the budget of 3 a second
    assert len(writer.resent) == 3
    track.on_nack((out[-1] + 5) & 0xFFFF)  # never sent
    del source.packets[55]
    track.on_nack(out[5])  # no longer cached: the source is told (a piped track asks its worker)
    assert len(writer.resent) == 3 and track.nacks_refused == 5
    assert source.missing == [55]


def test_retransmissions_count_in_what_is_sent_to_him() -> None:
    """What the allocator counts as sent to a subscriber includes the packets resent to him
    (answering his NACKs, on the wire: payload, RTX header and the packet's RTP, SRTP, UDP and IP
    bytes), not only the publishers' rates: on a lossy link they are a few percent of his video,
    and on the lab's 3G link they went on top of a nearly full link, uncounted."""
    from signaling.sfu.allocation import DownlinkEstimate
    from signaling.sfu.forwarding import WIRE_OVERHEAD_BITS

    clock = Clock()
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000, clock=clock)
    source, writer = FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    payload = VP8_KEY_START + bytes(1000)
    feed(track, source, rtp(50, 3000, payload, marker=True))
    assert track.resent_bits == 0
    track.on_nack(writer.seqs()[0])
    assert track.resent_bits == (len(payload) + 2) * 8 + WIRE_OVERHEAD_BITS
    estimate = DownlinkEstimate()
    estimate.on_resent(0, 10.0)
    estimate.on_resent(40_000, 10.5)
    assert estimate.resending == 0.0, "judged over a second at least"
    estimate.on_resent(100_000, 11.0)
    assert estimate.resending == pytest.approx(100_000)
    estimate.on_resent(100_000, 12.0)
    assert estimate.resending == 0.0


class FakeReceiver:
    def __init__(self) -> None:
        self.plis: list[int] = []

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


async def test_one_keyframe_request_is_pending_per_track_whoever_asks() -> None:
    import asyncio

    from signaling.sfu.forwarding import TrackForwarder

    clock = Clock()
    receiver = FakeReceiver()
    forwarder = TrackForwarder(
        participant_id="amina", source=TrackSource.CAMERA, codec=VideoCodec.VP8, receiver=receiver,  # type: ignore[arg-type]
        keyframe_interval=0.5, keyframe_timeout=1.0, clock=clock,
    )
    subscriptions = [ForwardTrack(MediaKind.VIDEO, max_backlog=1000) for _ in range(7)]
    for track in subscriptions:
        track.attach(forwarder)
        track.start_sending(FakeWriter())  # type: ignore[arg-type]
    assert forwarder.keyframe_requests_sent == 0, "no media yet: nothing to ask about"
    forwarder.on_packet(rtp(1, 3000, VP8_DELTA_START, marker=True))
    idle = ForwardTrack(MediaKind.VIDEO, max_backlog=1000)
    idle.on_remote_keyframe_request()  # a PLI for an m-line that carries nothing
    for track in subscriptions:
        track.on_remote_keyframe_request()
    forwarder.on_recovery_failed([7])
    await asyncio.sleep(0)
    assert forwarder.keyframe_requests_sent == 1 and receiver.plis == [1234] and forwarder.keyframe_pending
    clock.now += 0.6
    forwarder.request_keyframe()
    assert forwarder.keyframe_requests_sent == 1, "asked again while the keyframe is on its way"
    forwarder.on_packet(rtp(2, 6000, VP8_KEY_START, marker=True))
    assert not forwarder.keyframe_pending
    assert all(not t.waiting for t in subscriptions) and all(t.packets_forwarded == 1 for t in subscriptions)
    forwarder.request_keyframe()
    assert forwarder.keyframe_requests_sent == 2
    clock.now += 1.1  # the request (or its keyframe) was lost: ask again
    forwarder.request_keyframe()
    await asyncio.sleep(0)
    assert forwarder.keyframe_requests_sent == 3 and len(receiver.plis) == 3
    await forwarder.close()


class Timers:
    """``call_later`` of a fake event loop: the test fires what is due."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], object]]] = []

    def call_later(self, delay: float, callback):
        entry = (self.clock.now + delay, callback)
        self.pending.append(entry)

        class Handle:
            def cancel(handle) -> None:
                if entry in self.pending:
                    self.pending.remove(entry)

        return Handle()

    def advance(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while True:
            due = [e for e in self.pending if e[0] <= end]
            if not due:
                break
            entry = min(due, key=lambda e: e[0])
            self.pending.remove(entry)
            self.clock.now = max(self.clock.now, entry[0])
            entry[1]()
        self.clock.now = end


def test_nack_retries_follow_the_round_trip_and_give_up_after_the_retry_limit() -> None:
    clock = Clock()
    timers = Timers(clock)
    nacks: list[tuple[float, list[int]]] = []
    given_up: list[list[int]] = []
    scheduler = NackScheduler(
        send_nack=lambda lost: nacks.append((clock.now, sorted(lost))), on_give_up=given_up.append,
        rtt_hint=lambda: 0.15, max_retries=4, max_age=5.0, clock=clock, call_later=timers.call_later,
    )
    assert scheduler.add(100) and scheduler.add(101)
    assert scheduler.add(104)  # 102 and 103 missing
    assert nacks == [(0.0, [102, 103])]
    timers.advance(0.16)
    assert nacks[-1] == (0.15, [102, 103]), "retried after one round trip"
    assert scheduler.add(103) and not scheduler.add(103), "a duplicate is not new"
    timers.advance(1.0)
    assert [lost for _, lost in nacks] == [[102, 103], [102, 103], [102], [102]]
    assert [round(t, 2) for t, _ in nacks] == [0.0, 0.15, 0.3, 0.45]
    assert given_up == [[102]] and scheduler.missing == frozenset()
    assert not scheduler.add(101), "an old packet already received"


def test_nack_retries_stop_at_the_age_limit_and_measure_the_round_trip() -> None:
    clock = Clock()
    timers = Timers(clock)
    nacks: list[list[int]] = []
    given_up: list[list[int]] = []
    scheduler = NackScheduler(
        send_nack=nacks.append, on_give_up=given_up.append, max_retries=10, max_age=0.5,
        clock=clock, call_later=timers.call_later,
    )
    scheduler.add(1)
    scheduler.add(3)
    clock.now += 0.04
    assert scheduler.add(2)  # answered to the first NACK in 40 ms
    assert abs(scheduler.rtt - 0.04) < 1e-9
    scheduler.add(5)
    timers.advance(2.0)
    assert len(nacks) <= 1 + int(0.5 / 0.04) and given_up == [[4]]
    scheduler.add(5 + 2000)  # a jump far beyond what is worth recovering
    assert scheduler.missing == frozenset()
    scheduler.close()


def test_keyframe_detection() -> None:
    assert is_keyframe(VideoCodec.VP8, KEY) and not is_keyframe(VideoCodec.VP8, DELTA)
    assert is_keyframe(VideoCodec.H264, b"\x00\x00\x00\x01\x67sps\x00\x00\x01\x65idr")
    assert not is_keyframe(VideoCodec.H264, b"\x00\x00\x00\x01\x41slice")
    assert is_keyframe(None, b"opus")


def test_active_speaker_needs_a_clear_margin_to_switch() -> None:
    clock = Clock()
    changes: list[str | None] = []
    detector = ActiveSpeakerDetector(clock=clock, on_change=changes.append)
    for _ in range(50):
        clock.now += 0.02
        detector.observe("amina", 20, 100)  # loud: -20 dBov
        detector.observe("karim", 100, 100)  # near silence
    assert detector.current == "amina"
    for _ in range(50):
        clock.now += 0.02
        detector.observe("amina", 22, 100)
        detector.observe("karim", 20, 100)  # a bit louder, not clearly
    assert detector.current == "amina"
    detector.forget("amina")
    assert detector.current == "karim"
    for _ in range(100):
        clock.now += 0.02
        detector.observe("karim", None, 10)  # no header extension, small frames: silence
    assert detector.current is None
    assert changes == ["amina", None, "karim", None]


async def test_api_errors_name_the_value_and_the_state() -> None:
    sfu = Sfu(SfuConfig(port_min=worker_port(43200), port_max=worker_port(43299), max_tracks_per_participant=2))
    meeting = sfu.meeting("guild-errors", video_codec=VideoCodec.H264)
    with pytest.raises(InvalidSfuState, match="uses H264, not VP8"):
        sfu.meeting("guild-errors", video_codec=VideoCodec.VP8)
    amina = await meeting.join("amina", on_negotiation_needed=lambda p: None)
    with pytest.raises(InvalidSfuState, match="'amina' is already in meeting 'guild-errors'"):
        await meeting.join("amina", on_negotiation_needed=lambda p: None)
    amina.publish(TrackSource.CAMERA)
    with pytest.raises(TooManyTracks, match="already publishes camera"):
        amina.publish(TrackSource.CAMERA)
    amina.publish(TrackSource.MICROPHONE)
    with pytest.raises(TooManyTracks, match="the limit is 2"):
        amina.publish(TrackSource.SCREEN)
    with pytest.raises(InvalidSfuState, match="pending offer is none"):
        await amina.apply_answer("v=0", revision=1)
    offer = await amina.create_offer()
    assert "H264" in offer.sdp and "profile-level-id=42e01f" in offer.sdp and "VP8" not in offer.sdp
    assert "127.0.0.1" in offer.sdp
    with pytest.raises(InvalidSfuState, match="offer 1 is still unanswered"):
        await amina.create_offer()
    from signaling.sfu import BadSessionDescription

    with pytest.raises(BadSessionDescription, match="answer 1 of 'amina' refused"):
        await amina.apply_answer("this is not SDP", revision=1)
    assert amina.negotiation_needed
    await sfu.close()


def test_datagrams_leave_in_order_whether_batched_or_not() -> None:
    import socket

    from signaling.sfu.aiortc_hooks import send

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        # runs of equal sizes (batched with GSO), a shorter tail, a bigger one after it, a single one
        datagrams = [bytes([i]) * size for i, size in enumerate([1200, 1200, 1200, 700, 1300, 1300, 90, 5])]
        sent: list[bytes] = []

        class Transport:  # what asyncio's transport would get (nothing, here)
            def sendto(self, data: bytes, address: object) -> None:
                sent.append(data)

        send.send_datagrams(sender, Transport(), receiver.getsockname(), datagrams)
        assert [receiver.recv(2000) for _ in datagrams] == datagrams
        assert sent == []
        send.send_datagrams(None, Transport(), receiver.getsockname(), datagrams[:3])
        assert sent == datagrams[:3]
    finally:
        receiver.close()
        sender.close()


OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0", "c=IN IP4 0.0.0.0", "a=mid:0", "a=recvonly",
    "a=rtpmap:96 opus/48000/2", "a=rtpmap:0 PCMU/8000",
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "c=IN IP4 0.0.0.0", "a=mid:1", "a=sendonly",
    "a=rtpmap:97 VP8/90000", "a=rtpmap:98 rtx/90000", "a=fmtp:98 apt=97", "",
])


def test_offers_carry_opus_fec_and_dtx_and_red_first() -> None:
    from signaling.sfu.sdp import audio_offer, red_payload_types

    offer = audio_offer(OFFER)
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 63 96 0\r\n" in offer
    assert "a=rtpmap:63 red/48000/2\r\na=fmtp:63 96/96\r\na=rtpmap:96 opus/48000/2\r\n" in offer
    assert "a=fmtp:96 minptime=10;useinbandfec=1;usedtx=1\r\n" in offer
    assert offer.count("a=fmtp:96 ") == 1
    assert "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\n" in offer and "a=fmtp:98 apt=97" in offer
    answer = offer.replace("a=recvonly", "a=sendonly")
    assert red_payload_types(answer) == {"0": 63}
    assert red_payload_types(OFFER) == {}
    assert audio_offer(OFFER, red=False).count("red/") == 0


def test_red_payloads_are_unwrapped_for_subscribers_without_red() -> None:
    from signaling.sfu.red import red_primary

    # one redundant block (PT 96, 20 ms earlier, 3 bytes), then the primary (PT 96)
    red = bytes([0x80 | 96, (960 >> 6) & 0xFF, ((960 & 0x3F) << 2) | 0, 3, 96]) + b"old" + b"new!"
    assert red_primary(red) == b"new!"
    assert red_primary(bytes([96]) + b"only") == b"only"
    assert red_primary(bytes([0x80 | 96, 0, 0, 200, 96]) + b"short") is None
    assert red_primary(b"\x80\x00") is None

    source = FakeSource()
    source.red_payload_type = 63
    plain, with_red = ForwardTrack(MediaKind.AUDIO, max_backlog=1000), ForwardTrack(MediaKind.AUDIO, max_backlog=1000)
    with_red.red_payload_type = 111
    writers = [FakeWriter(), FakeWriter()]
    for track, writer in zip((plain, with_red), writers):
        track.attach(source)  # type: ignore[arg-type]
        track.start_sending(writer)  # type: ignore[arg-type]
    packet = rtp(5, 960, red)
    packet.payload_type = 63
    opus = rtp(6, 1920, b"opus")
    opus.payload_type = 96
    for track in (plain, with_red):
        track.forward(packet, False)
        track.forward(opus, False)
    assert [p for p, *_ in writers[0].sent] == [b"new!", b"opus"] and writers[0].payload_types == [None, None]
    assert [p for p, *_ in writers[1].sent] == [red, b"opus"] and writers[1].payload_types == [111, None]


async def test_red_is_taken_by_a_receiver_that_started_without_it() -> None:
    """Two people arriving at a workshop table at once: the renegotiation offered for the
    second reset the first's codecs before his connection was up, so his receiver started
    without RED and every packet of his microphone was dropped. The next answer that
    accepts RED must still open the started receiver to it."""
    from aiortc import RTCPeerConnection, RTCRtpCodecParameters

    from signaling.sfu.aiortc_hooks import accept_red

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
        transceiver._codecs = [opus]
        receiver = transceiver.receiver
        # What RTCRtpReceiver.receive registers at start (without its decoder thread).
        receiver._RTCRtpReceiver__codecs[96] = opus  # type: ignore[attr-defined]
        router = receiver.transport._rtp_router
        router.register_receiver(receiver, ssrcs=[5], payload_types=[96])
        receiver._RTCRtpReceiver__started = True  # type: ignore[attr-defined]
        red_packet = RtpPacket(payload_type=63, ssrc=5)
        assert router.route_rtp(red_packet) is None  # started without RED: dropped

        assert accept_red(transceiver, 63)
        assert router.route_rtp(red_packet) is receiver
        assert receiver._RTCRtpReceiver__codecs[63].mimeType == "audio/red"  # type: ignore[attr-defined]
        assert accept_red(transceiver, 63), "idempotent"
    finally:
        transceiver.receiver._RTCRtpReceiver__started = False  # type: ignore[attr-defined]  # nothing of a real start to stop
        await pc.close()


def test_a_voice_left_out_resumes_without_a_hole_and_red_can_be_turned_off() -> None:
    """The allocator leaves a voice out on a narrow link (set_paused) and brings it back: its
    sequence numbers go on without a hole (nothing for his browser to count as lost) and its
    timestamps with the time that passed; with send_red off a RED subscriber gets plain Opus."""
    source = FakeSource()
    source.red_payload_type = 63
    track, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=1000), FakeWriter()
    track.red_payload_type = 111
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    red = bytes([0x80 | 96, (960 >> 6) & 0xFF, ((960 & 0x3F) << 2) | 0, 3, 96]) + b"old" + b"new!"

    def voice(seq: int) -> RtpPacket:
        packet = rtp(seq, seq * 960, red)
        packet.payload_type = 63
        return packet

    for seq in range(100, 103):
        track.forward(voice(seq), False)
    track.set_paused(True)
    for seq in range(103, 150):
        track.forward(voice(seq), False)
    track.set_paused(False)
    track.send_red = False
    for seq in range(150, 152):
        track.forward(voice(seq), False)
    seqs = writer.seqs()
    assert len(seqs) == 5 and all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stamps = [ts for _, _, ts, _ in writer.sent]
    assert (stamps[3] - stamps[2]) & 0xFFFFFFFF == 48 * 960, "the silence lasted 48 packets"
    assert writer.payload_types == [111, 111, 111, None, None]
    assert [p for p, *_ in writer.sent][3:] == [b"new!", b"new!"]


def test_an_audio_slot_paused_switched_and_resumed_leaves_no_sequence_gap() -> None:
    """His third voice paused and resumed as his estimate moves (300 <-> 324 kbit/s), and the
    slot moved to another speaker while paused: what he receives has no hole in its sequence
    numbers (his browser would count one as lost), and a packet of before the pause that comes
    late is not written behind the run either; the timestamps go forward."""
    first, second = FakeSource(), FakeSource()
    track, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=1000), FakeWriter()
    track.attach(first)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]

    def send(seqs: range, payload: bytes = b"a") -> None:
        for seq in seqs:
            track.forward(rtp(seq, seq * 960, payload), False)
            if payload == b"a" and seq % 10 == 2 and not track.paused:
                track.forward(rtp(seq - 30, (seq - 30) * 960, b"late"), False)  # reordered, from before a pause

    send(range(10, 20))
    for start in range(20, 20 + 5 * 35, 35):  # paused and resumed round after round
        track.set_paused(True)
        send(range(start, start + 25))
        track.set_paused(False)
        send(range(start + 25, start + 35))
    track.set_paused(True)
    track.attach(second)  # type: ignore[arg-type]
    send(range(40_000, 40_020), b"b")
    track.set_paused(False)
    send(range(40_020, 40_030), b"b")
    seqs = writer.seqs()
    assert len(seqs) == 10 + 5 * 10 + 10
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), "a hole in what he received"
    assert track.seqs_skipped == 0
    stamps = [ts for _, _, ts, _ in writer.sent]
    assert all(0 < (b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(stamps))


def test_a_probes_padding_reaches_its_target_on_the_wire_not_over_it() -> None:
    """A probe's target and what he is sent are counted on the wire (headers, SRTP tag, UDP and
    IP: :data:`WIRE_OVERHEAD_BITS` a packet), so its padding is too, and what a tick cannot send
    in whole packets is carried to the next: counted by payload bytes only, the lab's narrow probe
    (450 kbit/s over his 150 kbit/s of voices) padded 375 kbit/s, not 300 (323 bytes a packet on
    his link), and filled his 300 ms queue in 0.4 s instead of 0.6, overflowing it (his voices in
    it) before a grown round trip could stop it."""
    packet = _PAD_SIZE * 8 + WIRE_OVERHEAD_BITS
    for deficit in (20_000.0, 150_000.0, 300_000.0, 450_000.0, 1_000_000.0):
        owed, sent, ticks = 0.0, 0, round(0.5 / _PAD_INTERVAL)  # a probe's half second
        for _ in range(ticks):
            count, owed = padding_packets(deficit, owed)
            assert count <= deficit * _PAD_INTERVAL / packet + 1, "a tick sends no burst"
            sent += count
        wire = sent * packet / (ticks * _PAD_INTERVAL)
        assert deficit - packet / 0.5 <= wire <= deficit, f"{deficit:.0f} bit/s asked, {wire:.0f} padded"
    assert padding_packets(-5_000.0) == (0, 0.0), "nothing owed when he is sent more than the target"


async def test_consent_holds_while_checks_are_answered_and_expires_when_none_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consent freshness (RFC 7675) on a busy server: each check is retransmitted (an answer read
    late still counts), and consent expires only when no check was answered for CONSENT_EXPIRY."""
    from aioice import stun

    from signaling.sfu.aiortc_hooks import ice

    monkeypatch.setattr(ice, "CONSENT_INTERVAL", 0.01)
    monkeypatch.setattr(ice, "CONSENT_EXPIRY", 0.3)

    class Protocol:
        def __init__(self) -> None:
            self.answering = True
            self.retransmissions: list[int] = []

        async def request(self, request, addr, integrity_key=None, retransmissions=None):
            self.retransmissions.append(retransmissions)
            if not self.answering:
                raise stun.TransactionTimeout()

    class Pair:
        protocol = Protocol()
        remote_addr = ("10.0.0.2", 5000)

    class FakeConnection:
        remote_password = "secret"
        _query_consent_task = "task"

        def __init__(self) -> None:
            self._nominated = {1: Pair()}
            self.closed = False

        def build_request(self, pair, nominate):
            return object()

        async def close(self) -> None:
            self.closed = True

    connection = FakeConnection()
    task = asyncio.ensure_future(ice._query_consent(connection))
    await asyncio.sleep(0.5)
    assert not connection.closed and not task.done(), "answered checks keep consent"
    assert set(Pair.protocol.retransmissions) == {ice.CONSENT_RETRANSMISSIONS}
    Pair.protocol.answering = False
    await asyncio.wait_for(task, 5)
    assert connection.closed and connection._query_consent_task is None


async def test_consent_checks_overlap_and_an_answer_read_late_within_expiry_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A starved worker reads a peer's answers late. A new check starts every interval while
    earlier ones still wait, and each waits (retransmitted) until the expiry: an answer read
    20 s after its check holds consent, as it would had the loop not been behind."""
    from aioice import stun

    from signaling.sfu.aiortc_hooks import ice

    scale = 0.01  # 1 s of the real schedule is 10 ms here
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", 5 * scale)
    monkeypatch.setattr(ice, "CONSENT_EXPIRY", 30 * scale)

    class Protocol:
        """Answers every check 20 s (scaled) after it is sent, as aioice's transaction does:
        its last retransmission waits as long again as the one before, then it times out."""

        def __init__(self) -> None:
            self.sent = 0

        async def request(self, request, addr, integrity_key=None, retransmissions=None):
            self.sent += 1
            lifetime = 0.5 * scale * (2 ** ((retransmissions or 0) + 1) - 1)
            await asyncio.sleep(min(lifetime, 20 * scale))
            if lifetime < 20 * scale:
                raise stun.TransactionTimeout()

    class Pair:
        protocol = Protocol()
        remote_addr = ("10.0.0.2", 5000)

    class FakeConnection:
        remote_password = "secret"
        _query_consent_task = "task"

        def __init__(self) -> None:
            self._nominated = {1: Pair()}
            self.closed = False

        def build_request(self, pair, nominate):
            return object()

        async def close(self) -> None:
            self.closed = True

    connection = FakeConnection()
    task = asyncio.ensure_future(ice._query_consent(connection))
    try:
        await asyncio.sleep(100 * scale)
        assert not connection.closed, "answers read 20 s late expired consent"
        assert Pair.protocol.sent >= 12, f"{Pair.protocol.sent} checks in 100 s: they did not overlap"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class SrtpWriter(FakeWriter):
    """A :class:`FakeWriter` that also protects each packet as the subscriber's SRTP session
    does (aiortc's: one session for his transport, 1024-packet window, repeats allowed) and
    keeps what libsrtp refuses: a sequence number too far behind the last one sent."""

    def __init__(self) -> None:
        super().__init__()
        import pylibsrtp

        policy = pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        self._session = pylibsrtp.Session(policy)
        self._error = pylibsrtp.Error
        self.refused: list[tuple[int, str]] = []

    def send(
        self, payload: bytes, seq: int, timestamp: int, marker: bool, audio_level: int | None = None,
        payload_type: int | None = None,
    ) -> bool:
        header = bytes((0x80, 96)) + seq.to_bytes(2, "big") + timestamp.to_bytes(4, "big") + (4321).to_bytes(4, "big")
        try:
            self._session.protect(header + payload)
        except self._error as exc:
            self.refused.append((seq, str(exc)))
        return super().send(payload, seq, timestamp, marker, audio_level, payload_type)


def assert_never_behind(seqs: list[int], window: int) -> None:
    """No sequence number more than ``window`` behind the highest written before it."""
    top = seqs[0]
    for seq in seqs[1:]:
        if (seq - top) & 0xFFFF < 0x8000:
            top = seq
        else:
            assert (top - seq) & 0xFFFF < window, f"{seq} written after {top}"


def test_a_run_longer_than_half_the_sequence_space_goes_on_with_red_and_nack_answers() -> None:
    """One uninterrupted run (a voice that stays in his slot for 23 minutes, a screen shared
    for 6): every packet is forwarded, each sequence number one after the last, RED is still
    built and a NACK is still answered: a run's start does not age into "before the run" once
    the publisher's sequence numbers are 32,768 past it (they dropped the next 32,768 packets,
    then wrote sequence numbers 32,768 behind the last sent: libsrtp's replay_old)."""
    source = FakeSource()
    track, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=1000), SrtpWriter()
    track.red_payload_type, track.red_distance = 111, 1
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    for n in range(70_000):
        packet = rtp(1000 + n, n * 960, b"opus")
        source.packets[packet.sequence_number] = packet
        track.forward(packet, False)
    seqs = writer.seqs()
    assert track.packets_dropped == 0 and len(seqs) == 70_000
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert writer.refused == []
    assert track.red_built == 70_000 and len(writer.sent[-1][0]) > len(b"opus") + 1, "RED carries the packet before"
    track.on_nack(seqs[-2])
    assert [seq for _, seq, _, _ in writer.resent] == [seqs[-2]]


def test_a_slot_switching_sources_and_pausing_never_writes_a_sequence_number_libsrtp_refuses() -> None:
    """A slot (a screen shared for long, then his camera moved in, paused and resumed, the
    screen back) goes on forward whatever the publishers' sequence numbers: a late packet of
    the current run is written in place only within libsrtp's window, never further back."""
    screen, camera = FakeSource(), FakeSource()
    screen.codec = camera.codec = VideoCodec.VP8  # type: ignore[attr-defined]
    track, writer = ForwardTrack(MediaKind.VIDEO, max_backlog=1000), SrtpWriter()
    track.continuous = True
    track.start_sending(writer)  # type: ignore[arg-type]

    def run(source: FakeSource, first: int, count: int, ts: int) -> None:
        feed(track, source, rtp(first, ts, VP8_KEY_START, marker=True))
        for n in range(1, count):
            feed(track, source, rtp(first + n, ts + n * 3000, VP8_DELTA_START, marker=True))

    track.attach(screen)  # type: ignore[arg-type]
    run(screen, 60_000, 70_000, 0)  # over 65,536 packets: the publisher's numbers wrap too
    feed(track, screen, rtp(60_000 + 70_000 - 1500, 3000 * (70_000 - 1500), VP8_MIDDLE))  # a retransmission far too late
    track.attach(camera)  # type: ignore[arg-type]
    run(camera, 5, 300, 77)
    track.set_paused(True)
    run(camera, 305, 100, 77 + 305 * 3000)
    track.set_paused(False)
    run(camera, 405, 300, 77 + 405 * 3000)
    feed(track, camera, rtp(700, 77 + 700 * 3000, VP8_MIDDLE))  # late, and still within the run
    track.attach(screen)  # type: ignore[arg-type]
    run(screen, 60_000 + 70_000 + 10, 300, 3000 * (70_000 + 10))
    assert writer.refused == []
    assert_never_behind(writer.seqs(), 1024)
    assert len([marker for *_, marker in writer.sent if marker]) == 70_000 + 300 + 300 + 300, "a frame was dropped"
    assert len(writer.sent) == 70_000 + 300 + 300 + 300 + 1, "only the far too late packet is left out"
    stamps = [ts for _, _, ts, marker in writer.sent if marker]
    assert all(0 < (b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(stamps)), "a frame's time went back"


async def test_a_subscription_whose_writing_fails_costs_the_other_subscribers_nothing() -> None:
    """The fan-out goes on past a subscriber whose writer raised (his SRTP session refusing a
    packet did raise out of the publisher's packet handler: the subscribers after him in the
    forwarder's list lost that packet)."""
    import pylibsrtp

    from signaling.sfu.forwarding import TrackForwarder

    class RefusingWriter(FakeWriter):
        def send(self, *args: object, **kwargs: object) -> bool:
            raise pylibsrtp.Error("replay check failed (index too old)")

    forwarder = TrackForwarder(
        participant_id="amina", source=TrackSource.MICROPHONE, codec=None, receiver=FakeReceiver(),  # type: ignore[arg-type]
        keyframe_interval=0.5,
    )
    tracks = [ForwardTrack(MediaKind.AUDIO, max_backlog=1000) for _ in range(3)]
    writers = [FakeWriter(), RefusingWriter(), FakeWriter()]
    for track, writer in zip(tracks, writers, strict=True):
        track.attach(forwarder)
        track.start_sending(writer)  # type: ignore[arg-type]
    for seq in range(5):
        forwarder.on_packet(rtp(seq, seq * 960, b"opus"))
    assert [len(w.sent) for w in writers] == [5, 0, 5]
    assert tracks[1].write_errors == 5
    await forwarder.close()


def test_a_layers_steady_rate_smooths_its_seconds() -> None:
    """A camera's rate over one second swings with its keyframes (the lab's 500 kbit/s clip read
    200-830 kbit/s second by second): the allocator's decision to send a first video on the
    starting guess reads the steady rate (:meth:`TrackForwarder.steady_bitrates`), or one quiet
    second let a 500 kbit/s camera through onto a 300 kbit/s link."""
    from signaling.sfu.forwarding import TrackForwarder

    clock = Clock()
    forwarder = TrackForwarder(
        participant_id="amina", source=TrackSource.CAMERA, codec=VideoCodec.VP8, receiver=FakeReceiver(),  # type: ignore[arg-type]
        keyframe_interval=0.5, keyframe_timeout=1.0, clock=clock,
    )
    seq = 0
    # Seconds of 25 and of 75 packets of 1,000 bytes in turn (200 and 600 kbit/s of payload).
    for second in range(12):
        count = 25 if second % 2 else 75
        for _ in range(count):
            forwarder.on_packet(rtp(seq, seq * 90, VP8_DELTA_START + bytes(993)))
            seq += 1
            clock.now += 1.0 / count
    current = forwarder.layer_bitrates()[0]
    steady = forwarder.steady_bitrates()[0]
    assert current is not None and steady is not None
    assert current < 260_000 or current > 560_000, f"a second reads {current:.0f}"
    assert 360_000 < steady < 480_000, f"the steady rate {steady:.0f} (the mean: about 424 kbit/s on the wire)"
    clock.now += 2.0
    assert forwarder.steady_bitrates() == (None,), "a layer that stopped has none"
