"""Light recording: what the SFU forwards, written to WebM without decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.rtp import RtpPacket

from signaling.sfu import Sfu, TrackSource
from signaling.sfu.recorder import MeetingRecorder, TrackRecording, vp8_dimensions
from signaling.sfu.types import MediaKind, VideoCodec

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until

pytestmark = pytest.mark.timeout(120)


async def join(meeting, client: ClientPeer, *sources: TrackSource) -> Session:
    session = Session(client)
    session.participant = await meeting.join(client.name, on_negotiation_needed=session.on_negotiation_needed)
    for source in sources:
        session.participant.publish(source)
    await session.settle()
    return session


def decoded_frames(path: Path, kind: str) -> list[Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return list(container.decode(stream))


async def test_meeting_recording_writes_each_track_without_a_codec(sfu: Sfu, codec_ledger, tmp_path: Path) -> None:
    meeting = sfu.meeting("guild-tlemcen")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    yasmine = ClientPeer("yasmine", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions = [
        await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE),
        await join(meeting, karim, TrackSource.MICROPHONE),
        await join(meeting, yasmine, TrackSource.MICROPHONE),
    ]
    forwarders = {(f.participant_id, f.source): f for f in meeting.forwarders()}
    await wait_until(lambda: forwarders[("amina", TrackSource.CAMERA)].frames_received > 10, what="amina's camera")
    camera = forwarders[("amina", TrackSource.CAMERA)]
    asked_before = camera.keyframe_requests_sent + camera.keyframe_requests_absorbed

    recorder = meeting.start_recording(tmp_path, excluded=frozenset({"yasmine"}))
    # A keyframe is asked for (sent, or absorbed by one pending for the subscribers).
    assert camera.keyframe_requests_sent + camera.keyframe_requests_absorbed == asked_before + 1
    await wait_until(
        lambda: all(r.frames >= 60 for r in recorder.recordings()) and len(recorder.recordings()) == 3,
        what="three tracks recorded",
    )
    manifest = await meeting.stop_recording()
    assert meeting.recorder is None
    assert all(not f.taps for f in meeting.forwarders())

    assert manifest is not None and manifest["complete"]
    written = sorted((s["participant"], s["source"]) for s in manifest["segments"])
    assert written == [("amina", "camera"), ("amina", "microphone"), ("karim", "microphone")]
    assert json.loads(next(tmp_path.glob("session-*.json")).read_text()) == manifest
    for segment in manifest["segments"]:
        path = tmp_path / segment["file"]
        frames = decoded_frames(path, segment["kind"])
        assert len(frames) >= 50, segment
        # (The end follows the publisher's RTP clock, which may run ahead of ours on a busy machine.)
        assert 0 <= segment["start"] < min(segment["end"], manifest["duration"])
        if segment["kind"] == "video":
            assert (frames[0].width, frames[0].height) == (160, 120)
    assert not list(tmp_path.glob("*yasmine*")), "an excluded participant was written"

    assert codec_ledger.decoders == [], "the SFU decoded"
    assert len(codec_ledger.encoders) == 4, "only the publishers' own encoders exist"
    for session in sessions:
        await session.settle()
    await sfu.close()
    for session in sessions:
        await session.client.close()


async def test_opting_out_ends_the_segment_and_opting_in_starts_a_new_one(sfu: Sfu, tmp_path: Path) -> None:
    meeting = sfu.meeting("guild-oran")
    amina = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    session = await join(meeting, amina, TrackSource.MICROPHONE)
    recorder = meeting.start_recording(tmp_path)
    await wait_until(lambda: recorder.recordings() and recorder.recordings()[0].frames > 20, what="first segment")
    meeting.set_recorded("amina", False)
    first = recorder.recordings()[0]
    assert first.closed
    frames = first.frames
    meeting.set_recorded("amina", True)
    await wait_until(lambda: len(recorder.recordings()) == 2 and recorder.recordings()[1].frames > 20, what="second")
    assert first.frames == frames
    manifest = await meeting.stop_recording()
    assert manifest is not None
    first_segment, second_segment = manifest["segments"]
    assert first_segment["end"] <= second_segment["start"]
    await session.settle()
    await sfu.close()
    await amina.close()


# --- the reordering and frame assembly, packet by packet --------------------------------


class FakeForwarder:
    participant_id = "amina"
    source = TrackSource.CAMERA
    kind = MediaKind.VIDEO
    codec = VideoCodec.VP8
    clock_rate = 90000
    red_payload_type = None

    def __init__(self) -> None:
        self.keyframe_requests = 0

    def request_keyframe(self, layer: int = 0) -> bool:
        self.keyframe_requests += 1
        return True


KEY = b"\x10" + bytes([0x00, 0x00, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]) + b"k" * 50
DELTA = b"\x10" + b"\x01" + b"d" * 40


def vp8_packet(seq: int, ts: int, payload: bytes, marker: bool = True) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, marker=marker, payload=payload)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def recording(tmp_path: Path) -> tuple[TrackRecording, FakeForwarder, Clock, list[bytes]]:
    forwarder = FakeForwarder()
    clock = Clock()
    track = TrackRecording(
        path=tmp_path / "v.webm", forwarder=forwarder, clock=clock, origin=0.0, on_changed=lambda: None  # type: ignore[arg-type]
    )
    written: list[bytes] = []
    real_write = track._write

    def write(data: bytes, timestamp: int, *, keyframe: bool) -> None:
        written.append(data)
        real_write(data, timestamp, keyframe=keyframe)

    track._write = write  # type: ignore[method-assign]
    return track, forwarder, clock, written


def test_vp8_dimensions_come_from_the_keyframe_header() -> None:
    assert vp8_dimensions(KEY[1:]) == (320, 240)
    assert vp8_dimensions(DELTA[1:]) is None


def test_a_segment_never_ends_after_now(tmp_path: Path) -> None:
    """Its first frame read 0.3 s late by a busy loop, the media after it on time (the stale
    part dropped at the socket): the segment ends now, not 0.3 s in the future, where the same
    track's next segment may already start."""
    track, _forwarder, clock, _written = recording(tmp_path)
    clock.now = 1.3  # the keyframe of media time 1.0, read late
    track.on_packet(vp8_packet(100, 0, KEY), True)
    clock.now = 2.0
    track.on_packet(vp8_packet(101, 90000, DELTA), False)  # 1 s of media later, on time
    assert track.start == 1.3
    assert track.end == 2.0
    track.close()


