"""Every peer connection closes on leave, failure, removal and shutdown: nothing leaks."""

from __future__ import annotations

import asyncio
import threading

import psutil
import pytest

from signaling.sfu import InvalidSfuState, Sfu, SfuConfig, TrackSource
from tests.parallel import worker_port

from .peers import ClientPeer, PatternVideoTrack, Session, ToneAudioTrack, wait_until
from .test_forwarding_e2e import join

pytestmark = pytest.mark.timeout(120)


def udp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


def media_threads() -> int:
    """Threads other than the event loop's executor pool (the clients' encoders use it)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith(("asyncio_", "ThreadPoolExecutor")))


def other_tasks() -> int:
    return len(asyncio.all_tasks() - {asyncio.current_task()})


async def test_leave_and_shutdown_free_tasks_sockets_and_threads() -> None:
    baseline = (other_tasks(), udp_sockets(), media_threads())
    sfu = Sfu(SfuConfig(port_min=worker_port(43000), port_max=worker_port(43099)))
    meeting = sfu.meeting("guild-cleanup")
    clients = [
        ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()}),
        ClientPeer("karim", tracks={TrackSource.MICROPHONE: ToneAudioTrack()}),
        ClientPeer("yasmine"),
    ]
    sessions: list[Session] = [
        await join(meeting, clients[0], TrackSource.CAMERA, TrackSource.MICROPHONE),
        await join(meeting, clients[1], TrackSource.MICROPHONE),
        await join(meeting, clients[2]),
    ]
    await wait_until(lambda: len(clients[2].frames_from("amina", TrackSource.CAMERA)) >= 10, what="media to flow")
    assert udp_sockets() > baseline[1]
    server_ports = {
        c.port
        for p in meeting.participants()
        for c in p.peer_connection.getTransceivers()[0].receiver.transport.transport.iceGatherer.getLocalCandidates()
    }
    assert server_ports and all(worker_port(43000) <= number <= worker_port(43099) for number in server_ports)

    await meeting.leave("karim")  # a leave
    await meeting.remove("yasmine")  # a removal by a host
    for session in sessions:
        await session.settle()
    removed = sessions[1].participant
    assert removed is not None
    with pytest.raises(InvalidSfuState, match="closed"):
        await removed.create_offer()
    await sfu.close()  # a shutdown, with amina still in
    for client in clients:
        await client.close()

    await wait_until(lambda: other_tasks() <= baseline[0], what=f"tasks to end ({asyncio.all_tasks()})")
    await wait_until(lambda: udp_sockets() <= baseline[1], what="UDP sockets to close")
    await wait_until(lambda: media_threads() <= baseline[2], what="threads to end")
    assert [p for p in meeting.participants()] == []
    with pytest.raises(InvalidSfuState, match="SFU is closed"):
        sfu.meeting("another")


async def test_failed_connection_is_reported_and_removal_frees_it() -> None:
    baseline = (other_tasks(), udp_sockets())
    sfu = Sfu(SfuConfig(port_min=worker_port(43100), port_max=worker_port(43199)))
    meeting = sfu.meeting("guild-failure")
    client = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
    states = []
    session = Session(client)
    participant = await meeting.join(
        "amina", on_negotiation_needed=session.on_negotiation_needed, on_state_change=lambda p, s: states.append(s)
    )
    participant.publish(TrackSource.MICROPHONE)
    await session.settle()
    await wait_until(lambda: participant.forwarders()[0].frames_received > 5, what="audio")
    await client.close()  # the browser vanishes without a word
    await wait_until(lambda: states and states[-1].value in ("failed", "closed"), timeout=60, what="failure detected")
    await meeting.leave("amina")
    await sfu.close()
    await wait_until(lambda: other_tasks() <= baseline[0], what="tasks to end")
    await wait_until(lambda: udp_sockets() <= baseline[1], what="UDP sockets to close")
