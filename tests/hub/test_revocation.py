"""Rights end the moment they end: log-out, password change, deactivation and
deletion close the member's open sockets (4003); a ban, a removal from a group
and a lost right end his subscription and his meeting session in that room;
ICE restart and rejoin check the right again. Through Channels' communicator,
on the bus the settings choose (Redis in CI); tests/e2e/test_revocation.py does
it across two daphne processes."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from hub.consumers import HubConsumer
from rooms.models import Room, RoomKind
from tests import factories
from tests.sockets import clear_presence, expect, nothing_more, subscribe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
async def _fresh_presence():
    await clear_presence()


@sync_to_async
def people():
    trade, wilaya = factories.trade(), factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    yacine = factories.yacine(pottery_=trade)
    nadia = factories.nadia(pottery_=trade)
    return Room.objects.get(kind=RoomKind.GUILD, trade=trade), amina, yacine, nadia


@sync_to_async
def new_session(user) -> object:
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.create()
    return session


async def socket_of(user, session=None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = user
    if session is not None:
        comm.scope["session"] = session
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"type": "hello", "v": 1})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    return comm


async def closed_with(comm: WebsocketCommunicator, code: int, timeout: float = 10) -> None:
    """Frames may come first; then the socket closes with `code`."""
    while True:
        out = await comm.receive_output(timeout=timeout)
        if out["type"] == "websocket.close":
            assert out.get("code") == code, out
            return


async def still_open(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"type": "ping", "ref": "alive"})
    await expect(comm, "pong", ref="alive")


async def test_log_out_closes_the_sockets_of_that_session_only():
    room, amina, *_ = await people()
    phone, laptop = await new_session(amina), await new_session(amina)
    a1, a2, b = await socket_of(amina, phone), await socket_of(amina, phone), await socket_of(amina, laptop)
    await subscribe(a1, room.pk)

    @sync_to_async
    def log_out():
        from django.contrib.auth import logout
        from django.test import RequestFactory

        request = RequestFactory().post("/accounts/logout/")
        request.session, request.user = phone, amina
        logout(request)

    await log_out()
    await closed_with(a1, 4003)
    await closed_with(a2, 4003)
    await still_open(b)
    from tests.protocol_fuzz import held_by

    await b.disconnect()
    assert await held_by(amina.pk, [room.pk]) == []


@pytest.mark.parametrize("change", ["password", "deactivate", "delete"])
async def test_password_change_deactivation_and_deletion_close_every_socket(change):
    room, amina, yacine, _ = await people()
    session = await new_session(amina)
    a, b = await socket_of(amina, session), await socket_of(amina)
    y = await socket_of(yacine)
    await subscribe(a, room.pk)

    @sync_to_async
    def apply():
        from hub.models import User

        user = User.objects.get(pk=amina.pk)
        if change == "password":
            user.set_password("a new secret 123")
            user.save()
        elif change == "deactivate":
            user.is_active = False
            user.save(update_fields=["is_active"])
        else:
            from hub.personal_data import account_delete

            account_delete(user=user)

    await apply()
    await closed_with(a, 4003)
    await closed_with(b, 4003)
    await still_open(y)  # nobody else's socket
    await y.disconnect()
    online = await _online(room.pk)
    assert amina.pk not in online


async def _online(room_id):
    from rooms.presence import presence_store

    return (await presence_store().online(room_id))[0]


@sync_to_async
def group_with_meeting(owner, *members):
    from rooms import services as room_services
    from signaling import services as meeting_services

    group = room_services.group_create(user=owner, title="Atelier", member_ids=[m.pk for m in members])
    return group.pk, meeting_services.meeting_start(user=owner, room_id=group.pk).meeting


async def joined(comm, meeting_id: int) -> None:
    await comm.send_json_to({"type": "meeting_join", "meeting": meeting_id, "ref": "j"})
    await expect(comm, "meeting_joined", meeting=meeting_id, timeout=20)


def engine_members(meeting_id: int) -> set[int]:
    from signaling import placement

    engine = placement.current_engine()
    live = engine._meetings.get(meeting_id) if engine is not None else None
    return set(live.members) if live is not None else set()


async def wait_until_gone(meeting_id: int, user_id: int) -> None:
    import asyncio

    for _ in range(200):
        if user_id not in engine_members(meeting_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"user {user_id} still has a peer in meeting {meeting_id}")


async def test_a_ban_ends_the_subscription_and_the_meeting_session_in_that_room(embedded_sfu, close_sfu_after):
    room, amina, _yacine, nadia = await people()
    meeting_id = await sync_to_async(
        lambda: __import__("signaling.services", fromlist=["x"]).meeting_start(user=nadia, room_id=room.pk).meeting
    )()
    a, n = await socket_of(amina), await socket_of(nadia)
    await subscribe(a, room.pk)
    await joined(a, meeting_id)
    await joined(n, meeting_id)
    assert amina.pk in engine_members(meeting_id)

    await n.send_json_to({"type": "ban", "room": room.pk, "user": amina.pk, "ref": "b"})
    await expect(n, "ack", ref="b")
    assert (await expect(a, "removed", room=room.pk))["reason"] == "banned"
    ended = await expect(a, "meeting_ended", meeting=meeting_id)
    assert ended["reason"] == "removed"
    await wait_until_gone(meeting_id, amina.pk)
    assert nadia.pk in engine_members(meeting_id)  # the meeting goes on for the others

    # Rejoining is checked again: the same answer as for a meeting that does not exist.
    await a.send_json_to({"type": "meeting_join", "meeting": meeting_id, "ref": "again"})
    assert (await expect(a, "error", ref="again"))["code"] == "not_found"
    await still_open(a)
    for c in (a, n):
        await c.disconnect()


async def test_removal_from_a_group_ends_the_subscription_and_the_meeting_session(embedded_sfu, close_sfu_after):
    _room, amina, yacine, _ = await people()
    group, meeting_id = await group_with_meeting(amina, yacine)
    y = await socket_of(yacine)
    await subscribe(y, group)
    await joined(y, meeting_id)

    from rooms import services as room_services

    await sync_to_async(room_services.group_member_remove)(user=amina, room_id=group, member_id=yacine.pk)
    assert (await expect(y, "removed", room=group))["reason"] == "removed"
    assert (await expect(y, "meeting_ended", meeting=meeting_id))["reason"] == "removed"
    await wait_until_gone(meeting_id, yacine.pk)
    await y.disconnect()


async def test_ice_restart_checks_the_right_to_be_in_the_meeting_again(embedded_sfu, close_sfu_after):
    _room, amina, yacine, _ = await people()
    group, meeting_id = await group_with_meeting(amina, yacine)
    y = await socket_of(yacine)
    await joined(y, meeting_id)

    # Taken out behind the socket's back (no event reaches it): the next grant must notice.
    from rooms.models import Membership

    await sync_to_async(lambda: Membership.objects.filter(room_id=group, user=yacine).update(active=False))()
    await y.send_json_to({"type": "meeting_ice_restart", "meeting": meeting_id, "ref": "r"})
    assert (await expect(y, "meeting_ended", meeting=meeting_id))["reason"] == "removed"
    assert (await expect(y, "error", ref="r"))["code"] == "not_found"
    await wait_until_gone(meeting_id, yacine.pk)
    await still_open(y)
    await y.disconnect()


async def test_a_moderator_scope_taken_away_makes_the_sockets_check_again(embedded_sfu, close_sfu_after):
    room, _amina, _yacine, nadia = await people()
    n = await socket_of(nadia)
    await subscribe(n, room.pk)

    calls = []
    original = HubConsumer.recheck_rights

    async def spy(self, room_id):
        calls.append((self.user.pk, room_id))
        await original(self, room_id)

    HubConsumer.recheck_rights = spy
    try:
        from hub.models import ModeratorScope

        await sync_to_async(lambda: ModeratorScope.objects.filter(user=nadia).delete())()
        await nothing_more(n, kind="removed", wait=0.5)  # she still reads the guild as a member
    finally:
        HubConsumer.recheck_rights = original
    assert calls == [(nadia.pk, None)]
    await still_open(n)
    await n.disconnect()