def test_a_late_packet_fills_its_hole_within_the_hold(tmp_path: Path) -> None:
    track, forwarder, clock, written = recording(tmp_path)
    track.on_packet(vp8_packet(100, 0, KEY), True)
    track.on_packet(vp8_packet(102, 6000, DELTA), False)
    clock.now = 0.5
    assert len(written) == 1
    track.on_packet(vp8_packet(101, 3000, DELTA), False)  # the retransmission
    assert len(written) == 3
    assert forwarder.keyframe_requests == 0
    track.close()


def test_a_hole_given_up_skips_video_to_the_next_keyframe(tmp_path: Path) -> None:
    track, forwarder, clock, written = recording(tmp_path)
    track.on_packet(vp8_packet(65534, 0, KEY), True)
    track.on_packet(vp8_packet(0, 6000, DELTA), False)  # 65535 lost, across the wrap
    clock.now = 2.0
    track.on_packet(vp8_packet(1, 9000, DELTA), False)
    assert len(written) == 1, "frames after a loss are written only from a keyframe"
    assert forwarder.keyframe_requests == 1
    track.on_packet(vp8_packet(2, 12000, KEY), True)
    assert len(written) == 2
    track.close()


def test_a_frame_missing_its_first_packet_is_not_written(tmp_path: Path) -> None:
    track, _forwarder, clock, written = recording(tmp_path)
    track.on_packet(vp8_packet(10, 0, KEY), True)
    track.on_packet(vp8_packet(12, 3000, DELTA[:10], marker=True), False)
    clock.now = 2.0
    track.on_packet(vp8_packet(13, 6000, DELTA), False)
    assert written == [KEY[1:]]
    track.close()


# --- one layer of a simulcast camera ---------------------------------------------------


class SimulcastForwarder(FakeForwarder):
    """A camera sending three layers; ``live`` says which of them arrive now."""

    layered = True
    rids = ("q", "h", "f")

    def __init__(self) -> None:
        super().__init__()
        self.taps: tuple = ()
        self.live = [True, True, True]
        self.asked: list[int] = []

    def layer_bitrates(self) -> tuple[float | None, ...]:
        return tuple(500_000.0 if on else None for on in self.live)

    def request_keyframe(self, layer: int = 0) -> bool:
        self.asked.append(layer)
        return True

    def send(self, layer: int, seq: int, ts: int, payload: bytes) -> None:
        for tap in self.taps:
            tap(vp8_packet(seq, ts, payload), payload is KEY, layer)


async def test_a_simulcast_camera_is_recorded_from_its_highest_layer_and_follows_it(tmp_path: Path) -> None:
    clock = Clock()
    recorder = MeetingRecorder(directory=tmp_path, clock=clock, wall_clock=lambda: 1_800_000_000.0)
    camera = SimulcastForwarder()
    recorder.track_published(camera)  # type: ignore[arg-type]
    assert camera.asked == [2], "the keyframe is asked of the layer recorded"
    for seq in range(3):
        for layer in range(3):
            camera.send(layer, 1000 * layer + seq, 3000 * seq, KEY if seq == 0 else DELTA)
    (first,) = recorder.recordings()
    assert (first.layer, first.frames) == (2, 3), "one layer written, not the frames of all three"

    # The publisher's uplink drops the full layer: the half one is taken at its keyframe.
    camera.live[2] = False
    clock.now = 1.0
    recorder.tick()
    assert camera.asked[-1] == 1
    camera.send(1, 3, 9000, DELTA)
    assert len(recorder.recordings()) == 1, "a switch waits for the new layer's keyframe"
    camera.send(1, 4, 12000, KEY)
    camera.send(1, 5, 15000, DELTA)
    done, second = recorder.recordings()
    assert done is first and first.closed
    assert (second.layer, second.frames) == (1, 2)

    # The full layer comes back: taken only once the segment is old enough not to flap.
    camera.live[2] = True
    clock.now = 2.0
    recorder.tick()
    camera.send(2, 3, 12000, KEY)
    assert len(recorder.recordings()) == 2
    clock.now = 1.0 + 5.0
    recorder.tick()
    camera.send(2, 4, 15000, KEY)
    assert [r.layer for r in recorder.recordings()] == [2, 1, 2]

    manifest = await recorder.stop()
    assert camera.taps == ()
    assert [segment["frames"] for segment in manifest["segments"]] == [3, 2, 1]
