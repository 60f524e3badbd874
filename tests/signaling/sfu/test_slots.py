"""Slots: each subscriber receives a fixed set of audio and video m-lines and the SFU
switches sources into them (real aiortc peers on loopback, in this process)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from signaling.sfu import MediaKind, Sfu, SfuConfig, TrackSource
from signaling.sfu.forwarding import is_keyframe
from signaling.sfu.types import VideoCodec
from tests.parallel import worker_port

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all, publisher_sender
from .test_lipsync import record_sender_reports

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def slot_sfu():
    server = Sfu(
        SfuConfig(
            announced_addresses=("127.0.0.1",), bind_address="127.0.0.1", port_min=worker_port(42000), port_max=worker_port(42999),
            audio_slots=1, video_slots=2,
        )
    )
    yield server
    await server.close()


async def join(meeting: Any, client: ClientPeer, *sources: TrackSource) -> Session:
    session = Session(client)
    participant = await meeting.join(
        client.name, on_negotiation_needed=session.on_negotiation_needed, on_reception=session.on_reception
    )
    session.participant = participant
    for source in sources:
        participant.publish(source)
    await session.settle()
    return session


def record_rtp(client: ClientPeer, kind: str) -> list[tuple[int, int]]:
    """(sequence number, timestamp) of every RTP packet ``client`` receives on its ``kind`` slot."""
    receiver = next(t.receiver for t in client.pc.getTransceivers() if t.kind == kind and t.direction != "sendonly")
    packets: list[tuple[int, int]] = []
    real = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        packets.append((packet.sequence_number, packet.timestamp))
        await real(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle
    return packets


async def test_a_silent_participant_joining_renegotiates_nobody_else(slot_sfu: Sfu) -> None:
    meeting = slot_sfu.meeting("assembly-silent")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    sessions.append(await join(meeting, karim, TrackSource.MICROPHONE))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="amina's video at karim")
    before = {s.client.name: s.negotiations for s in sessions}

    for name in ("yasmine", "nadia", "farid"):
        silent = ClientPeer(name, tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
        sessions.append(await join(meeting, silent, TrackSource.MICROPHONE))
    for session in sessions:
        await session.settle()

    assert {s.client.name: s.negotiations for s in sessions[:2]} == before, "a silent join renegotiated the others"
    audio = [m for m, s in karim.slots.items() if s.kind is MediaKind.AUDIO and s.direction.value == "subscribe"]
    video = [m for m, s in karim.slots.items() if s.kind is MediaKind.VIDEO and s.direction.value == "subscribe"]
    assert (len(audio), len(video)) == (1, 2), f"karim's slots are not the configured ones: {karim.slots}"
    await close_all(slot_sfu, sessions)


async def test_the_loudest_speaker_enters_the_audio_slot_with_sequence_and_time_continuing(slot_sfu: Sfu) -> None:
    meeting = slot_sfu.meeting("assembly-voices")
    karim = ClientPeer("karim")
    bachir = ClientPeer("bachir", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=300)})
    amina = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    sessions = [await join(meeting, karim), await join(meeting, bachir, TrackSource.MICROPHONE)]
    packets = record_rtp(karim, "audio")
    await wait_until(lambda: len(karim.frames_from("bachir", TrackSource.MICROPHONE)) >= 25, what="bachir heard")
    negotiations = sessions[0].negotiations
    sessions.append(await join(meeting, amina, TrackSource.MICROPHONE))
    await wait_until(lambda: len(packets) >= 60, what="more of bachir")
    assert not karim.frames_from("amina", TrackSource.MICROPHONE), "a silent voice took the only audio slot"

    # amina starts speaking, louder than bachir
    publisher_sender(amina, "audio").track._amplitude = 15000
    await wait_until(lambda: meeting.active_speaker == "amina", what="amina to be the active speaker")
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) >= 25, what="amina heard in the slot")

    assert sessions[0].negotiations == negotiations, "a voice entering a slot renegotiated"
    for (seq_a, ts_a), (seq_b, ts_b) in itertools.pairwise(packets):
        assert (seq_b - seq_a) & 0xFFFF == 1, f"sequence jumps from {seq_a} to {seq_b}"
        assert 0 < (ts_b - ts_a) & 0xFFFFFFFF <= 48000, f"timestamp jumps from {ts_a} to {ts_b}"
    await close_all(slot_sfu, sessions)


async def test_a_new_camera_enters_a_free_video_slot_with_a_keyframe(slot_sfu: Sfu, codec_ledger) -> None:
    meeting = slot_sfu.meeting("assembly-cameras")
    karim = ClientPeer("karim")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    yasmine = ClientPeer("yasmine", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions = [await join(meeting, karim), await join(meeting, amina, TrackSource.CAMERA), await join(meeting, yasmine)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="amina's video")
    negotiations = sessions[0].negotiations

    assert sessions[2].participant is not None
    sessions[2].participant.publish(TrackSource.CAMERA)
    await sessions[2].settle()
    await wait_until(lambda: len(karim.frames_from("yasmine", TrackSource.CAMERA)) >= 10, what="yasmine's video")

    assert sessions[0].negotiations == negotiations, "a new camera renegotiated the subscriber"
    video = karim.frames_from("yasmine", TrackSource.CAMERA)
    assert is_keyframe(VideoCodec.VP8, video[0]), "the slot started on a delta frame"
    sent = codec_ledger.frames_of(publisher_sender(yasmine, "video"))
    assert all(frame in sent for frame in video), "the slot carried frames yasmine never sent"
    await close_all(slot_sfu, sessions)


async def test_a_camera_leaving_frees_its_slot_for_one_waiting_without_renegotiation(slot_sfu: Sfu) -> None:
    meeting = slot_sfu.meeting("assembly-last-n")
    karim = ClientPeer("karim")
    cameras = [ClientPeer(name, tracks={TrackSource.CAMERA: PatternVideoTrack()}) for name in ("amina", "yasmine", "nadia")]
    sessions = [await join(meeting, karim)]
    for camera in cameras:
        sessions.append(await join(meeting, camera, TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("yasmine", TrackSource.CAMERA)) >= 10, what="the second camera")
    assert not karim.frames_from("nadia", TrackSource.CAMERA), "a third camera got one of two video slots"
    negotiations = sessions[0].negotiations

    await meeting.leave("amina")
    await wait_until(lambda: len(karim.frames_from("nadia", TrackSource.CAMERA)) >= 10, what="nadia in the freed slot")
    assert sessions[0].negotiations == negotiations, "a leave renegotiated the subscriber"
    assert is_keyframe(VideoCodec.VP8, karim.frames_from("nadia", TrackSource.CAMERA)[0])
    await sessions[1].client.close()
    await close_all(slot_sfu, [sessions[0], *sessions[2:]])


async def test_a_phone_asks_for_fewer_video_slots_and_gets_the_last_to_speak(slot_sfu: Sfu) -> None:
    meeting = slot_sfu.meeting("assembly-phone")
    cameras = [ClientPeer(name, tracks={TrackSource.CAMERA: PatternVideoTrack()}) for name in ("amina", "yasmine")]
    sessions = [await join(meeting, camera, TrackSource.CAMERA) for camera in cameras]
    karim = ClientPeer("karim")
    session = Session(karim)
    session.participant = await meeting.join(
        "karim", on_negotiation_needed=session.on_negotiation_needed, on_reception=session.on_reception, video_slots=1
    )
    await session.settle()
    sessions.append(session)
    video = [m for m, s in karim.slots.items() if s.kind is MediaKind.VIDEO]
    assert len(video) == 1, f"a phone asking for one video slot got {len(video)}"
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="the first camera")
    assert not karim.frames_from("yasmine", TrackSource.CAMERA)
    await close_all(slot_sfu, sessions)


async def test_a_speakers_voice_and_picture_end_in_one_pair_when_the_pair_holds_another_camera(slot_sfu: Sfu) -> None:
    """amina's camera came first and took the unpaired video slot, yasmine's the one paired with the
    audio slot; when amina speaks, her voice takes the audio slot: the cameras swap, so that her
    voice and picture are one msid stream (Chromium synchronises only those), no renegotiation."""
    meeting = slot_sfu.meeting("assembly-swap")
    karim = ClientPeer("karim")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    yasmine = ClientPeer("yasmine", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions = [await join(meeting, karim), await join(meeting, amina, TrackSource.CAMERA)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="amina's video")
    sessions.append(await join(meeting, yasmine, TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("yasmine", TrackSource.CAMERA)) >= 10, what="yasmine's video")
    msids = msid_by_mid(meeting.participant("karim").peer_connection.localDescription.sdp)
    assert msids[karim.mid_for("yasmine", TrackSource.CAMERA)] == "hirfa-s0", "the set-up: yasmine in the pair"
    negotiations = sessions[0].negotiations

    assert sessions[1].participant is not None
    sessions[1].participant.publish(TrackSource.MICROPHONE)
    await sessions[1].settle()

    def mid(source: TrackSource) -> str | None:
        return next((m for m, s in karim.slots.items() if s.publisher_id == "amina" and s.source is source), None)

    def paired() -> bool:
        audio, video = mid(TrackSource.MICROPHONE), mid(TrackSource.CAMERA)
        return audio is not None and video is not None and msids.get(audio) == msids.get(video)

    await wait_until(paired, what="amina's voice and picture in one pair")
    frames = len(karim.frames_from("amina", TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= frames + 10, what="amina's video in the pair")
    await wait_until(lambda: len(karim.frames_from("yasmine", TrackSource.CAMERA)) >= 20, what="yasmine's video goes on")
    assert sessions[0].negotiations == negotiations, "pairing up renegotiated the subscriber"
    await close_all(slot_sfu, sessions)


def msid_by_mid(sdp: str) -> dict[str, str]:
    """mid -> msid stream of each m-line of an SDP."""
    out = {}
    for section in sdp.split("\nm=")[1:]:
        lines = section.splitlines()
        mid = next((line[6:] for line in lines if line.startswith("a=mid:")), None)
        msid = next((line[7:].split()[0] for line in lines if line.startswith("a=msid:")), None)
        if mid is not None and msid is not None:
            out[mid] = msid
    return out


async def test_slot_pairs_keep_a_publishers_voice_and_picture_in_one_stream_and_sync_only_then(slot_sfu: Sfu) -> None:
    meeting = slot_sfu.meeting("assembly-lipsync")
    karim = ClientPeer("karim")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    sessions = [await join(meeting, karim), await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="amina's video")
    video_mid = karim.mid_for("amina", TrackSource.CAMERA)
    audio_mid = karim.mid_for("amina", TrackSource.MICROPHONE)
    msids = msid_by_mid(meeting.participant("karim").peer_connection.localDescription.sdp)
    assert msids[video_mid] == msids[audio_mid], f"amina's voice and picture are not in one stream: {msids}"
    assert len(set(msids.values())) == 2, f"one audio slot pairs with one of two video slots: {msids}"
    reports = {mid: record_sender_reports(karim, mid) for mid in (video_mid, audio_mid)}
    await wait_until(lambda: all(any(ntp for ntp, _ in r) for r in reports.values()), timeout=30,
                     what="sender reports in amina's clock on both halves of the pair")

    # yasmine, with no camera, speaks: her voice takes the audio slot, amina's picture stays;
    # the pair now holds two people: its reports carry no NTP time (nothing to synchronise).
    # (A speaker with a camera has it swapped into the pair: the test below.)
    yasmine = ClientPeer("yasmine", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions.append(await join(meeting, yasmine, TrackSource.MICROPHONE))
    await wait_until(lambda: karim.slots[audio_mid].publisher_id == "yasmine", what="yasmine in the audio slot")
    assert karim.slots[video_mid].publisher_id == "amina"
    for r in reports.values():
        r.clear()
    await wait_until(lambda: all(len(r) >= 2 for r in reports.values()), timeout=30, what="reports after the switch")
    assert all(ntp == 0 for r in reports.values() for ntp, _ in r[1:]), reports
    await close_all(slot_sfu, sessions)
