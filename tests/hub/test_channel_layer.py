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
