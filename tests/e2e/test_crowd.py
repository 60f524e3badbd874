"""A hub in a crowd, for real (`hirfa serve` on PostgreSQL): a socket whose opening waits
on a busy server is let in late, not dropped.

When a thousand members connect at once, a socket's opening (its session read, its
slot) waits behind the others for seconds. daphne's default gave an opening 5 s and
then dropped it; the client came back a second later and queued again, behind the same
crowd, so the crowd grew instead of draining (2,000 members subscribing: 77,000 dropped
openings, more than 400 s; see docs/performance.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from websockets.typing import Origin

from tests import factories
from tests.servers import daphne_factory, session_cookie  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

#: Longer than daphne's default handshake allowance (5 s), shorter than the hub's.
HELD_SECONDS = 7


async def test_a_socket_whose_session_read_waits_past_five_seconds_still_opens(daphne_factory):  # noqa: F811
    from django.db import connection

    if connection.vendor != "postgresql":
        from tests.conftest import skip_or_fail

        skip_or_fail("holds the session table with a PostgreSQL lock")
    amina = await sync_to_async(factories.amina)()
    cookie = await sync_to_async(session_cookie)(amina)
    server = await asyncio.to_thread(daphne_factory, hirfa_serve=True)

    import psycopg

    settings = connection.settings_dict
    # The server's read of the socket's session waits behind this lock, as it waits behind
    # a crowd's: the opening is held without the test touching the server's code.
    blocker = await psycopg.AsyncConnection.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    try:
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE django_session IN ACCESS EXCLUSIVE MODE")
        opening = asyncio.ensure_future(
            websockets.connect(
                server.ws_url,
                additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
                origin=Origin(server.url),
                open_timeout=60,
            )
        )
        await asyncio.sleep(HELD_SECONDS)
        assert not opening.done(), "the opening did not wait for the session"
        await blocker.execute("ROLLBACK")
        ws = await opening
    finally:
        await blocker.close()
    try:
        await ws.send(json.dumps({"type": "hello", "v": 2}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert welcome["type"] == "welcome" and welcome["user"]["id"] == amina.pk
    finally:
        await ws.close()


async def test_an_opening_past_the_admission_limit_is_told_when_to_come_back(daphne_factory):  # noqa: F811
    """Through daphne (which drops an ASGI close's reason), the refused socket's client
    reads 4013 and the retry-after in the close reason; once the opening ahead of it is
    over, it comes in."""
    amina = await sync_to_async(factories.amina)()
    cookie = await sync_to_async(session_cookie)(amina)
    server = await asyncio.to_thread(daphne_factory, {"HIRFA_OPENINGS_AT_ONCE": "1"})

    async def connect() -> websockets.ClientConnection:
        return await websockets.connect(
            server.ws_url,
            additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
            origin=Origin(server.url),
            open_timeout=30,
        )

    first = await connect()  # opening until the first frame after its hello
    second = await connect()
    try:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(second.recv(), 30)
        assert second.close_code == 4013
        assert 0.5 <= json.loads(second.close_reason)["retry_after"] <= 30
        await first.send(json.dumps({"type": "hello", "v": 2}))
        assert json.loads(await asyncio.wait_for(first.recv(), 30))["type"] == "welcome"
        await first.send(json.dumps({"type": "ping", "ref": "p"}))
        assert json.loads(await asyncio.wait_for(first.recv(), 30))["type"] == "pong"
        third = await connect()
        await third.send(json.dumps({"type": "hello", "v": 2}))
        assert json.loads(await asyncio.wait_for(third.recv(), 30))["type"] == "welcome"
        await third.close()
    finally:
        await first.close()
        await second.close()
