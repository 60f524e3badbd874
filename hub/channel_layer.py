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
from importlib import metadata
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
#: Messages one `receive_queued` takes at most.
QUEUED_MOST = 64
#: `receive_queued` reads channels_redis's own keys and encoding (its ``prefix``, ``serialize``,
#: ``connection``, ``_receive_index_generator``): written against this release (pyproject.toml
#: pins it); another falls back to one message a read.
_CHANNELS_REDIS_READ = metadata.version("channels-redis").startswith("4.3.")


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

    async def receive_queued(self, channel: str, *, most: int = QUEUED_MOST) -> list[Any]:
        """Every message queued on ``channel`` (up to ``most``), oldest first, in one Redis round
        trip; when none is queued, wait for the next. For a channel with one reader (an SFU
        worker's ``sfu.<id>``), not a process-specific one (``!``).

        channels_redis's ``receive`` takes four round trips per message: a worker whose loop is
        busy (a meeting of a hundred emptying, each departure changing everyone's slots) read its
        leaves about as fast as it handled them, and told each member still unread what his slots
        now carry. Unlike ``receive``, a message popped when the read is cancelled (the worker
        stopping) is lost: the bus is best-effort. While Redis is unreachable, waits and retries.
        """
        assert "!" not in channel and self.require_valid_channel_name(channel)
        if not _CHANNELS_REDIS_READ:
            return [await self.receive(channel)]
        key = self.prefix + channel
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                connection = self.connection(next(self._receive_index_generator))
                popped = await connection.zpopmin(key, most)
                if popped:
                    return [self.deserialize(member) for member, _score in popped]
                waited = await connection.bzpopmin(key, timeout=self.brpop_timeout)
                if waited is not None:
                    return [self.deserialize(waited[1])]
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.info("channel layer unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, RETRY_MAX_SECONDS)
