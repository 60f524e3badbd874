"""A meeting spread over two SFUs joined by a pipe (real UDP), real aiortc peers in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from signaling.sfu import Sfu, SfuConfig, TrackSource
from signaling.sfu.forwarding import is_keyframe
from signaling.sfu.pipe import (
    ANNOUNCE,
    GONE,
    MAX_NACKS_PER_SECOND,
    NACK_INTERVAL,
    SILENCE_TIMEOUT,
    TAG_SIZE,
    TRACK_TIMEOUT,
    VERSION,
    Datagram,
    PipedTrackForwarder,
    PipedTrackInfo,
    tag,
)
from signaling.sfu.types import VideoCodec
from tests.parallel import worker_port

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
    a, b = Sfu(config(worker_port(46000), audio_slots=3, video_slots=4)), Sfu(config(worker_port(46500), audio_slots=3, video_slots=4))
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


#: The pipe's secret, as one worker drew it and told the other (the engine's `PipeOpen`).
KEY = bytes(range(32))
MALLORYS_KEY = bytes(range(1, 33))


async def spread(a: Sfu, b: Sfu, meeting_id: str, *, key: bytes = KEY, key_there: bytes = KEY):
    """The meeting on both workers, a's tracks piped to b and b's to a."""
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    here, there = a.meeting(meeting_id), b.meeting(meeting_id)
    here.pipe_to(pipe_a, pipe_b.address, key=key)
    there.pipe_from(pipe_b, pipe_a.address, key=key_there)
    there.pipe_to(pipe_b, pipe_a.address, key=key_there)
    here.pipe_from(pipe_a, pipe_b.address, key=key)
    return here, there


def overhear(endpoint, kind: Datagram, *, drop: Callable[[bytes], bool] = lambda data: False) -> list[bytes]:
    """The datagrams of ``kind`` reaching ``endpoint`` (those ``drop`` picks are lost on the way);
    answers the list they are added to. The endpoint's own ``datagram_received`` is left
    at ``endpoint.genuine_received`` (a forger's datagrams go there)."""
    seen: list[bytes] = []
    real = endpoint.datagram_received

    def received(data: bytes, addr) -> None:
        if data[1] == kind:
            seen.append(data)
            if drop(data):
                return
        real(data, addr)

    endpoint.genuine_received = real
    endpoint.datagram_received = received
    return seen


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

    # Piped again, then worker a dies (no goodbye): b drops its tracks after SILENCE_TIMEOUT.
    here.pipe_to(pipe_a, pipe_b.address, key=KEY)
    await wait_until(lambda: len(there.remote_forwarders()) == 2, what="amina's tracks back on worker b")
    pipe_a.kill()
    await wait_until(lambda: not there.remote_forwarders(), timeout=SILENCE_TIMEOUT + 5, what="a dead worker's tracks gone")
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
    await asyncio.sleep(SILENCE_TIMEOUT + 1.5)
    before = len(karim.frames_from("amina", TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= before + 20, what="karim still sees amina")
    for session in sessions:
        await session.settle()
    for client in (amina, amina_again, karim):
        await client.close()


# --- authentication (issue 11): only the two workers holding the pipe's key speak on it --


async def test_a_forged_or_altered_pipe_datagram_is_refused_and_counted(workers) -> None:
    a, b = workers
    here, there = await spread(a, b, "forged")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(here, amina, TrackSource.CAMERA), await join(there, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    seen = overhear(pipe_b, Datagram.RTP)
    await wait_until(lambda: seen, what="a packet of amina's on the pipe")
    (camera,) = there.remote_forwarders()
    genuine = seen[-1]
    number = int.from_bytes(genuine[2:4], "big")
    body = genuine[:-TAG_SIZE]
    altered = body[:-1] + bytes([body[-1] ^ 1]) + genuine[-TAG_SIZE:]  # a payload byte changed on the way
    forgeries = [
        altered,
        body + bytes(TAG_SIZE),  # no key: any tag
        body + tag(MALLORYS_KEY, body),  # another key
        # A track opened by someone without the key, and a goodbye for amina's camera.
        (opened := ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, 999, 0) + b"forged\0mallory") + tag(MALLORYS_KEY, opened),
        GONE.pack(VERSION, Datagram.GONE, number) + bytes(TAG_SIZE),
    ]
    received, refused = camera.packets_received, pipe_b.datagrams_refused
    for forged in forgeries:  # from worker a's address, as a spoofed source would be
        pipe_b.genuine_received(forged, pipe_a.address)
    assert pipe_b.datagrams_refused == refused + len(forgeries)
    assert camera.packets_received == received, "a forged packet reached the subscribers"
    assert there.remote_forwarders() == (camera,), "a forged datagram opened or closed a track"

    # The genuine datagram still passes (tags are no nonce: a replay is the forwarding's duplicate).
    pipe_b.genuine_received(genuine, pipe_a.address)
    assert pipe_b.datagrams_refused == refused + len(forgeries)
    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


async def test_a_pipe_whose_keys_differ_carries_nothing(workers) -> None:
    a, b = workers
    here, there = await spread(a, b, "two-keys", key=KEY, key_there=MALLORYS_KEY)
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions = [await join(here, amina, TrackSource.CAMERA, TrackSource.MICROPHONE), await join(there, karim, TrackSource.MICROPHONE)]
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    # Karim's voice alone goes b → a (50 packets a second once his peer sends): on a loaded
    # machine (load 12) 20 s were not enough.
    await wait_until(lambda: pipe_b.datagrams_refused >= 20 and pipe_a.datagrams_refused >= 20, timeout=60,
                     what="refusals both ways")
    assert not there.remote_forwarders() and not here.remote_forwarders()
    assert not karim.frames_from("amina", TrackSource.CAMERA) and not amina.frames_from("karim", TrackSource.MICROPHONE)
    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


# --- loss on the pipe (issue 11): a subscriber's NACK is answered across workers ---------


async def test_a_packet_lost_on_the_pipe_is_asked_of_the_publishers_worker_and_resent(workers) -> None:
    a, b = workers
    here, there = await spread(a, b, "lossy-pipe")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    karim = ClientPeer("karim", loss_timeout=3.0)  # a browser's jitter buffer waits for NACKed packets
    sessions = [await join(here, amina, TrackSource.CAMERA), await join(there, karim)]
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    pipe_a, pipe_b = await a.pipe_endpoint(), await b.pipe_endpoint()
    (camera,) = there.remote_forwarders()
    (subscription,) = camera.subscribers
    assembler = karim.assemblers[karim.mid_for("amina", TrackSource.CAMERA)]
    losses = assembler.losses
    lost: list[int] = []

    def drop(data: bytes) -> bool:
        if not lost:  # the first of amina's packets from now on is lost on the pipe; the rest pass
            lost.append(int.from_bytes(data[8:10], "big"))
            return True
        return False

    overhear(pipe_b, Datagram.RTP, drop=drop)
    # Karim's browser NACKs the hole; worker b never had that packet, so it asks worker a,
    # whose cache has it, and the packet comes through the pipe into karim's hole.
    await wait_until(lambda: lost and camera.cached(lost[0]) is not None, what="the lost packet resent through the pipe")
    assert camera.packets_asked >= 1 and pipe_a.packets_resent >= 1
    frames = len(karim.frames_from("amina", TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= frames + 20, what="video to go on")
    assert assembler.losses == losses, "karim lost a frame"

    # Now worker b has it: a NACK of it is answered from b's own cache, nothing asked of a.
    asked = camera.packets_asked
    retransmissions = subscription.retransmissions
    await asyncio.sleep(0.6)  # past the round-trip throttle of his own resends
    subscription.on_nack((lost[0] + subscription._seq_offset) & 0xFFFF)
    assert subscription.retransmissions == retransmissions + 1 and camera.packets_asked == asked
    for session in sessions:
        await session.settle()
    for client in (amina, karim):
        await client.close()


async def test_a_packet_asked_across_the_pipe_is_asked_once_per_interval() -> None:
    asked: list[tuple[int, int]] = []
    now = 100.0
    camera = PipedTrackForwarder(
        info=PipedTrackInfo("pottery", "amina", TrackSource.CAMERA),
        ask_keyframe=lambda layer: None,
        ask_packet=lambda seq, layer: asked.append((seq, layer)),
        codec=VideoCodec.VP8,
        keyframe_interval=0.5,
        clock=lambda: now,
    )
    camera.on_missing(7)
    camera.on_missing(7)  # every subscriber here NACKs the same hole
    camera.on_missing(8)
    assert asked == [(7, 0), (8, 0)] and camera.asks_throttled == 1
    now += NACK_INTERVAL + 0.01
    camera.on_missing(7)  # its resend was lost too
    assert asked[-1] == (7, 0)
    for seq in range(100, 100 + MAX_NACKS_PER_SECOND):  # a burst of loss on the pipe
        camera.on_missing(seq)
    assert len(asked) == MAX_NACKS_PER_SECOND
    now += 1.0
    camera.on_missing(9)
    assert asked[-1] == (9, 0)


async def test_a_late_loop_does_not_drop_tracks_whose_announce_waits_unread_in_its_socket() -> None:
    # A worker whose loop is behind (the assembly at 100 spread over two workers, on two
    # cores shared with its load) judged its remote tracks before reading the announces that
    # waited in its pipe socket: it dropped them (512 in one run), each came back at its next
    # announce, and every drop and return switched the slots of all its participants and
    # asked a keyframe: more work, later still. Tracks are judged when nothing waits unread.
    import socket

    sfu = Sfu(config(worker_port(46960)))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind(("127.0.0.1", 0))
        endpoint = await sfu.pipe_endpoint()
        meeting = sfu.meeting("assembly")
        meeting.pipe_from(endpoint, sender.getsockname(), key=KEY)
        announce = ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, 1, 0) + b"assembly\0karim"
        sender.sendto(announce + tag(KEY, announce), endpoint.address)
        await wait_until(lambda: len(endpoint.remote_tracks()) == 1, what="karim's track piped in")
        (track,) = endpoint.remote_tracks()

        # His worker announced again on time; this worker's loop has not read it yet.
        sender.sendto(announce + tag(KEY, announce), endpoint.address)
        endpoint.tick(track.heard + SILENCE_TIMEOUT + 0.5)
        assert endpoint.remote_tracks() == (track,), "dropped while its announce waited unread"
        assert endpoint.tracks_timed_out == 0

        # Nothing unread and nothing announced for SILENCE_TIMEOUT: his worker is gone.
        await wait_until(lambda: not endpoint.unread(), what="the announce read")
        endpoint.tick(track.heard + TRACK_TIMEOUT + 0.5)
        assert endpoint.remote_tracks() == (track,), "a stalled worker's tracks are kept for SILENCE_TIMEOUT"
        endpoint.tick(track.heard + SILENCE_TIMEOUT + 0.5)
        assert endpoint.remote_tracks() == () and endpoint.tracks_timed_out == 1
    finally:
        sender.close()
        await sfu.close()
