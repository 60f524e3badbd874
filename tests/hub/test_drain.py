"""A hub that drains (hub/shutdown.py) tells every socket to reconnect elsewhere with 1012,
the ones still opening when it began included: a socket registered for the drain only after
its slot was read (a Redis round trip) was left out of it, and the process's exit dropped it
without a close frame (1006; seen once in the rolling restart's e2e test)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from hub import shutdown
from hub.consumers import HubConsumer
from hub.errors import CloseCode
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def test_a_socket_that_opens_while_the_hub_drains_is_told_to_reconnect(monkeypatch):
    amina = await sync_to_async(factories.amina)()
    monkeypatch.setattr(shutdown, "_draining", True)
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = amina
    connected, _ = await comm.connect()
    assert connected
    out = await comm.receive_output(timeout=5)
    assert out["type"] == "websocket.close" and out.get("code") == int(CloseCode.SERVICE_RESTART), out
    await comm.wait(timeout=5)
    assert shutdown.open_sockets() == 0
