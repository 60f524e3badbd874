"""One publisher, two subscribers, real aiortc peers on loopback in this process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from signaling.sfu import MediaKind, Sfu, TrackSource
from signaling.sfu.forwarding import is_keyframe
from signaling.sfu.types import VideoCodec

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until

pytestmark = pytest.mark.timeout(120)


def publisher_sender(client: ClientPeer, kind: str):
    return next(t.sender for t in client.pc.getTransceivers() if t.sender.track is not None and t.kind == kind)


def assert_in_order_subsequence(received: list[bytes], published: list[bytes]) -> None:
    position = 0
    for index, frame in enumerate(received):
        try:
            position = published.index(frame, position) + 1
        except ValueError:
            raise AssertionError(f"received frame {index} ({len(frame)} bytes) was never published in that order") from None


async def join(meeting, client: ClientPeer, *sources: TrackSource, **options: Any) -> Session:
    session = Session(client)
    participant = await meeting.join(client.name, on_negotiation_needed=session.on_negotiation_needed, **options)
    session.participant = participant
    for source in sources:
        participant.publish(source)
    await session.settle()
    return session


async def test_frames_reach_subscribers_byte_for_byte_without_codecs(sfu: Sfu, codec_ledger) -> None:
    meeting = sfu.meeting("guild-tlemcen")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    yasmine = ClientPeer("yasmine")
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    sessions += [await join(meeting, karim), await join(meeting, yasmine)]
    for session in sessions:
        await session.settle()

    for viewer in (karim, yasmine):
        await wait_until(lambda: len(viewer.frames_from("amina", TrackSource.CAMERA)) >= 40, what=f"{viewer.name} video")  # noqa: B023 (awaited here)
        await wait_until(lambda: len(viewer.frames_from("amina", TrackSource.MICROPHONE)) >= 40, what=f"{viewer.name} audio")  # noqa: B023 (awaited here)

    video_sent = codec_ledger.frames_of(publisher_sender(amina, "video"))
    audio_sent = codec_ledger.frames_of(publisher_sender(amina, "audio"))
    for viewer in (karim, yasmine):
        video = viewer.frames_from("amina", TrackSource.CAMERA)
        assert is_keyframe(VideoCodec.VP8, video[0]), f"{viewer.name} started on a delta frame"
        assert_in_order_subsequence(video, video_sent)
        assert_in_order_subsequence(viewer.frames_from("amina", TrackSource.MICROPHONE), audio_sent)

    server_senders = {id(t.sender) for p in meeting.participants() for t in p.peer_connection.getTransceivers()}
    assert not [s for s, _ in codec_ledger.encoders if id(s) in server_senders], "the server created an encoder"
    assert codec_ledger.decoders == [], "a decoder was created"
    # the publisher's own encoders are the only ones
    assert len(codec_ledger.encoders) == 2

    await close_all(sfu, sessions)


async def close_all(sfu: Sfu, sessions: list[Session]) -> None:
    for session in sessions:
        await session.settle()
    await sfu.close()
    for session in sessions:
        await session.client.close()


def count_keyframes(frames: list[bytes]) -> int:
    return sum(1 for frame in frames if is_keyframe(VideoCodec.VP8, frame))


async def test_late_joiner_starts_at_a_keyframe_requested_from_the_publisher(sfu: Sfu, codec_ledger) -> None:
    meeting = sfu.meeting("region-oran")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 60, what="karim video")
    sent = codec_ledger.frames_of(publisher_sender(amina, "video"))
    keyframes_before = count_keyframes(sent)

    yasmine = ClientPeer("yasmine")
    sessions.append(await join(meeting, yasmine))
    await wait_until(lambda: len(yasmine.frames_from("amina", TrackSource.CAMERA)) >= 10, what="yasmine video")

    first = yasmine.frames_from("amina", TrackSource.CAMERA)[0]
    assert is_keyframe(VideoCodec.VP8, first)
    assert count_keyframes(sent) > keyframes_before, "the publisher produced no new keyframe for the late joiner"
    assert sent.index(first) >= len(sent) - len(yasmine.frames_from("amina", TrackSource.CAMERA)) - 5
    await close_all(sfu, sessions)


async def test_keyframe_request_from_a_subscriber_reaches_the_publisher(sfu: Sfu, codec_ledger) -> None:
    meeting = sfu.meeting("guild-pottery")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 30, what="karim video")
    sender = publisher_sender(amina, "video")
    requests: list[float] = []
    real = sender._send_keyframe

    def counted() -> Any:
        requests.append(1)
        return real()

    sender._send_keyframe = counted
    subscription = meeting.participant("karim").subscription_tracks()[0]
    source = subscription.source
    assert source is not None
    received_before = subscription.keyframe_requests_received
    keyframes_before = count_keyframes(codec_ledger.frames_of(sender))

    await wait_until(lambda: source.last_keyframe_request is None
                     or time.monotonic() - source.last_keyframe_request > 0.6,
                     what="the rate limit window to pass")
    await karim.send_pli("amina", TrackSource.CAMERA)

    await wait_until(lambda: requests, what="the PLI to reach amina's sender")
    assert subscription.keyframe_requests_received == received_before + 1
    await wait_until(lambda: count_keyframes(codec_ledger.frames_of(sender)) > keyframes_before, what="a new keyframe")
    await wait_until(
        lambda: count_keyframes(karim.frames_from("amina", TrackSource.CAMERA)) >= 2, what="karim receiving it"
    )
    await close_all(sfu, sessions)


async def test_moderator_mute_stops_forwarding_whatever_the_client_sends(sfu: Sfu) -> None:
    meeting = sfu.meeting("group-weavers")
    amina = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.MICROPHONE), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) >= 20, what="karim audio")
    forwarder = meeting.participant("amina").forwarders()[0]

    meeting.set_muted("amina", TrackSource.MICROPHONE, True)
    mark = forwarder.frames_received
    await wait_until(lambda: forwarder.frames_received >= mark + 10, what="frames in flight to drain")
    heard = len(karim.frames_from("amina", TrackSource.MICROPHONE))
    mark = forwarder.frames_received
    await wait_until(lambda: forwarder.frames_received >= mark + 25, what="amina to keep sending")
    assert len(karim.frames_from("amina", TrackSource.MICROPHONE)) == heard
    assert meeting.snapshot().participants[0].published[0].muted_by_moderator

    meeting.set_muted("amina", TrackSource.MICROPHONE, False)
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) > heard + 10, what="audio to resume")
    await close_all(sfu, sessions)


async def test_active_speaker_follows_audio_levels(sfu: Sfu) -> None:
    meeting = sfu.meeting("guild-speakers")
    amina = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=15000)})
    sessions = [await join(meeting, amina, TrackSource.MICROPHONE), await join(meeting, karim, TrackSource.MICROPHONE)]
    await wait_until(lambda: meeting.active_speaker == "karim", what="karim to be the active speaker")
    await close_all(sfu, sessions)


async def test_leaving_renegotiates_and_reuses_the_slot(sfu: Sfu) -> None:
    meeting = sfu.meeting("guild-leave")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim video")
    negotiations = sessions[1].negotiations

    await meeting.leave("amina")
    await sessions[1].settle()
    assert sessions[1].negotiations == negotiations + 1
    (slot,) = [s for s in karim.slots.values() if s.kind is MediaKind.VIDEO]
    assert slot.publisher_id is None and slot.source is None

    yasmine = ClientPeer("yasmine", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions.append(await join(meeting, yasmine, TrackSource.CAMERA))
    await sessions[1].settle()
    await wait_until(lambda: len(karim.frames_from("yasmine", TrackSource.CAMERA)) >= 10, what="yasmine's video at karim")
    assert len(karim.pc.getTransceivers()) == 1, "the idle m-line was not reused"
    await sessions[0].client.close()
    await close_all(sfu, sessions[1:])


async def test_a_first_answer_that_receives_and_publishes_video_sends_it(sfu: Sfu) -> None:
    """Two m-lines of each kind in one offer (regression: the client's video sender never started)."""
    meeting = sfu.meeting("guild-both-ways")
    nadia = ClientPeer("nadia", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions = [await join(meeting, nadia, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    sessions.append(await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE))
    assert sessions[1].negotiations == 1, "amina's subscriptions and publications were not in one offer"
    for viewer, publisher in ((nadia, "amina"), (amina, "nadia")):
        for source in (TrackSource.CAMERA, TrackSource.MICROPHONE):
            await wait_until(
                lambda: len(viewer.frames_from(publisher, source)) >= 10,  # noqa: B023 (awaited here)
                what=f"{viewer.name} receiving {publisher}'s {source.value}",
            )
    await close_all(sfu, sessions)


async def test_forwarded_packets_carry_the_subscription_header_and_nacks_are_answered_over_rtx(sfu: Sfu) -> None:
    meeting = sfu.meeting("guild-headers")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 5, what="karim video")
    (server_side,) = [t for t in meeting.participant("karim").peer_connection.getTransceivers() if t.kind == "video"]
    sender = server_side.sender
    receiver = next(t for t in karim.pc.getTransceivers() if t.kind == "video").receiver
    seen: list[tuple[int, int, bytes, str | None]] = []
    original = receiver._handle_rtp_packet

    async def record(packet, arrival_time_ms: int) -> None:
        seen.append((packet.ssrc, packet.sequence_number, packet.payload, packet.extensions.mid))
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = record
    await wait_until(lambda: len(seen) >= 10, what="packets at karim")
    ssrc, seq, payload, mid = seen[-1]
    assert (ssrc, mid) == (sender._ssrc, server_side.mid), "not the subscription's SSRC and mid"
    assert all(b - a == 1 for a, b in zip([s for _, s, _, _ in seen[:10]], [s for _, s, _, _ in seen[1:11]]))

    await sender._retransmit(seq)  # what a NACK from karim triggers
    await wait_until(lambda: any(s == sender._rtx_ssrc for s, *_ in seen), what="the RTX retransmission")
    rtx = next(p for s, _, p, _ in seen if s == sender._rtx_ssrc)
    assert rtx == seq.to_bytes(2, "big") + payload, "RTX must carry the original sequence number and payload"
    await close_all(sfu, sessions)
