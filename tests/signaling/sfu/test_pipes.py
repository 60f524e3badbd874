"""A meeting spread over two SFUs joined by a pipe (real UDP), real aiortc peers in this process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.sfu import Sfu, SfuConfig, TrackSource
from signaling.sfu.forwarding import is_keyframe
from signaling.sfu.pipe import TRACK_TIMEOUT
from signaling.sfu.types import VideoCodec

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until
from .test_forwarding_e2e import assert_in_order_subsequence, publisher_sender

pytestmark = pytest.mark.timeout(120)


def config(port_min: int, **options: Any) -> SfuConfig:
    return SfuConfig(
        announced_addresses=("127.0.0.1",), bind_address="127.0.0.1", port_min=port_min, port_max=port_min + 499,
        **options,
    )


@pytest.fixture
async def workers():
    """Two SFUs as two workers would hold them (each its own ports and pipe socket)."""
    a, b = Sfu(config(46000, audio_slots=3, video_slots=4)), Sfu(config(46500, audio_slots=3, video_slots=4))
    yield a, b
    await a.close()
    await b.close()


async def join(meeting, client: ClientPeer, *sources: TrackSource) -> Session:
    session = Session(client)
    participant = await meeting.join(
        client.name, on_negotiation_needed=session.on_negotiation_needed, on_reception=session.on_reception
    )
    session.participant = participant
    for source in sources:
        participant.publish(source)
    await session.settle()
    return session


async def spread(a: Sfu, b: Sfu, meeting_id: str):
    """The meeting on both workers, a's tracks piped to b and b's to a."""
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    here, there = a.meeting(meeting_id), b.meeting(meeting_id)
    here.pipe_to(pipe_a, pipe_b.address)
    there.pipe_from(pipe_b, pipe_a.address)
    there.pipe_to(pipe_b, pipe_a.address)
    here.pipe_from(pipe_a, pipe_b.address)
    return here, there


async def test_a_subscriber_on_another_worker_receives_the_publisher_through_the_pipe(workers, codec_ledger) -> None:
    a, b = workers
    here, there = await spread(a, b, "assembly-guild")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions = [await join(here, amina, TrackSource.CAMERA, TrackSource.MICROPHONE), await join(there, karim, TrackSource.MICROPHONE)]

    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 40, what="karim's video of amina")
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) >= 40, what="karim's audio of amina")
    # ...and the other way: amina on worker a hears karim, published on worker b.
    await wait_until(lambda: len(amina.frames_from("karim", TrackSource.MICROPHONE)) >= 40, what="amina's audio of karim")

    video = karim.frames_from("amina", TrackSource.CAMERA)
    assert is_keyframe(VideoCodec.VP8, video[0]), "the remote subscriber started on a delta frame"
    assert_in_order_subsequence(video, codec_ledger.frames_of(publisher_sender(amina, "video")))
    assert_in_order_subsequence(
        karim.frames_from("amina", TrackSource.MICROPHONE), codec_ledger.frames_of(publisher_sender(amina, "audio"))
    )
    assert codec_ledger.decoders == [], "a worker decoded"
    assert {f.participant_id for f in there.remote_forwarders()} == {"amina"}
    assert {f.participant_id for f in here.remote_forwarders()} == {"karim"}
    assert not [p.id for p in there.participants() if p.id == "amina"], "amina is not a participant of worker b"

    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


async def test_a_remote_subscribers_keyframe_request_reaches_the_publisher(workers, codec_ledger) -> None:
    a, b = workers
    here, there = await spread(a, b, "pottery")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(here, amina, TrackSource.CAMERA), await join(there, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 30, what="karim's video")
    sender = publisher_sender(amina, "video")
    requests: list[int] = []
    real = sender._send_keyframe

    def counted() -> Any:
        requests.append(1)
        return real()

    sender._send_keyframe = counted
    await asyncio.sleep(here.config.keyframe_interval + 0.1)
    await karim.send_pli("amina", TrackSource.CAMERA)
    await wait_until(lambda: requests, what="the PLI of a subscriber on worker b at the publisher on worker a")
    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


async def test_a_pipe_closes_and_a_dead_workers_tracks_go(workers) -> None:
    a, b = workers
    here, there = await spread(a, b, "weavers")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(here, amina, TrackSource.CAMERA, TrackSource.MICROPHONE), await join(there, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    camera = next(f for f in here.local_forwarders() if f.source is TrackSource.CAMERA)
    assert len(camera.taps) == 1 and len(pipe_a.piped(pipe_b.address)) == 2

    # The last subscriber on b leaves: b asks a (through the engine) to stop; the taps go,
    # b's tracks of amina go, and nothing more arrives.
    here.unpipe_to(pipe_b.address)
    assert camera.taps == () and pipe_a.piped() == ()
    await wait_until(lambda: not there.remote_forwarders(), what="amina's tracks gone from worker b")
    slots = karim.slots.values()
    await wait_until(lambda: all(s.publisher_id is None for s in slots if s.direction.value == "subscribe"), what="karim's slots empty")

    # Piped again, then worker a dies (no goodbye): b drops its tracks after TRACK_TIMEOUT.
    here.pipe_to(pipe_a, pipe_b.address)
    await wait_until(lambda: len(there.remote_forwarders()) == 2, what="amina's tracks back on worker b")
    pipe_a.kill()
    await wait_until(lambda: not there.remote_forwarders(), timeout=TRACK_TIMEOUT + 5, what="a dead worker's tracks gone")
    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


async def test_a_publisher_who_moves_to_the_subscribers_worker_is_not_lost_when_his_old_pipe_times_out(workers) -> None:
    a, b = workers
    here, there = await spread(a, b, "moved")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(here, amina, TrackSource.CAMERA), await join(there, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    # worker a dies; amina rejoins on worker b before b's piped track of her timed out
    (await a.pipe_endpoint()).kill()
    amina_again = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions.append(await join(there, amina_again, TrackSource.CAMERA))
    assert not there.remote_forwarders(), "her piped track is gone as she joined here"
    await asyncio.sleep(TRACK_TIMEOUT + 1.5)
    before = len(karim.frames_from("amina", TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= before + 20, what="karim still sees amina")
    for session in sessions:
        await session.settle()
    for client in (amina, amina_again, karim):
        await client.close()
