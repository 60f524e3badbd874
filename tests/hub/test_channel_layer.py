"""The production channel layer on a real Redis: an idle consumer survives
longer than redis-py's 5 s default socket timeout (channels_redis issue 422)."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings


@pytest.fixture
def redis_layer(redis_url):
    from channels_redis.core import RedisChannelLayer

    if settings.REDIS_URL:
        config = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    else:  # the embedded default has no Redis layer: build the production one by hand
        config = {"hosts": [{"address": redis_url, "socket_timeout": None}]}
    assert all(h.get("socket_timeout", "unset") is None for h in config["hosts"])
    return RedisChannelLayer(**config)


async def test_an_idle_consumer_still_receives_after_seven_seconds(redis_layer):
    channel = await redis_layer.new_channel()
    await redis_layer.group_add("user.idle-test", channel)
    waiting = asyncio.ensure_future(redis_layer.receive(channel))
    await asyncio.sleep(7)
    assert not waiting.done(), "the idle receive died: socket timeout not disabled?"
    await redis_layer.group_send("user.idle-test", {"type": "wake.up", "n": 1})
    message = await asyncio.wait_for(waiting, timeout=5)
    assert message == {"type": "wake.up", "n": 1}
    await redis_layer.group_discard("user.idle-test", channel)
    await redis_layer.flush()


async def test_a_crowd_of_sends_from_one_loop_waits_for_connections_instead_of_failing(redis_url):
    """An SFU worker answering 100 participants at once (a meeting_reception each) sent through more
    than the pool's 100 connections: redis-py refused the rest (MaxConnectionsError) and those
    participants never heard of their slots (bench/meeting_adapt.py's assembly at 100)."""
    from hub.channel_layer import ResilientRedisChannelLayer

    layer = ResilientRedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}], capacity=1000)
    channels = [await layer.new_channel() for _ in range(300)]
    try:
        await asyncio.gather(*(layer.send(c, {"type": "sfu.event", "n": i}) for i, c in enumerate(channels)))
        received = await asyncio.gather(*(layer.receive(c) for c in channels[:3]))
        assert [m["n"] for m in received] == [0, 1, 2]
    finally:
        await layer.flush()


async def test_a_reader_takes_every_message_queued_on_its_channel_in_one_read(redis_url):
    """An SFU worker read its channel one message a read (four Redis round trips each): when a
    meeting of a hundred emptied, its leaves came in about as fast as the worker handled the
    departures, and each departure sent a reception to every member whose leave was not read
    yet (thousands of ``ChannelFull``, docs/performance.md). One read takes all that is queued,
    in the order sent."""
    from hub.channel_layer import ResilientRedisChannelLayer

    layer = ResilientRedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}], capacity=1000)
    channel = "sfu.batch-test"
    try:
        for n in range(5):
            await layer.send(channel, {"type": "sfu.command", "n": n})
        assert [message["n"] for message in await layer.receive_queued(channel, most=3)] == [0, 1, 2]
        assert [message["n"] for message in await layer.receive_queued(channel)] == [3, 4]
        # Nothing queued: the read waits for the next message.
        waiting = asyncio.ensure_future(layer.receive_queued(channel))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await layer.send(channel, {"type": "sfu.command", "n": 5})
        assert [message["n"] for message in await asyncio.wait_for(waiting, timeout=5)] == [5]
    finally:
        await layer.flush()
