"""The publisher's packets are handled in the socket callback, not through aiortc's queue and coroutine."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpReceiver

from signaling.sfu import Sfu, TrackSource

from .peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all, join

pytestmark = pytest.mark.timeout(120)


async def test_tapped_receivers_take_the_synchronous_path_and_keep_rtcp_statistics(
    sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    through_aiortc: list[RTCRtpReceiver] = []
    original = RTCRtpReceiver._handle_rtp_packet

    async def counting(self: RTCRtpReceiver, packet, arrival_time_ms: int) -> None:
        through_aiortc.append(self)
        await original(self, packet, arrival_time_ms=arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", counting)
    meeting = sfu.meeting("guild-receive-path")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE), await join(meeting, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim video")
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) >= 10, what="karim audio")

    server_receivers = [t.receiver for t in meeting.participant("amina").peer_connection.getTransceivers() if t.direction == "recvonly"]
    assert len(server_receivers) == 2
    for receiver in server_receivers:
        # Our tap and aiortc's private streams (pinned; see signaling/sfu/aiortc_hooks.py).
        tap = receiver._hirfa_receive  # type: ignore[attr-defined]
        assert tap.packets > 0, "the publisher's packets did not take the synchronous path"
        streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        assert streams and all(s.packets_received > 0 for s in streams.values()), "receiver reports would be empty"
        assert receiver not in through_aiortc, "a tapped receiver went through aiortc's coroutine"
    await close_all(sfu, sessions)
