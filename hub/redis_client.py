"""The one place that opens Redis clients, so that their settings (address,
timeouts, Sentinel) live in one function.

Every Redis user of the hub (the live-event bus, presence, SFU placement, the
cache) takes its client here (the channel layer is configured alike in hub/settings.py). Async code takes the asyncio client; the synchronous
client is for code that runs outside any event loop (management commands,
background jobs).

With ``REDIS_SENTINELS`` (``host:port,host:port,...``) and
``REDIS_SENTINEL_MASTER`` (the name the Sentinels monitor), every connection
asks the Sentinels for the current primary: when the primary dies and a
replica is promoted, the connections that break are opened again to the new
one (the bus, the channel layer and placement already retry with backoff).
``REDIS_URL`` then gives only the database number and the password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

# A command that has not answered in this time counts as failed: the bus then
# degrades to the database instead of holding a socket's frame.
COMMAND_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
# Connections of one asyncio client. redis-py's pool refuses a command at once when its
# 100 are busy (MaxConnectionsError): a crowd of sockets opening together (slots,
# presence) made thousands of refusals. This pool makes a command wait for a connection,
# a command timeout at most, instead.
ASYNC_POOL_MAX = 64


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` in a task that was asked to cancel but goes on: what it
    awaited dropped the cancel. On Python 3.11 ``asyncio.wait_for`` returns the result of
    a future that finished just as the cancel came, and drops the cancel (bpo-42130,
    mended in 3.12); redis-py wraps each write of a client with a socket timeout in it
    (every client of `redis_client` but a blocking reader). A task that loops over Redis
    commands calls this at the top of each round: cancelled as a write completed, it went
    on instead, and a loop closing (a test's end, a worker stopping) waited for it forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def redis_client(*, asynchronous: bool = True, blocking_reads: bool = False) -> Any:
    """A new client on ``settings.REDIS_URL``.

    `blocking_reads`: the client waits for pushed data (a pub/sub
    subscription) and must have no read timeout (redis-py ≥ 5 would otherwise
    end an idle subscription); a health check every 30 s notices a dead
    server instead. Raises ``ImproperlyConfigured`` without ``REDIS_URL``.
    """
    from django.core.exceptions import ImproperlyConfigured

    url = getattr(settings, "REDIS_URL", "")
    if not url:
        raise ImproperlyConfigured("REDIS_URL is not set")
    timeout = float(getattr(settings, "HIRFA_REDIS_TIMEOUT_SECONDS", COMMAND_TIMEOUT_SECONDS))
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": None if blocking_reads else timeout,
        "health_check_interval": 30 if blocking_reads else 0,
    }
    sentinels = sentinel_addresses()
    if sentinels:
        return _sentinel(asynchronous=asynchronous).master_for(
            settings.REDIS_SENTINEL_MASTER, **_url_options(url), **options
        )
    if asynchronous:
        import redis.asyncio as aioredis

        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=ASYNC_POOL_MAX, timeout=timeout, **options
        )
        return aioredis.Redis.from_pool(pool)
    import redis

    return redis.Redis.from_url(url, **options)


def sentinel_addresses() -> list[tuple[str, int]]:
    """The Sentinels of ``settings.REDIS_SENTINELS``, or [] when Redis is reached directly."""
    return list(getattr(settings, "REDIS_SENTINELS", ()) or ())


def _url_options(url: str) -> dict[str, Any]:
    """The database and credentials a Redis URL names (its host is the Sentinels' to choose)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    options: dict[str, Any] = {"db": int((parts.path or "/0").strip("/") or 0)}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    return options


def _sentinel(*, asynchronous: bool) -> Any:
    # Sentinels answer at once or not at all: a dead one is skipped after a second.
    sentinel_options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if asynchronous:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        return AsyncSentinel(sentinel_addresses(), sentinel_kwargs=sentinel_options)
    from redis.sentinel import Sentinel

    return Sentinel(sentinel_addresses(), sentinel_kwargs=sentinel_options)


class _CacheClient(RedisCacheClient):
    """Django's Redis cache client, its connection taken from `redis_client` (Sentinel-aware)."""

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        client = getattr(self, "_hirfa_client", None)
        if client is None:
            client = self._hirfa_client = redis_client(asynchronous=False)
        return client


class RedisCache(DjangoRedisCache):
    """The cache backend of the hub (settings.CACHES): Django's, through `redis_client`."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _CacheClient


class PipelineBatch:
    """The commands of many callers, sent together: one pipeline per round trip.

    A crowd of sockets opening at once each ran its own short transaction (its slot,
    its presence), each on its own connection of the pool: with the loop busy, the
    pool's 64 connections were all waiting for answers and the rest of the crowd timed
    out waiting for a connection (1,463 sockets of 2,000 let in uncounted). Queued
    here, the commands of every caller that arrives while a round trip is on its way
    go in the next one, on one connection.

    Each round trip is one transaction (MULTI/EXEC), so each caller's commands still run
    together, with no other client's command between two of them; with ``transaction=False``
    it is a plain pipeline, for callers that each send one command (a script runs whole).
    """

    MAX_CALLERS = 500

    def __init__(self, client: Any, *, transaction: bool = True) -> None:
        self._client = client
        self._transaction = transaction
        self._queue: list[tuple[Callable[[Any], object], asyncio.Future[list[Any]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, commands: Callable[[Any], object]) -> list[Any]:
        """Queue what `commands(pipe)` adds to a pipeline; its results, in order.

        Raises what Redis raised for one of them, or the round trip's failure.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((commands, done))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._send(), name="hirfa-redis-batch")
        return await done

    async def _send(self) -> None:
        while self._queue:
            batch = self._queue[: self.MAX_CALLERS]
            del self._queue[: self.MAX_CALLERS]
            spans: list[tuple[int, int]] = []
            try:
                async with self._client.pipeline(transaction=self._transaction) as pipe:
                    for commands, _done in batch:
                        start = len(pipe)
                        commands(pipe)
                        spans.append((start, len(pipe)))
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                for _commands, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (start, end), (_commands, done) in zip(spans, batch, strict=True):
                if done.done():
                    continue  # the caller gave up (its socket closed)
                mine = results[start:end]
                failed = next((r for r in mine if isinstance(r, Exception)), None)
                if failed is not None:
                    done.set_exception(failed)
                else:
                    done.set_result(mine)
