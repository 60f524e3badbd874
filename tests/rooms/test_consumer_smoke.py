import pytest
from channels.testing import WebsocketCommunicator

from hub.consumers import HubConsumer
from rooms.models import Room, RoomKind
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(user):
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = user
    ok, _ = await comm.connect()
    assert ok
    await comm.send_json_to({"type": "hello", "v": 1, "ref": "h"})
    welcome = await comm.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome"
    return comm


async def test_two_members_chat():
    from asgiref.sync import sync_to_async

    @sync_to_async
    def setup():
        t = factories.trade()
        w = factories.wilaya()
        a = factories.artisan("amina", trades=[t], wilaya_=w)
        b = factories.artisan("yacine", trades=[t], wilaya_=w)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=t)
        return a, b, room

    a, b, room = await setup()
    ca = await connect(a)
    cb = await connect(b)
    for c in (ca, cb):
        await c.send_json_to({"type": "subscribe", "room": room.pk, "ref": "s"})
        while True:
            f = await c.receive_json_from(timeout=5)
            if f["type"] == "subscribed":
                break
    await ca.send_json_to({"type": "send", "room": room.pk, "client_id": "c1", "text": "Salam", "ref": "1"})
    got = []
    while len(got) < 1:
        f = await cb.receive_json_from(timeout=5)
        if f["type"] == "message":
            got.append(f)
    assert got[0]["text"] == "Salam"
    assert got[0]["author"]["name"] == "Amina"
    await ca.disconnect()
    await cb.disconnect()
