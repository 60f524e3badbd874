"""How many sockets one member may hold open (hub/limits.py): refused with 4009 past
the limit, counted per member and across processes, given back on close, and the
slots of a process that died lapse."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from hub import limits
from hub.consumers import HubConsumer
from tests import factories
from tests.sockets import clear_presence, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
async def _fresh():
    await clear_presence()


@sync_to_async
def amina_and_yacine():
    _room, amina, yacine = factories.guild_with("amina", "yacine")
    return amina, yacine


async def refused_socket(user) -> int:
    """Open a socket that the hub is expected to refuse; its close code."""
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed with a code the client can read
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    await comm.wait()
    return int(output["code"])


async def test_a_member_holds_at_most_the_configured_number_of_sockets(settings):
    settings.HIRFA_SOCKETS_PER_MEMBER = 2
    amina, yacine = await amina_and_yacine()
    phone, laptop = await open_socket(amina), await open_socket(amina)
    assert await refused_socket(amina) == 4009
    others = await open_socket(yacine)  # per member, not for everyone
    await phone.disconnect()
    tablet = await open_socket(amina)  # a closed socket gives its slot back
    for comm in (laptop, tablet, others):
        await comm.disconnect()
    assert await limits.socket_slots().count(amina.pk) == 0


@pytest.fixture
async def redis_slots(settings, redis_url):
    """Two hub processes' slots on the same Redis (each process has its own client)."""
    from hub.redis_client import redis_client

    settings.REDIS_URL = redis_url
    made = []

    def make(**options) -> limits.RedisSlots:
        slots = limits.RedisSlots(redis_client(), **options)
        made.append(slots)
        return slots

    yield make
    for slots in made:
        await slots._redis.aclose()


async def test_sockets_are_counted_across_processes(redis_slots):
    user_id = 10_000_000 + uuid.uuid4().int % 1_000_000  # nobody else's key
    server_a, server_b = redis_slots(), redis_slots()
    assert await server_a.acquire(user_id, "phone", 2)
    assert await server_b.acquire(user_id, "laptop", 2)
    assert not await server_a.acquire(user_id, "tablet", 2)
    assert not await server_b.acquire(user_id, "tablet", 2)
    assert await server_a.count(user_id) == 2, "a refused socket holds nothing"
    await server_b.release(user_id, "laptop")
    assert await server_a.acquire(user_id, "tablet", 2)
    for server, conn in ((server_a, "phone"), (server_a, "tablet")):
        await server.release(user_id, conn)
    assert await server_b.count(user_id) == 0


async def test_the_slots_of_a_process_that_died_lapse(redis_slots):
    user_id = 10_000_000 + uuid.uuid4().int % 1_000_000
    crashed = redis_slots(ttl=0.5, refresh=60)  # stops refreshing: as if killed
    alive = redis_slots(ttl=0.5, refresh=0.1)
    assert await crashed.acquire(user_id, "old-phone", 2)
    assert await alive.acquire(user_id, "laptop", 2)
    await asyncio.sleep(1.0)
    assert await alive.count(user_id) == 1, "the live process's slot is refreshed, the dead one's lapsed"
    assert await alive.acquire(user_id, "tablet", 2)
    for conn in ("laptop", "tablet"):
        await alive.release(user_id, conn)


async def test_the_refresher_ends_when_cancelled_at_any_turn_of_a_refresh(redis_slots):
    """A cancel that lands as a refresh's write to Redis completes still ends the refresher: on
    Python 3.11 redis-py's `asyncio.wait_for` around the write drops it (bpo-42130), and the
    refresher went on for as long as the process held a socket (`hub.redis_client.raise_if_cancelled`)."""
    user_id = 10_000_000 + uuid.uuid4().int % 1_000_000
    went_on = []
    for turns in range(16):
        slots = redis_slots(refresh=0)  # refreshing without a pause: every turn is in a refresh
        assert await slots.acquire(user_id, "phone", 2)
        refresher = slots._refresher
        assert refresher is not None
        for _ in range(turns):
            await asyncio.sleep(0)
        refresher.cancel()
        await asyncio.wait({refresher}, timeout=5)
        if not refresher.done():
            went_on.append(turns)
        await slots.release(user_id, "phone")  # no socket held: a refresher that went on stops
        await asyncio.wait({refresher}, timeout=5)
        assert refresher.done()
    assert went_on == [], f"the refresher went on after a cancel at turns {went_on}"


