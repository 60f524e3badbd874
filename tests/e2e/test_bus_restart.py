"""Redis restarts under two daphne processes: sends keep persisting and
acking from the database, no socket dies, and once the bus is back every
subscriber is told to `resync` and fetches what it missed."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from rooms.models import Message
from tests import factories
from tests.conftest import skip_or_fail
from tests.servers import (  # noqa: F401
    ARTIFACTS,
    daphne_factory,
    free_port,
    hub_socket,
    next_frame,
    session_cookie,
    ws_subscribe,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class OwnRedis:
    """A redis-server of this test's own, which the test may kill and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("redis-server is not installed")
        self.binary = str(binary)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = Path(ARTIFACTS) / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


async def test_a_redis_restart_loses_no_message_and_closes_no_socket(daphne_factory, own_redis):  # noqa: F811
    @sync_to_async
    def setup():
        room, amina, yacine = factories.guild_with("amina", "yacine")
        return room.pk, session_cookie(amina), session_cookie(yacine)

    room, amina_cookie, yacine_cookie = await setup()
    env = {"REDIS_URL": own_redis.url}
    server_a = await asyncio.to_thread(daphne_factory, env)
    server_b = await asyncio.to_thread(daphne_factory, env)
    a = await hub_socket(server_a, amina_cookie)
    b = await hub_socket(server_b, yacine_cookie)
    try:
        await ws_subscribe(a, room)
        await b.send(json.dumps({"type": "subscribe", "room": room}))
        rev = (await next_frame(b, "subscribed", room=room))["rev"]
        await a.send(json.dumps({"type": "send", "room": room, "client_id": "before", "text": "avant"}))
        rev = (await next_frame(b, "message", room=room))["rev"]

        await asyncio.to_thread(own_redis.kill)
        await asyncio.sleep(0.5)
        # The database is the log: the send persists and is acknowledged without the bus.
        await a.send(json.dumps({"type": "send", "room": room, "client_id": "during", "text": "pendant", "ref": "s2"}))
        ack = await next_frame(a, "ack", ref="s2")
        await a.send(json.dumps({"type": "typing", "room": room}))
        await b.send(json.dumps({"type": "typing", "room": room}))
        await b.send(json.dumps({"type": "presence", "room": room, "ref": "p1"}))
        await next_frame(b, "presence_list", ref="p1")

        await asyncio.to_thread(own_redis.start)
        resync = await next_frame(b, "resync", timeout=30)
        assert room in resync["rooms"]
        await b.send(json.dumps({"type": "fetch", "room": room, "since_rev": rev, "ref": "f1"}))
        fetched = await next_frame(b, "messages", ref="f1")
        assert [(m["id"], m["text"]) for m in fetched["messages"]] == [(ack["id"], "pendant")]

        # Live delivery across the two processes is back once both have reconnected
        # (each process comes back on its own jittered schedule; until the sender's
        # has, its events reach the others as a second resync, not live).
        resync_a = await next_frame(a, "resync", timeout=30)
        assert room in resync_a["rooms"]
        await a.send(json.dumps({"type": "send", "room": room, "client_id": "after", "text": "après"}))
        got = await next_frame(b, "message", room=room, timeout=15, client_id="after")
        assert got["text"] == "après"
        assert a.close_code is None and b.close_code is None
        count = await sync_to_async(Message.objects.filter(room_id=room).count)()
        assert count == 3

        # A socket that closes while Redis is away still closes cleanly.
        await asyncio.to_thread(own_redis.kill)
        await a.close()
        await asyncio.sleep(1)
        assert "Exception inside application" not in server_a.log_tail(400)
        assert "Exception inside application" not in server_b.log_tail(400)
    finally:
        await a.close()
        await b.close()
