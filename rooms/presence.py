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
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings

if TYPE_CHECKING:
    from hub.protocol import Author

log = logging.getLogger(__name__)

ENTRY_TTL_SECONDS = 90
REFRESH_SECONDS = 30
ONLINE_LIST_MAX = 100


class PresenceStore(Protocol):
    async def add(self, room_id: int, user_id: int, conn_id: str) -> bool: ...
    async def remove(self, room_id: int, user_id: int, conn_id: str) -> bool: ...
    async def online(
        self, room_id: int, limit: int = ONLINE_LIST_MAX, offset: int = 0
    ) -> tuple[list[int], int]:
        """Up to `limit` online user ids from `offset` on, and how many are online in all."""


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

    async def online(
        self, room_id: int, limit: int = ONLINE_LIST_MAX, offset: int = 0
    ) -> tuple[list[int], int]:
        users = sorted(self._rooms.get(room_id, {}))
        return users[offset : offset + limit], len(users)


#: A connection added (KEYS: the member's connections in the room, the room's members; ARGV:
#: now, the entry's expiry, the connection, the keys' lifetime, the member); the member's
#: live connections in the room, this one included (1: he just came online). One script, not
#: six commands in a MULTI/EXEC: redis-py packs each and reads each reply twice, per join.
_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local connections = redis.call('ZCARD', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return connections
"""


#: A connection removed (KEYS: the member's connections in the room, the room's members; ARGV:
#: now, the connection, the member): 1 when it was his last live one there (he went offline,
#: and leaves the room's set), else 0. One script queued with the others, where a MULTI/EXEC
#: and a fourth command each took a connection of the pool: a crowd closing at once emptied it.
_REMOVE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return 1
end
return 0
"""


class RedisPresence:
    """Per room: a sorted set of users; per (room, user): a sorted set of connections; scores are expiries."""

    def __init__(self) -> None:
        from hub.redis_client import PipelineBatch, redis_client

        self._redis = redis_client()
        # A crowd subscribing at once: its entries go to Redis together (hub/redis_client.py).
        self._joins = PipelineBatch(self._redis, transaction=False)  # one script per join or leave
        self._entries: set[tuple[int, int, str]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @staticmethod
    def _keys(room_id: int, user_id: int) -> tuple[str, str]:
        return f"hirfa:presence:{room_id}", f"hirfa:presence:{room_id}:{user_id}"

    async def add(self, room_id: int, user_id: int, conn_id: str) -> bool:
        room_key, user_key = self._keys(room_id, user_id)
        now = time.time()
        expiry = now + ENTRY_TTL_SECONDS

        def commands(pipe: Any) -> None:
            pipe.eval(_ADD, 2, user_key, room_key, now, expiry, conn_id, ENTRY_TTL_SECONDS * 2, str(user_id))

        (connections,) = await self._joins.run(commands)
        self._entries.add((room_id, user_id, conn_id))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return int(connections) == 1

    async def remove(self, room_id: int, user_id: int, conn_id: str) -> bool:
        room_key, user_key = self._keys(room_id, user_id)
        now = time.time()
        self._entries.discard((room_id, user_id, conn_id))

        def commands(pipe: Any) -> None:
            pipe.eval(_REMOVE, 2, user_key, room_key, now, conn_id, str(user_id))

        (last,) = await self._joins.run(commands)
        return int(last) == 1

    async def _refresh_forever(self) -> None:
        from hub.redis_client import raise_if_cancelled

        while self._entries:
            raise_if_cancelled()  # a refresh's write may have dropped the cancel that ends this task
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

    async def online(
        self, room_id: int, limit: int = ONLINE_LIST_MAX, offset: int = 0
    ) -> tuple[list[int], int]:
        room_key, _user_key = self._keys(room_id, 0)
        now = time.time()
        if limit <= 0:
            return [], int(await self._redis.zcount(room_key, now, "+inf"))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(room_key, now, "+inf", start=offset, num=limit)
            pipe.zcount(room_key, now, "+inf")
            members, count = await pipe.execute()
        return sorted(int(m) for m in members), int(count)


_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceStore] = (
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


# --- coalesced announcements ----------------------------------------------------------

DELTA_SECONDS_DEFAULT = 2.0
# A delta lists at most this many who came and who went; beyond, it says `more`
# and a member who wants the names asks for them (`presence` with an offset).
DELTA_LIST_MAX = 50
# A room with more members online than this is large: its deltas name nobody (`more`, the
# count) and go out at most every LARGE_ROOM_SECONDS per process. Every subscriber gets
# every process's delta: ten thousand members subscribing over two processes were sent
# 11-25 deltas each, each with up to a hundred names nobody reads in a room that size.
LARGE_ROOM_ONLINE_DEFAULT = 200
LARGE_ROOM_SECONDS_DEFAULT = 10.0


class PresenceDeltas:
    """Presence changes of this process's sockets, announced per room at most once per period.

    A member's first socket in a room opening, or his last closing, is noted
    here instead of being published at once. Every period, each room with
    changes gets one `presence_delta` frame: who came, who went, and how many
    are online. A change undone within the period (a reconnect) is not
    announced at all, so a reconnect storm costs nothing here, and a thousand
    members arriving together cost one frame per period, not a thousand.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # room → user → (author, was online before the period, is online now)
        self._pending: dict[int, dict[int, tuple[Author, bool, bool]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.frames_published = 0
        # Large rooms (by loop time): not announced again before then.
        self._large_until: dict[int, float] = {}

    def note(self, room_id: int, author: Author, *, online: bool) -> None:
        """Record that `author` came online (or went offline) in `room_id`."""
        users = self._pending.setdefault(room_id, {})
        user_id = int(author.id)
        before = users[user_id][1] if user_id in users else not online
        users[user_id] = (author, before, online)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._flush_later(), name="hirfa-presence-deltas")

    async def _flush_later(self) -> None:
        period = float(getattr(settings, "HIRFA_PRESENCE_DELTA_SECONDS", DELTA_SECONDS_DEFAULT))
        while self._pending:
            await asyncio.sleep(period)
            try:
                await self.flush()
            except Exception:
                log.warning("presence deltas failed", exc_info=True)

    async def flush(self) -> None:
        """Publish one `presence_delta` per room with a net change (and forget the rest)."""
        from hub import protocol, realtime

        large_online = int(getattr(settings, "HIRFA_PRESENCE_LARGE_ROOM", LARGE_ROOM_ONLINE_DEFAULT))
        large_seconds = float(getattr(settings, "HIRFA_PRESENCE_LARGE_ROOM_SECONDS", LARGE_ROOM_SECONDS_DEFAULT))
        pending, self._pending = self._pending, {}
        for room_id, users in pending.items():
            joined = [a for a, before, now in users.values() if now and not before]
            left = [a for a, before, now in users.values() if before and not now]
            if not joined and not left:
                continue
            if self._large_until.get(room_id, 0.0) > self.loop.time():
                self._hold(room_id, users)  # a large room announced lately: its count, later
                continue
            try:
                _ids, count = await presence_store().online(room_id, limit=0)
            except Exception as exc:
                log.info("presence count unavailable for room %s (%s): announced later", room_id, exc)
                self._hold(room_id, users)
                continue
            if count > large_online:
                self._large_until[room_id] = self.loop.time() + large_seconds
                frame = protocol.PresenceDelta(room=room_id, joined=[], left=[], more=True, online_count=count)
            else:
                self._large_until.pop(room_id, None)
                frame = protocol.PresenceDelta(
                    room=room_id,
                    joined=joined[:DELTA_LIST_MAX],  # type: ignore[arg-type]
                    left=left[:DELTA_LIST_MAX],  # type: ignore[arg-type]
                    more=len(joined) > DELTA_LIST_MAX or len(left) > DELTA_LIST_MAX,
                    online_count=count,
                )
            realtime.publish_now(realtime.room_group(room_id), frame)
            self.frames_published += 1

    def _hold(self, room_id: int, users: dict[int, tuple[Author, bool, bool]]) -> None:
        """Keep `users`' changes of `room_id` for a later period, under those noted since."""
        since = self._pending.setdefault(room_id, {})
        for user_id, (author, before, now) in users.items():
            if user_id in since:
                later_author, _before, later_now = since[user_id]
                since[user_id] = (later_author, before, later_now)
            else:
                since[user_id] = (author, before, now)


_deltas: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceDeltas] = (
    weakref.WeakKeyDictionary()
)


def presence_deltas() -> PresenceDeltas:
    """The presence announcements of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _deltas.get(loop)
    if found is None:
        found = _deltas[loop] = PresenceDeltas(loop)
    return found
