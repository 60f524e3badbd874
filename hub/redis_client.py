"""The one place that opens Redis clients, so that their settings (address,
timeouts, and later Sentinel) live in one function.

Every Redis user of the hub (the live-event bus, presence, SFU placement)
takes its client here. Async code takes the asyncio client; the synchronous
client is for code that runs outside any event loop (management commands,
background jobs).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# A command that has not answered in this time counts as failed: the bus then
# degrades to the database instead of holding a socket's frame.
COMMAND_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0


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
    if asynchronous:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(url, **options)
    import redis

    return redis.Redis.from_url(url, **options)
