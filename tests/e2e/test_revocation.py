"""Rights end on every process: two daphne servers on Redis and one database; the
member's sockets on both close (4003) when his session is logged out, and a ban
issued on one server ends his subscription on the other."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from rooms.models import Room, RoomKind
from tests import factories
from tests.servers import daphne_factory, hub_socket, next_frame, session_cookie  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


async def close_code(ws, timeout: float = 15) -> int:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1


async def test_log_out_and_ban_reach_sockets_on_every_server(daphne_factory, redis_url):  # noqa: F811
    @sync_to_async
    def setup():
        trade, wilaya = factories.trade(), factories.wilaya()
        amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
        nadia = factories.nadia(pottery_=trade)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
        return room.pk, amina, nadia, session_cookie(amina), session_cookie(amina), session_cookie(nadia)

    room, amina, _nadia, phone, laptop, nadia_cookie = await setup()
    env = {"REDIS_URL": redis_url}
    server_a = await asyncio.to_thread(daphne_factory, env)
    server_b = await asyncio.to_thread(daphne_factory, env)
    on_a, on_b = await hub_socket(server_a, phone), await hub_socket(server_b, phone)
    other = await hub_socket(server_b, laptop)
    moderator = await hub_socket(server_a, nadia_cookie)
    try:
        # A ban issued through server A ends the subscription held on server B.
        await other.send(json.dumps({"type": "subscribe", "room": room}))
        await next_frame(other, "subscribed", room=room)
        await moderator.send(json.dumps({"type": "ban", "room": room, "user": amina.pk, "ref": "b"}))
        await next_frame(moderator, "ack", ref="b")
        removed = await next_frame(other, "removed", room=room)
        assert removed["reason"] == "banned"

        @sync_to_async
        def log_out_phone():
            from django.contrib.auth import logout
            from django.contrib.sessions.backends.db import SessionStore
            from django.test import RequestFactory

            request = RequestFactory().post("/accounts/logout/")
            request.session, request.user = SessionStore(session_key=phone["value"]), amina
            logout(request)

        await log_out_phone()
        assert await close_code(on_a) == 4003
        assert await close_code(on_b) == 4003
        # The other session goes on.
        await other.send(json.dumps({"type": "ping", "ref": "alive"}))
        await next_frame(other, "pong", ref="alive")
    finally:
        for ws in (on_a, on_b, other, moderator):
            await ws.close()
