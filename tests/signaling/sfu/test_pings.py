"""The allocator's pings (its delay signal): who is pinged, how often (real aiortc peers on
loopback, in this process)."""

from __future__ import annotations

from typing import Any

import pytest

from signaling.sfu import Sfu, SfuConfig, TrackSource
from signaling.sfu import meeting as meeting_module
from tests.parallel import worker_port

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def slot_sfu():
    server = Sfu(
        SfuConfig(
            announced_addresses=("127.0.0.1",), bind_address="127.0.0.1", port_min=worker_port(42000),
            port_max=worker_port(42999), audio_slots=3, video_slots=2,
        )
    )
    yield server
    await server.close()


async def join(meeting: Any, client: ClientPeer, *sources: TrackSource, receive_video: bool = True) -> Session:
    session = Session(client)
    participant = await meeting.join(
        client.name, on_negotiation_needed=session.on_negotiation_needed, on_reception=session.on_reception,
        receive_video=receive_video,
    )
    session.participant = participant
    for source in sources:
        participant.publish(source)
    await session.settle()
    return session


async def test_a_listener_whose_voices_fit_is_pinged_seldom_one_receiving_video_each_round(
    slot_sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An assembly's silent members receive their voices and no video: nothing to probe for, no
    # REMB to judge — a ping each allocation round (200 STUN transactions a second at 100, on
    # the worker and on their side) told the allocator nothing it uses.
    pings: dict[str, int] = {}
    real = meeting_module.aiortc_hooks.stun_round_trip

    async def counted(pc: Any, **kwargs: Any) -> float | None:
        names = [p.id for p in meeting.participants() if p.peer_connection is pc]
        for name in names:
            pings[name] = pings.get(name, 0) + 1
        return await real(pc, **kwargs)

    monkeypatch.setattr(meeting_module.aiortc_hooks, "stun_round_trip", counted)
    meeting = slot_sfu.meeting("assembly-pings")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    nadia = ClientPeer("nadia", tracks={TrackSource.MICROPHONE: ToneAudioTrack(amplitude=0)})
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    sessions.append(await join(meeting, karim, TrackSource.MICROPHONE, receive_video=False))
    sessions.append(await join(meeting, nadia, TrackSource.MICROPHONE))
    await wait_until(lambda: len(nadia.frames_from("amina", TrackSource.CAMERA)) >= 10, what="amina's video at nadia")
    await wait_until(lambda: pings.get("nadia", 0) >= 12, what="nadia pinged for 6 allocation rounds")
    counts = dict(pings)
    await close_all(slot_sfu, sessions)

    assert counts.get("karim", 0) <= 6, f"the listener was pinged {counts.get('karim')} times, nadia {counts['nadia']}"
