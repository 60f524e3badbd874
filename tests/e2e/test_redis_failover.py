"""Redis through Sentinel: the primary is killed during a message run between two hubs;
the Sentinels promote the replica, the hubs' bus, channel layer, presence and the SFU
placement reconnect to it, and not a message is lost or stored twice. The time until
live delivery across the hubs is back is printed (docs/operations.md quotes it)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from rooms.models import Message, Room, RoomKind
from signaling.placement import ALIVE_PREFIX
from tests import factories
from tests.conftest import skip_or_fail
from tests.e2e.test_operations import get
from tests.hubclient import Chatter, Hubs
from tests.parallel import worker_port
from tests.redis_ha import RedisHA
from tests.servers import (  # noqa: F401
    ARTIFACTS,
    ROOT,
    daphne_factory,
    free_port,
    server_env,
    session_cookie,
    test_database_name,
)
from tests.signaling.clients import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

SEND_EVERY = 0.1
BEFORE_KILL = 20
AFTER_KILL = 60


@pytest.fixture
def redis_ha(tmp_path: Path) -> Iterator[RedisHA]:
    problem = RedisHA.missing()
    if problem:
        skip_or_fail(problem)
    ha = RedisHA(workdir=tmp_path / "redis", ports=free_port).start()
    try:
        yield ha
    finally:
        ha.stop()
        (ARTIFACTS / "redis-ha.log").write_text(ha.logs(200))


@pytest.fixture
def sfu_workers_on(redis_ha: RedisHA, transactional_db: None) -> Iterator[Callable[[dict[str, str], int], str]]:
    """Start a ``hirfa sfu`` worker with the given settings; answers its id once registered."""
    import redis

    processes: list[subprocess.Popen[bytes]] = []

    def start(extra: dict[str, str], port_min: int) -> str:
        worker_id = f"failover-{os.getpid()}-{len(processes)}"
        env = server_env(
            test_database_name(),
            {**extra, "HIRFA_SFU_PORT_MIN": str(port_min), "HIRFA_SFU_PORT_MAX": str(port_min + 49)},
        )
        log = ARTIFACTS / f"sfu-{worker_id}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "sfu", "--processes", "1", "--worker-id", worker_id],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        processes.append(process)
        client = redis.Redis(port=redis_ha.primary_port)
        deadline = time.monotonic() + 60
        while not client.exists(ALIVE_PREFIX + worker_id):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        client.close()
        return worker_id

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_killing_the_redis_primary_loses_no_message(daphne_factory, redis_ha, sfu_workers_on):  # noqa: F811
    @sync_to_async
    def setup():
        trade, wilaya = factories.trade(), factories.wilaya()
        amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
        yacine = factories.yacine(pottery_=trade)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
        return room.pk, session_cookie(amina), session_cookie(yacine)

    room, amina_cookie, yacine_cookie = await setup()
    env = {
        **redis_ha.env(),
        "HIRFA_SFU_PLACEMENT": "workers",
        "HIRFA_SFU_HEARTBEAT_SECONDS": "0.5",
        "HIRFA_RATE_BURST": "1000",
        "HIRFA_RATE_PER_SECOND": "100",
    }
    worker = await asyncio.to_thread(sfu_workers_on, env, worker_port(45400))
    first = await asyncio.to_thread(daphne_factory, env)
    second = await asyncio.to_thread(daphne_factory, env)
    sender = Chatter("amina", amina_cookie, room, Hubs([first]))
    receiver = Chatter("yacine", yacine_cookie, room, Hubs([second]))
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(receiver.run())]
    sent: list[str] = []
    try:
        await sender.connected.wait()
        await receiver.connected.wait()

        async def send(count: int) -> None:
            for _ in range(count):
                client_id = f"m{len(sent)}"
                sent.append(client_id)
                await sender.send(client_id, f"{client_id} de Amina")
                await asyncio.sleep(SEND_EVERY)

        await send(BEFORE_KILL)
        await wait_until(lambda: len(receiver.live_at) == BEFORE_KILL, what="live delivery before the kill")
        killed_at = time.monotonic()
        await asyncio.to_thread(redis_ha.kill_primary)
        run = asyncio.create_task(send(AFTER_KILL))
        await asyncio.to_thread(redis_ha.wait_for_failover)
        promoted_at = time.monotonic()
        await run
        await wait_until(lambda: not sender.unacked, timeout=60, what="every send acknowledged")
        after = set(sent[BEFORE_KILL:])
        # Live delivery across the hubs is back: a message sent after the kill arrives live.
        await wait_until(
            lambda: after & set(receiver.live_at), timeout=60, what="live delivery after the failover"
        )
        recovered_at = min(receiver.live_at[c] for c in after & set(receiver.live_at))
        await wait_until(lambda: len(receiver.seen) >= len(sent), timeout=60, what="every message at the receiver")

        stored = await sync_to_async(
            lambda: list(Message.objects.filter(room_id=room).values_list("client_id", flat=True))
        )()
        assert sorted(stored) == sorted(sent), "lost or duplicated in the database"
        assert sorted(receiver.seen.values()) == sorted(sent), "lost or duplicated at the receiver"
        assert sender.errors == [] and receiver.errors == []
        assert sender.closes == [] and receiver.closes == []  # no socket died

        # Presence, the hubs' readiness and the SFU placement live on the new primary.
        await receiver.ws.send(json.dumps({"type": "presence", "room": room, "ref": "p1"}))
        await wait_until(
            lambda: any(f["type"] == "presence_list" and f.get("ref") == "p1" for f in receiver.other_frames),
            what="presence answered",
        )
        for hub in (first, second):
            await wait_until(lambda hub=hub: get(f"{hub.url}/readyz")[0] == 200, what="ready again")
        import redis

        promoted = redis.Redis(port=redis_ha.replica_port)
        await wait_until(lambda: promoted.exists(ALIVE_PREFIX + worker), what="the SFU worker re-registered")
        promoted.close()
        print(
            f"\nRedis failover: {len(sent)} messages ({AFTER_KILL} after the kill), 0 lost, 0 duplicated; "
            f"replica promoted {promoted_at - killed_at:.2f} s after the kill, "
            f"live delivery across hubs back {recovered_at - killed_at:.2f} s after the kill"
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in (sender.ws, receiver.ws):
            if ws is not None:
                await ws.close()
