"""Two daphne processes sharing Redis and the database: a member on each
chats with the other and sees the other's presence."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from rooms.models import Room, RoomKind
from tests import factories
from tests.servers import daphne_factory, session_cookie  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def connect(server, cookie):
    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
        origin=server.url,
        open_timeout=10,
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def next_frame(ws, kind, timeout=10, **match):
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame


async def test_members_on_two_servers_chat_and_see_each_other(daphne_factory, redis_url):  # noqa: F811
    @sync_to_async
    def setup():
        trade, wilaya = factories.trade(), factories.wilaya()
        amina = factories.artisan("amina", trades=[trade], wilaya_=wilaya)
        yacine = factories.artisan("yacine", trades=[trade], wilaya_=wilaya)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
        return room.pk, amina, yacine, session_cookie(amina), session_cookie(yacine)

    room, amina, yacine, amina_cookie, yacine_cookie = await setup()
    env = {"REDIS_URL": redis_url}
    server_a = await asyncio.to_thread(daphne_factory, env)
    server_b = await asyncio.to_thread(daphne_factory, env)
    a = await connect(server_a, amina_cookie)
    b = await connect(server_b, yacine_cookie)
    try:
        await a.send(json.dumps({"type": "subscribe", "room": room}))
        await next_frame(a, "subscribed", room=room)
        await b.send(json.dumps({"type": "subscribe", "room": room}))
        subscribed = await next_frame(b, "subscribed", room=room)
        assert {u["id"] for u in subscribed["online"]} == {amina.pk, yacine.pk}
        seen = await next_frame(a, "presence", user={"id": yacine.pk, "name": "Yacine"})
        assert seen["online"] is True

        await a.send(json.dumps({"type": "send", "room": room, "client_id": "a1", "text": "Salam من وهران"}))
        got = await next_frame(b, "message", room=room)
        assert (got["text"], got["author"]["id"]) == ("Salam من وهران", amina.pk)
        await b.send(json.dumps({"type": "send", "room": room, "client_id": "b1", "text": "Bonjour de Tlemcen"}))
        got = await next_frame(a, "message", room=room, id=2)
        assert got["text"] == "Bonjour de Tlemcen"

        await b.close()
        gone = await next_frame(a, "presence", user={"id": yacine.pk, "name": "Yacine"})
        assert gone["online"] is False
    finally:
        await a.close()
        await b.close()
