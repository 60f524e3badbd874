"""The Redis channel layer, made to outlive a Redis restart.

Every Channels consumer reads its own channel in a loop; with the stock
layer a Redis restart raises out of that read and daphne closes the socket
with 1011. The meeting signaling needs the layer (SFU workers answer on the
socket's channel), chat does not: a socket must go on serving from the
database while Redis is away, and pick its channel up again when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
#: Connections of one loop's pool, and how long a command waits for one of them.
POOL_MAX = 100
POOL_WAIT_SECONDS = 10.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        """A pool whose commands wait for a free connection instead of failing.

        channels_redis's pool refuses a command at once while its 100 connections are busy
        (MaxConnectionsError): an SFU worker answering a hundred participants together (a
        ``meeting_reception`` each) lost the replies beyond the hundredth. Sentinel hosts keep
        channels_redis's own pool.
        """
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)
        address = host.pop("address")
        return BlockingConnectionPool.from_url(address, max_connections=POOL_MAX, timeout=POOL_WAIT_SECONDS, **host)

    async def receive(self, channel: str) -> Any:
        """The next message of `channel`; while Redis is unreachable, wait and retry (with jitter).

        Messages sent to the channel while Redis was away are lost, as the
        layer's capacity and expiry already allow: callers resynchronise.
        """
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                return await super().receive(channel)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.info("channel layer unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, RETRY_MAX_SECONDS)
