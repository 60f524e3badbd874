"""What one member may hold in meetings, and the SFU's ports: meetings at once (even when
joins are sent at once), a join whose peer never connects let go with its UDP ports, a full
port range answered with sfu_unavailable, the ports counted in the engine's stats and the
workers' announcements (``hirfa sfu --status``)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from asgiref.sync import sync_to_async

from signaling import placement
from signaling.models import Attendance
from tests import factories
from tests.signaling.remote import udp_ports
from tests.sockets import clear_presence, expect, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
async def _fresh():
    await clear_presence()


@sync_to_async
def amina_and_yacine():
    _room, amina, yacine = factories.guild_with("amina", "yacine")
    return amina, yacine


@sync_to_async
def group_meeting(owner, *members) -> int:
    """A private group of ``owner``'s with a live meeting; its id."""
    from rooms import services as room_services
    from signaling import services as meeting_services

    group = room_services.group_create(user=owner, title="Atelier", member_ids=[m.pk for m in members])
    meeting = meeting_services.meeting_start(user=owner, room_id=group.pk).meeting
    assert meeting is not None
    return meeting


@sync_to_async
def open_seats(user) -> int:
    return Attendance.objects.filter(user=user, left_at__isnull=True).count()


def media_ports(settings) -> list[int]:
    """The UDP ports of the SFU's range this process holds open (the kernel's count)."""
    return udp_ports(port_min=settings.HIRFA_SFU_PORT_MIN, port_max=settings.HIRFA_SFU_PORT_MAX)


async def settled(comm, ref: str) -> dict:
    """The answer to the join sent with ``ref``: ``meeting_joined`` or an ``error``."""
    while True:
        frame = await comm.receive_json_from(timeout=20)
        if frame.get("ref") == ref and frame["type"] in ("meeting_joined", "error"):
            return frame


async def test_meetings_a_member_is_in_at_once_are_limited(settings, embedded_sfu, close_sfu_after):
    settings.HIRFA_MEETINGS_PER_MEMBER = 1
    amina, yacine = await amina_and_yacine()
    first, second = await group_meeting(amina, yacine), await group_meeting(amina, yacine)
    phone, laptop = await open_socket(amina), await open_socket(amina)
    await phone.send_json_to({"type": "meeting_join", "meeting": first})
    await expect(phone, "meeting_joined", meeting=first, timeout=20)
    await laptop.send_json_to({"type": "meeting_join", "meeting": second, "ref": "two"})
    refused = await expect(laptop, "error", ref="two")
    assert refused["code"] == "limit_reached" and refused["message"]
    await phone.send_json_to({"type": "meeting_leave", "meeting": first})
    await expect(phone, "meeting_ended", meeting=first)
    await laptop.send_json_to({"type": "meeting_join", "meeting": second, "ref": "now"})
    await expect(laptop, "meeting_joined", meeting=second, timeout=20)
    for comm in (phone, laptop):
        await comm.disconnect()


async def test_joins_sent_at_once_cannot_pass_the_meeting_limit(settings, embedded_sfu, close_sfu_after):
    settings.HIRFA_MEETINGS_PER_MEMBER = 1
    amina, yacine = await amina_and_yacine()
    meetings = [await group_meeting(amina, yacine) for _ in range(3)]
    sockets = [await open_socket(amina) for _ in meetings]
    for i, (comm, meeting_id) in enumerate(zip(sockets, meetings, strict=True)):
        await comm.send_json_to({"type": "meeting_join", "meeting": meeting_id, "ref": f"j{i}"})
    answers = [await settled(comm, f"j{i}") for i, comm in enumerate(sockets)]
    joined = [a for a in answers if a["type"] == "meeting_joined"]
    assert len(joined) == 1, answers
    assert all(a["code"] == "limit_reached" for a in answers if a["type"] == "error")
    assert await open_seats(amina) == 1
    for comm in sockets:
        await comm.disconnect()
    assert await open_seats(amina) == 0


async def test_a_join_whose_peer_never_connects_is_let_go_with_its_ports(settings, embedded_sfu, close_sfu_after):
    settings.HIRFA_MEETING_CONNECT_SECONDS = 1.0
    amina, yacine = await amina_and_yacine()
    meeting_id = await group_meeting(amina, yacine)
    assert media_ports(settings) == []
    comm = await open_socket(amina)
    await comm.send_json_to({"type": "meeting_join", "meeting": meeting_id, "publish": ["mic"]})
    await expect(comm, "meeting_offer", meeting=meeting_id, timeout=20)  # never answered
    engine = placement.current_engine()
    assert engine is not None
    held = media_ports(settings)
    assert held and engine.stats().ports == len(held), "the engine counts the ports its peers hold"
    assert engine.stats().participants == 1
    rejoin = await expect(comm, "meeting_rejoin", meeting=meeting_id, timeout=20)
    assert rejoin["reason"] == "connection_failed"
    for _ in range(200):
        if not media_ports(settings):
            break
        await asyncio.sleep(0.05)
    assert media_ports(settings) == [], "the unanswered peer's ports are released"
    assert engine.stats().ports == 0
    await comm.disconnect()


async def test_no_free_port_answers_sfu_unavailable(settings, embedded_sfu, close_sfu_after):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((settings.HIRFA_SFU_BIND_ADDRESS, 0))
    settings.HIRFA_SFU_PORT_MIN = settings.HIRFA_SFU_PORT_MAX = taken.getsockname()[1]  # its one port in use
    try:
        amina, yacine = await amina_and_yacine()
        meeting_id = await group_meeting(amina, yacine)
        comm = await open_socket(amina)
        await comm.send_json_to({"type": "meeting_join", "meeting": meeting_id, "ref": "j", "publish": ["mic"]})
        await expect(comm, "meeting_joined", meeting=meeting_id, timeout=20)
        refused = await expect(comm, "error", timeout=20)
        assert refused["code"] == "sfu_unavailable" and refused["message"]
        ended = await expect(comm, "meeting_ended", meeting=meeting_id)
        assert ended["reason"] == "left"
        await comm.send_json_to({"type": "ping", "ref": "p"})
        await expect(comm, "pong", ref="p")  # the socket goes on
        assert await open_seats(amina) == 0
        engine = placement.current_engine()
        assert engine is not None and engine.stats().participants == 0
        await comm.disconnect()
    finally:
        taken.close()


@pytest.fixture
async def worker_registry(settings, redis_url):
    """An empty worker registry on the test Redis, emptied again afterwards."""
    settings.REDIS_URL = redis_url
    placement._redis_clients.clear()
    client = placement._redis()
    await client.delete(placement.WORKERS_KEY)
    yield client
    await client.delete(placement.WORKERS_KEY)
    for key in await client.keys(placement.ALIVE_PREFIX + "test-*"):
        await client.delete(key)
    await client.aclose()
    placement._redis_clients.clear()


async def test_workers_announce_their_ports_and_status_shows_them(worker_registry):
    from signaling import worker

    await placement.worker_register(worker_id="test-busy", load=3, ports=6)
    await placement.worker_register(worker_id="test-gone", load=1, ports=2)
    await worker_registry.delete(placement.ALIVE_PREFIX + "test-gone")  # stopped heartbeating
    statuses = await placement.worker_statuses()
    info, alive = statuses["test-busy"]
    assert (info.load, info.ports, alive) == (3, 6, True)
    assert abs(info.at - time.time()) < 60
    assert statuses["test-gone"][1] is False
    lines = await worker.status_lines()
    assert any(line.startswith("test-busy\talive\tparticipants=3\tports=6\t") for line in lines), lines
    assert any(line.startswith("test-gone\tdead\t") for line in lines), lines
