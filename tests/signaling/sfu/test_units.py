"""The SFU's pieces without a network: frame assembly, queues, keyframes, speakers, API errors."""

from __future__ import annotations

import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from signaling.sfu import InvalidSfuState, MediaKind, Sfu, SfuConfig, TooManyTracks, TrackSource, VideoCodec
from signaling.sfu.aiortc_hooks import AssembledFrame, FrameAssembler
from signaling.sfu.forwarding import ForwardTrack, is_keyframe
from signaling.sfu.speaker import ActiveSpeakerDetector


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


class FakeSource:
    def __init__(self) -> None:
        self.requests = 0
        self.subs: set = set()

    def request_keyframe(self) -> bool:
        self.requests += 1
        return True

    def _attach(self, track) -> None:
        self.subs.add(track)

    def _detach(self, track) -> None:
        self.subs.discard(track)


class FakeWriter:
    """Records what a subscription writes; ``backlog`` plays a subscriber that does not keep up."""

    def __init__(self) -> None:
        self.frames: list[tuple[tuple[bytes, ...], int, int | None]] = []
        self.backlog_bytes = 0

    def write(self, payloads, timestamp: int, audio_level: int | None = None) -> bool:
        self.frames.append((tuple(payloads), timestamp, audio_level))
        return True

    def backlog(self) -> int:
        return self.backlog_bytes

    def data(self) -> list[bytes]:
        return [b"".join(payloads) for payloads, _, _ in self.frames]


def frame(data: bytes, ts: int = 0, *, after_loss: bool = False) -> AssembledFrame:
    return AssembledFrame(data, ts, None, after_loss, (data[:2], data[2:]))


async def test_forward_track_starts_at_a_keyframe_and_drops_for_a_slow_subscriber() -> None:
    track = ForwardTrack(MediaKind.VIDEO, max_backlog=1000)
    source = FakeSource()
    writer = FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.push(frame(KEY), keyframe=True)
    assert source.requests == 0 and not track.sending, "nothing is written before the sender starts"
    track.start_sending(writer)
    assert source.requests == 1, "a new subscription asks for a keyframe"
    track.push(frame(DELTA), keyframe=False)
    assert writer.frames == [] and source.requests == 2
    track.push(frame(KEY, 3000), keyframe=True)
    track.push(frame(DELTA, 6000), keyframe=False)
    assert writer.data() == [KEY, DELTA]
    assert writer.frames[0][0] == (KEY[:2], KEY[2:]), "the publisher's payloads are forwarded as they came"
    writer.backlog_bytes = 1001  # the subscriber is too slow
    track.push(frame(DELTA, 9000), keyframe=False)
    writer.backlog_bytes = 0
    track.push(frame(DELTA, 12000), keyframe=False)
    assert writer.data() == [KEY, DELTA] and track.frames_dropped == 3
    track.push(frame(KEY, 15000), keyframe=True)
    track.push(frame(DELTA, 18000, after_loss=True), keyframe=False)
    assert writer.data() == [KEY, DELTA, KEY]
    assert [ts for _, ts, _ in writer.frames] == [3000, 6000, 15000]
    track.stop()
    track.push(frame(KEY, 21000), keyframe=True)
    assert len(writer.frames) == 3
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_forward_track_rebases_timestamps_across_sources() -> None:
    track = ForwardTrack(MediaKind.AUDIO, max_backlog=1000)
    writer = FakeWriter()
    track.start_sending(writer)
    first, second = FakeSource(), FakeSource()
    track.attach(first)  # type: ignore[arg-type]
    track.push(frame(b"a", 1000), keyframe=True)
    track.push(frame(b"b", 1960), keyframe=True)
    track.attach(second)  # type: ignore[arg-type]
    track.push(frame(b"d", 5), keyframe=True)
    assert [ts for _, ts, _ in writer.frames] == [1000, 1960, 1960 + 960]
    track.stop()


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
    sfu = Sfu(SfuConfig(port_min=43200, port_max=43299, max_tracks_per_participant=2))
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

    from signaling.sfu import aiortc_hooks

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

        aiortc_hooks._send_datagrams(sender, Transport(), receiver.getsockname(), datagrams)
        assert [receiver.recv(2000) for _ in datagrams] == datagrams
        assert sent == []
        aiortc_hooks._send_datagrams(None, Transport(), receiver.getsockname(), datagrams[:3])
        assert sent == datagrams[:3]
    finally:
        receiver.close()
        sender.close()
