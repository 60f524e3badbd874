"""Who is online in each room, right across several server processes.

Each open subscription is one entry (room, user, connection) with an expiry
that its process refreshes (one pipeline for all its entries); a server that
dies stops refreshing and its entries lapse. `add` and `remove` answer whether the user's first connection
to the room opened or his last one closed, which is when a presence event is due.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

from django.conf import settings

log = logging.getLogger(__name__)

ENTRY_TTL_SECONDS = 90
REFRESH_SECONDS = 30
ONLINE_LIST_MAX = 100


class PresenceStore(Protocol):
    async def add(self, room_id: int, user_id: int, conn_id: str) -> bool: ...
    async def remove(self, room_id: int, user_id: int, conn_id: str) -> bool: ...
    async def online(self, room_id: int, limit: int = ONLINE_LIST_MAX) -> tuple[list[int], int]:
        """Up to `limit` online user ids, and how many are online in all."""


class LocalPresence:
    def __init__(self) -> None:
        self._rooms: dict[int, dict[int, set[str]]] = {}

    async def add(self, room_id: int, user_id: int, conn_id: str) -> bool:
        conns = self._rooms.setdefault(room_id, {}).setdefault(user_id, set())
        first = not conns
        conns.add(conn_id)
        return first

    async def remove(self, room_id: int, user_id: int, conn_id: str) -> bool:
        users = self._rooms.get(room_id, {})
        conns = users.get(user_id)
        if not conns or conn_id not in conns:
            return False
        conns.discard(conn_id)
        if conns:
            return False
        del users[user_id]
        if not users:
            self._rooms.pop(room_id, None)
        return True

    async def online(self, room_id: int, limit: int = ONLINE_LIST_MAX) -> tuple[list[int], int]:
        users = sorted(self._rooms.get(room_id, {}))
        return users[:limit], len(users)


class RedisPresence:
    """Per room: a sorted set of users; per (room, user): a sorted set of connections; scores are expiries."""

    def __init__(self) -> None:
        from hub.redis_client import redis_client

        self._redis = redis_client()
        self._entries: set[tuple[int, int, str]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @staticmethod
    def _keys(room_id: int, user_id: int) -> tuple[str, str]:
        return f"hirfa:presence:{room_id}", f"hirfa:presence:{room_id}:{user_id}"

    async def add(self, room_id: int, user_id: int, conn_id: str) -> bool:
        room_key, user_key = self._keys(room_id, user_id)
        now = time.time()
        expiry = now + ENTRY_TTL_SECONDS
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(user_key, "-inf", now)
            pipe.zadd(user_key, {conn_id: expiry})
            pipe.zcard(user_key)
            pipe.expire(user_key, ENTRY_TTL_SECONDS * 2)
            pipe.zadd(room_key, {str(user_id): expiry})
            pipe.expire(room_key, ENTRY_TTL_SECONDS * 2)
            result = await pipe.execute()
        self._entries.add((room_id, user_id, conn_id))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return int(result[2]) == 1

    async def remove(self, room_id: int, user_id: int, conn_id: str) -> bool:
        room_key, user_key = self._keys(room_id, user_id)
        now = time.time()
        self._entries.discard((room_id, user_id, conn_id))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(user_key, conn_id)
            pipe.zremrangebyscore(user_key, "-inf", now)
            pipe.zcard(user_key)
            removed, _expired, left = await pipe.execute()
        if removed and int(left) == 0:
            await self._redis.zrem(room_key, str(user_id))
            return True
        return False

    async def _refresh_forever(self) -> None:
        while self._entries:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh_all()
            except Exception:
                log.warning("presence refresh failed", exc_info=True)

    async def refresh_all(self) -> None:
        """Push back the expiry of every entry of this process, 500 to a pipeline."""
        expiry = time.time() + ENTRY_TTL_SECONDS
        entries = list(self._entries)
        for start in range(0, len(entries), 500):
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id, user_id, conn_id in entries[start : start + 500]:
                    room_key, user_key = self._keys(room_id, user_id)
                    pipe.zadd(user_key, {conn_id: expiry})
                    pipe.expire(user_key, ENTRY_TTL_SECONDS * 2)
                    pipe.zadd(room_key, {str(user_id): expiry})
                    pipe.expire(room_key, ENTRY_TTL_SECONDS * 2)
                await pipe.execute()

    async def online(self, room_id: int, limit: int = ONLINE_LIST_MAX) -> tuple[list[int], int]:
        room_key, _user_key = self._keys(room_id, 0)
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(room_key, now, "+inf", start=0, num=limit)
            pipe.zcount(room_key, now, "+inf")
            members, count = await pipe.execute()
        return sorted(int(m) for m in members), int(count)


_stores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceStore]" = (
    weakref.WeakKeyDictionary()
)
_local = LocalPresence()


def presence_store() -> PresenceStore:
    """The store for the running event loop (Redis when configured, else this process)."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return _local
    loop = asyncio.get_running_loop()
    store = _stores.get(loop)
    if store is None:
        store = RedisPresence()
        _stores[loop] = store
    return store
