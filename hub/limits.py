"""How many sockets one member holds open, counted across every hub process.

Each open socket is one entry (member, connection) with an expiry that its
process refreshes for all its entries at once; a process that dies stops
refreshing and its entries lapse, so a crash never locks a member out for long.
`acquire` answers whether the socket fits under ``HIRFA_SOCKETS_PER_MEMBER``.

Without Redis (the embedded default) the count is this process's. With Redis
unreachable the socket is let in (and logged): the limit protects the hub's
resources, it must not lock everyone out when the bus degrades.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from django.conf import settings

log = logging.getLogger(__name__)

#: An entry not refreshed for this long belongs to a process that died.
ENTRY_TTL_SECONDS = 180.0
REFRESH_SECONDS = 60.0


class SocketSlots(Protocol):
    async def acquire(self, user_id: int, conn_id: str, limit: int) -> bool:
        """Hold a slot for the socket; False (and nothing held) when `limit` are open already."""

    async def release(self, user_id: int, conn_id: str) -> None:
        """Give the socket's slot back (idempotent)."""

    async def count(self, user_id: int) -> int:
        """Slots the member holds now."""


class LocalSlots:
    """The slots of this process (no Redis)."""

    def __init__(self) -> None:
        self._held: dict[int, set[str]] = {}

    async def acquire(self, user_id: int, conn_id: str, limit: int) -> bool:
        held = self._held.setdefault(user_id, set())
        if conn_id not in held and len(held) >= limit:
            if not held:
                del self._held[user_id]
            return False
        held.add(conn_id)
        return True

    async def release(self, user_id: int, conn_id: str) -> None:
        held = self._held.get(user_id)
        if held is not None:
            held.discard(conn_id)
            if not held:
                del self._held[user_id]

    async def count(self, user_id: int) -> int:
        return len(self._held.get(user_id, ()))

    def clear(self) -> None:
        self._held.clear()


#: A slot taken (KEYS[1]: the member's set; ARGV: now, the entry's expiry, the connection,
#: the key's lifetime); the member's live connections, this one included. Add first, then
#: count: two sockets opening at once on two processes cannot both see room for themselves
#: (each counts the other). One script, not four commands in a MULTI/EXEC: redis-py packs
#: each command and reads each reply twice, per socket opening.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local held = redis.call('ZCARD', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return held
"""


class RedisSlots:
    """Per member, a sorted set ``hirfa:sockets:<id>`` of his connections scored by expiry."""

    def __init__(self, client: Any, *, ttl: float = ENTRY_TTL_SECONDS, refresh: float = REFRESH_SECONDS) -> None:
        from hub.redis_client import PipelineBatch

        self._redis = client
        # One script per opening (`_ACQUIRE`), one command per release: no transaction around the batch.
        self._openings = PipelineBatch(client, transaction=False)
        self._unreachable = _Unreachable()
        self._ttl = ttl
        self._refresh = refresh
        self._entries: set[tuple[int, str]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @staticmethod
    def key(user_id: int) -> str:
        return f"hirfa:sockets:{user_id}"

    async def acquire(self, user_id: int, conn_id: str, limit: int) -> bool:
        key, now = self.key(user_id), time.time()

        def commands(pipe: Any) -> None:
            pipe.eval(_ACQUIRE, 1, key, now, now + self._ttl, conn_id, int(self._ttl * 2) + 1)

        try:
            (held,) = await self._openings.run(commands)
            if int(held) > limit:
                await self._redis.zrem(key, conn_id)
                return False
        except Exception as exc:
            self._unreachable.note(user_id, exc)
            return True
        self._entries.add((user_id, conn_id))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return True

    async def release(self, user_id: int, conn_id: str) -> None:
        self._entries.discard((user_id, conn_id))
        key = self.key(user_id)
        # With the openings' commands: a crowd closing at once takes one connection, not each one.
        await self._openings.run(lambda pipe: pipe.zrem(key, conn_id))

    async def count(self, user_id: int) -> int:
        return int(await self._redis.zcount(self.key(user_id), time.time(), "+inf"))

    async def _refresh_forever(self) -> None:
        from hub.redis_client import raise_if_cancelled

        while self._entries:
            raise_if_cancelled()  # a refresh's write may have dropped the cancel that ends this task
            await asyncio.sleep(self._refresh)
            expiry = time.time() + self._ttl
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for user_id, conn_id in list(self._entries):
                        pipe.zadd(self.key(user_id), {conn_id: expiry})
                        pipe.expire(self.key(user_id), int(self._ttl * 2) + 1)
                    await pipe.execute()
            except Exception:
                log.warning("refreshing socket slots failed", exc_info=True)


class _Unreachable:
    """Sockets let in uncounted, logged at most once every 10 s with how many: in a crowd a
    traceback per socket cost the hub more than the sockets themselves."""

    EVERY_SECONDS = 10.0

    def __init__(self) -> None:
        self.count = 0
        self.logged_at = 0.0

    def note(self, user_id: int, exc: Exception) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= self.EVERY_SECONDS:
            log.warning(
                "socket slots unreachable (%r); %s let in uncounted, %s in all since the last line",
                exc, user_id, self.count,
            )
            self.logged_at, self.count = now, 0


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SocketSlots] = weakref.WeakKeyDictionary()
_local = LocalSlots()


def socket_slots() -> SocketSlots:
    """The slots of the running event loop (Redis when configured, else this process)."""
    if not getattr(settings, "REDIS_URL", ""):
        return _local
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        from hub.redis_client import redis_client

        slots = RedisSlots(redis_client())
        _slots[loop] = slots
    return slots


def local_slots_clear() -> None:
    """Forget this process's slots (tests: each starts with none held)."""
    _local.clear()
