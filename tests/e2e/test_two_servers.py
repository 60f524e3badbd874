"""Two daphne processes sharing Redis and the database: a member on each
chats with the other and sees the other's presence."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from tests import factories
from tests.servers import daphne_factory, hub_socket, next_frame, session_cookie, ws_subscribe  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def test_members_on_two_servers_chat_and_see_each_other(daphne_factory, redis_url):  # noqa: F811
    @sync_to_async
    def setup():
        room, amina, yacine = factories.guild_with("amina", "yacine")
        return room.pk, amina, yacine, session_cookie(amina), session_cookie(yacine)

    room, amina, yacine, amina_cookie, yacine_cookie = await setup()
    env = {"REDIS_URL": redis_url}
    server_a = await asyncio.to_thread(daphne_factory, env)
    server_b = await asyncio.to_thread(daphne_factory, env)
    a = await hub_socket(server_a, amina_cookie)
    b = await hub_socket(server_b, yacine_cookie)
    try:
        await ws_subscribe(a, room)
        await b.send(json.dumps({"type": "subscribe", "room": room}))
        subscribed = await next_frame(b, "subscribed", room=room)
        assert {u["id"] for u in subscribed["online"]} == {amina.pk, yacine.pk}
        seen = await next_frame(a, "presence", user={"id": yacine.pk, "name": "Yacine Haddad"})
        assert seen["online"] is True

        await a.send(json.dumps({"type": "send", "room": room, "client_id": "a1", "text": "Salam من وهران"}))
        got = await next_frame(b, "message", room=room)
        assert (got["text"], got["author"]["id"]) == ("Salam من وهران", amina.pk)
        await b.send(json.dumps({"type": "send", "room": room, "client_id": "b1", "text": "Bonjour de Tlemcen"}))
        got = await next_frame(a, "message", room=room, id=2)
        assert got["text"] == "Bonjour de Tlemcen"

        await b.close()
        gone = await next_frame(a, "presence", user={"id": yacine.pk, "name": "Yacine Haddad"})
        assert gone["online"] is False
    finally:
        await a.close()
        await b.close()
