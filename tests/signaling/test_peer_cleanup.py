"""Every server-side peer connection is closed, with its UDP sockets, on leave,
failure, removal and shutdown (embedded SFU, through the socket protocol)."""

from __future__ import annotations

import pytest
from django.conf import settings

from signaling import placement
from tests.signaling.clients import MeetingClient, wait_until
from tests.signaling.remote import peer_connections_open, udp_ports
from tests.signaling.test_consumers import client, guild_meeting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def sfu_ports() -> list[int]:
    """UDP sockets this process holds in the SFU's port range (the test clients use another)."""
    return udp_ports(port_min=settings.HIRFA_SFU_PORT_MIN, port_max=settings.HIRFA_SFU_PORT_MAX)


def server_peers(clients: list[MeetingClient]) -> int:
    """Open RTCPeerConnections of the SFU: all open ones but the test clients'."""
    return peer_connections_open() - sum(1 for c in clients if c.peer.pc.connectionState != "closed")


async def all_connected(watcher: MeetingClient, count: int) -> None:
    await watcher.wait_for(
        "meeting_state",
        lambda f: len(f["participants"]) == count and all(p["connected"] for p in f["participants"]),
        after=0,
    )


async def test_leave_failure_removal_and_shutdown_free_every_peer(embedded_sfu, close_sfu_after):
    assert sfu_ports() == [] and peer_connections_open(collect=True) == 0
    _room, meeting_id, nadia, amina, yacine, _ = await guild_meeting()
    n = await client(nadia, "nadia")
    a = await client(amina, "amina")
    k = await client(yacine, "yacine", publish=("mic",))
    clients = [n, a, k]
    try:
        for c in clients:
            await c.join(meeting_id)
        await all_connected(n, 3)
        await wait_until(lambda: len(n.frames_from(yacine.pk, "mic")) >= 5, what="nadia hears yacine")
        assert server_peers(clients) == 3
        ports_of_three = sfu_ports()
        assert ports_of_three, "the SFU's peers hold UDP sockets in its port range"

        # leave: yacine's peer and its sockets are closed
        await k.send({"type": "meeting_leave", "meeting": meeting_id})
        await k.wait_for("meeting_ended")
        await wait_until(lambda: server_peers(clients) == 2, what="yacine's server peer closed")
        await wait_until(lambda: len(sfu_ports()) < len(ports_of_three), what="yacine's sockets closed")
        ports_of_two = sfu_ports()
        assert set(ports_of_two) < set(ports_of_three)

        # failure: amina's connection dies without a word; she is told to rejoin, her peer is closed
        mark = a.mark()
        await a.peer.close()
        rejoin = await a.wait_for("meeting_rejoin", after=mark, timeout=60)
        assert rejoin["reason"] == "connection_failed"
        await wait_until(lambda: server_peers(clients) == 1, what="amina's server peer closed")
        await wait_until(lambda: len(sfu_ports()) < len(ports_of_two), what="amina's sockets closed")

        # removal: amina rejoins, then a host removes her
        from signaling.sfu import TrackSource
        from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack

        a.peer = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
        await a.join(meeting_id)
        await all_connected(n, 2)
        await wait_until(lambda: server_peers(clients) == 2, what="amina back")
        await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "remove", "user": amina.pk})
        assert (await a.wait_for("meeting_ended"))["reason"] == "removed"
        await wait_until(lambda: server_peers(clients) == 1, what="amina's server peer closed on removal")

        # shutdown: the last peer goes with the SFU
        await placement.close_embedded()
        assert server_peers(clients) == 0
        # A closed datagram transport lets its socket go once its queued sends are out.
        await wait_until(lambda: sfu_ports() == [], what="the SFU's sockets closed")
    finally:
        for c in clients:
            await c.close()
    assert peer_connections_open(collect=True) == 0
    assert sfu_ports() == []


async def test_a_failed_participant_who_never_rejoins_is_taken_out(embedded_sfu, close_sfu_after):
    from channels.db import database_sync_to_async

    from signaling.models import Attendance

    placement.embedded_engine()._rejoin_grace = 0.5
    _room, meeting_id, nadia, amina, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    a = await client(amina, "amina")
    clients = [n, a]
    try:
        for c in clients:
            await c.join(meeting_id)
        await all_connected(n, 2)
        mark = n.mark()
        await a.peer.close()
        await a.wait_for("meeting_rejoin")
        ended = await a.wait_for("meeting_ended")
        assert ended["reason"] == "left"
        state = await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 1, after=mark)
        assert state["participants"][0]["user"]["id"] == nadia.pk
        open_rows = await database_sync_to_async(
            lambda: list(Attendance.objects.filter(meeting_id=meeting_id, left_at__isnull=True).values_list("user_id", flat=True))
        )()
        assert open_rows == [nadia.pk]
        await wait_until(lambda: server_peers(clients) == 1, what="amina's server peer closed")
    finally:
        for c in clients:
            await c.close()
    await placement.close_embedded()
    assert peer_connections_open(collect=True) == 0
    # A closed datagram transport lets its socket go once its queued sends are out (2df6b1f).
    await wait_until(lambda: sfu_ports() == [], what="the SFU's sockets closed")