async def test_an_unreachable_redis_lets_the_socket_in(settings):
    from hub.redis_client import redis_client

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    slots = limits.RedisSlots(redis_client())
    try:
        assert await slots.acquire(42, "phone", 1)
    finally:
        await slots._redis.aclose()


async def test_a_crowd_opening_at_once_is_counted_over_one_redis_connection(redis_slots):
    """Each opening ran its own transaction on its own connection of the pool: a crowd
    took them all, and with the hub's loop busy the rest of the crowd timed out waiting
    for one and was let in uncounted."""
    first = 20_000_000 + uuid.uuid4().int % 1_000_000
    server = redis_slots()
    pool = server._redis.connection_pool
    crowd = range(first, first + 300)
    assert all(await asyncio.gather(*(server.acquire(user_id, "phone", 1) for user_id in crowd)))
    opened = len(pool._available_connections) + len(pool._in_use_connections)
    assert opened <= 2, f"{opened} connections for one crowd"
    counted = await asyncio.gather(*(server.count(user_id) for user_id in crowd))
    assert counted == [1] * 300
    refused = await asyncio.gather(*(server.acquire(user_id, "laptop", 1) for user_id in crowd))
    assert not any(refused)
    await asyncio.gather(*(server.release(user_id, "phone") for user_id in crowd))


def commands_sent(client) -> list[int]:
    """The number of commands in each pipeline `client` executes from now on."""
    sent: list[int] = []
    make_pipeline = client.pipeline

    def recording(*args, **kwargs):
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a, **k):
            sent.append(len(pipe.command_stack))
            return await execute(*a, **k)

        pipe.execute = counted
        return pipe

    client.pipeline = recording
    return sent


async def test_a_slot_is_taken_in_one_command(redis_slots):
    """A slot was four commands in a MULTI/EXEC transaction: redis-py packs each and reads a
    reply for each twice (QUEUED, then EXEC's), per socket opening. One script does the same
    four steps, as atomically."""
    first = 30_000_000 + uuid.uuid4().int % 1_000_000
    server = redis_slots()
    sent = commands_sent(server._redis)
    crowd = range(first, first + 50)
    assert all(await asyncio.gather(*(server.acquire(user_id, "phone", 2) for user_id in crowd)))
    assert sum(sent) == 50, sent
    assert all(await asyncio.gather(*(server.acquire(user_id, "laptop", 2) for user_id in crowd)))
    assert not any(await asyncio.gather(*(server.acquire(user_id, "tablet", 2) for user_id in crowd)))
    assert await asyncio.gather(*(server.count(user_id) for user_id in crowd)) == [2] * 50
    for conn in ("phone", "laptop"):
        await asyncio.gather(*(server.release(user_id, conn) for user_id in crowd))


async def test_a_crowd_closing_gives_its_slots_back_together(redis_slots):
    """Each slot given back was a command on a connection of its own from the client's pool:
    a crowd closing at once emptied the pool, and the slots of those who waited past the
    timeout stayed taken until they lapsed. Queued like the openings, they go together."""
    first = 32_000_000 + uuid.uuid4().int % 1_000_000
    server = redis_slots()
    crowd = range(first, first + 50)
    assert all(await asyncio.gather(*(server.acquire(user_id, "phone", 2) for user_id in crowd)))
    sent = commands_sent(server._redis)
    await asyncio.gather(*(server.release(user_id, "phone") for user_id in crowd))
    assert sum(sent) == 50 and len(sent) <= 2, sent
    assert await asyncio.gather(*(server.count(user_id) for user_id in crowd)) == [0] * 50
