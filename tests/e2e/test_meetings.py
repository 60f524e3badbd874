"""Meetings through a real daphne server and the websocket protocol, on the
in-process SFU: three aiortc participants see and hear each other, a host
mutes one, one leaves and the others renegotiate."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from rooms.models import Room, RoomKind
from signaling import services
from tests import factories
from tests.servers import daphne_factory  # noqa: F401
from tests.signaling.clients import MeetingClient, wait_until
from tests.signaling.remote import remote_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]

EMBEDDED = {"HIRFA_SFU_PLACEMENT": "embedded"}


@database_sync_to_async
def tlemcen_guild_meeting():
    trade, wilaya = factories.trade(), factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    yacine = factories.yacine(pottery_=trade)
    nadia = factories.nadia(pottery_=trade)
    room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    meeting_id = services.meeting_start(user=nadia, room_id=room.pk).meeting
    return meeting_id, nadia, amina, yacine


def everyone_receives(clients: list[MeetingClient], source: str, at_least: int) -> bool:
    return all(
        len(c.frames_from(other.user_id, source)) >= at_least
        for c in clients
        for other in clients
        if other is not c
    )


async def test_three_participants_through_daphne(daphne_factory):  # noqa: F811
    meeting_id, nadia, amina, yacine = await tlemcen_guild_meeting()
    server = await asyncio.to_thread(daphne_factory, EMBEDDED)
    n = await remote_client(server, nadia, "nadia")
    a = await remote_client(server, amina, "amina")
    k = await remote_client(server, yacine, "yacine")
    clients = [n, a, k]
    try:
        for c in clients:
            await c.join(meeting_id)
        state = await n.wait_for(
            "meeting_state",
            lambda f: len(f["participants"]) == 3 and all(p["connected"] for p in f["participants"]),
        )
        assert {p["user"]["id"]: p["tracks"] for p in state["participants"]} == {
            u.pk: ["camera", "mic"] for u in (nadia, amina, yacine)
        }

        # each hears the other two
        await wait_until(lambda: everyone_receives(clients, "mic", 10), what="everyone hears the others")
        # the first publisher's video reaches the two others
        await wait_until(
            lambda: all(len(c.frames_from(nadia.pk, "camera")) >= 10 for c in (a, k)),
            what="amina and yacine see nadia",
        )
        # each sees the other two (the two late joiners publish and subscribe in one negotiation)
        await wait_until(lambda: everyone_receives(clients, "camera", 10), what="everyone sees the others")

        # a host mutes amina's microphone: her audio stops reaching nadia and yacine
        mark = n.mark()
        await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "mute", "user": amina.pk, "source": "mic"})
        await n.wait_for(
            "meeting_state",
            lambda f: [p["host_muted"] for p in f["participants"] if p["user"]["id"] == amina.pk] == [["mic"]],
            after=mark,
        )
        await k.wait_for(
            "meeting_state", lambda f: any(p["host_muted"] == ["mic"] for p in f["participants"]), after=0
        )
        heard = {c.name: len(c.frames_from(amina.pk, "mic")) for c in (n, k)}
        karim_hears_nadia = len(k.frames_from(nadia.pk, "mic"))
        await wait_until(
            lambda: len(k.frames_from(nadia.pk, "mic")) >= karim_hears_nadia + 50, what="the meeting goes on"
        )
        for c in (n, k):
            assert len(c.frames_from(amina.pk, "mic")) - heard[c.name] <= 3, f"{c.name} still hears amina"

        # yacine leaves: his slots empty for the others without a renegotiation (slots,
        # signaling/sfu/README.md), and they go on
        marks = {c.name: c.mark() for c in (n, a)}
        answered = {c.name: c.answered for c in (n, a)}
        await k.send({"type": "meeting_leave", "meeting": meeting_id, "ref": "bye"})
        ended = await k.wait_for("meeting_ended")
        assert (ended["reason"], ended["ref"]) == ("left", "bye")
        for c in (n, a):
            left = await c.wait_for(
                "meeting_state", lambda f: len(f["participants"]) == 2, after=marks[c.name]
            )
            assert yacine.pk not in {p["user"]["id"] for p in left["participants"]}
            await c.wait_for(
                "meeting_reception",
                lambda f: f.get("slots") and str(yacine.pk) not in {str(s.get("user")) for s in f["slots"]},
                after=marks[c.name],
            )
        assert str(yacine.pk) not in {s.publisher_id for c in (n, a) for s in c.peer.slots.values()}
        seen = len(a.frames_from(nadia.pk, "camera"))
        heard_nadia = len(a.frames_from(nadia.pk, "mic"))
        await wait_until(
            lambda: len(a.frames_from(nadia.pk, "camera")) >= seen + 20
            and len(a.frames_from(nadia.pk, "mic")) >= heard_nadia + 20,
            what="amina still sees and hears nadia after yacine left",
        )
        for c in (n, a):
            assert c.answered == answered[c.name], f"{c.name} renegotiated for a leave"
            assert not [f for f in c.frames[marks[c.name]:] if f["type"] == "meeting_offer"]
    finally:
        for c in clients:
            await c.close()


@database_sync_to_async
def attendance_open(meeting_id: int) -> list[int]:
    from signaling.models import Attendance

    return list(Attendance.objects.filter(meeting_id=meeting_id, left_at__isnull=True).values_list("user_id", flat=True))


@database_sync_to_async
def meeting_live(meeting_id: int) -> bool:
    from signaling.models import Meeting

    return Meeting.objects.get(pk=meeting_id).live


async def test_shutdown_closes_the_sfu_and_a_crash_is_swept(daphne_factory):  # noqa: F811
    from django.conf import settings

    from tests.signaling.remote import udp_ports

    meeting_id, nadia, amina, yacine = await tlemcen_guild_meeting()
    env = {**EMBEDDED, "HIRFA_MEETING_HEARTBEAT_SECONDS": "0.5"}
    server = await asyncio.to_thread(daphne_factory, env)
    n = await remote_client(server, nadia, "nadia")
    a = await remote_client(server, amina, "amina")
    try:
        for c in (n, a):
            await c.join(meeting_id)
        await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia")
        assert sorted(await attendance_open(meeting_id)) == sorted([nadia.pk, amina.pk])
        assert udp_ports(server.process.pid, port_min=settings.HIRFA_SFU_PORT_MIN, port_max=settings.HIRFA_SFU_PORT_MAX)

        # a clean stop (SIGTERM): the SFU closes every peer (the clients see their peer closed),
        # the attendance is closed and the meeting ends
        await asyncio.to_thread(server.stop)
        # (the return code is not checked: daphne 4.2 may die of SIGSEGV at exit, after this
        # shutdown, when it cancels a consumer with an open socket, meeting or not)
        assert "embedded SFU closed (2 participants)" in server.log_path.read_text(), server.log_tail()
        await wait_until(
            lambda: all(c.peer.pc.connectionState == "closed" for c in (n, a)), what="the server closed the peers"
        )
        assert await attendance_open(meeting_id) == []
        assert not await meeting_live(meeting_id)
    finally:
        for c in (n, a):
            await c.close()

    # a crash (SIGKILL) leaves attendance open; the next process sweeps it once it is stale
    second = (await database_sync_to_async(services.meeting_start)(user=nadia, room_id=await room_of(meeting_id))).meeting
    crashing = await asyncio.to_thread(daphne_factory, env)
    n = await remote_client(crashing, nadia, "nadia")
    try:
        await n.join(second)
        await n.wait_for("meeting_state", lambda f: f["participants"] and f["participants"][0]["connected"])
        assert await attendance_open(second) == [nadia.pk]
        crashing.process.kill()
        crashing.process.wait(timeout=10)
    finally:
        await n.close()
    assert await attendance_open(second) == [nadia.pk]
    restarted = await asyncio.to_thread(daphne_factory, env)
    k = await remote_client(restarted, yacine, "yacine")
    try:
        room = await room_of(second)

        async def room_is_live() -> bool:
            mark = k.mark()
            await k.send({"type": "meeting_info", "room": room})
            return bool((await k.wait_for("meeting", after=mark))["live"])

        while await room_is_live():
            await asyncio.sleep(0.5)
    finally:
        await k.close()
    assert await attendance_open(second) == []
    assert not await meeting_live(second)


@database_sync_to_async
def room_of(meeting_id: int) -> int:
    from signaling.models import Meeting

    return Meeting.objects.get(pk=meeting_id).room_id
