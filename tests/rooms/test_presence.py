"""Presence alone: the stores (this process's, and Redis's across processes) count
connections per member and room, and the announcements coalesce a period's changes
into one `presence_delta` per room."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from hub import realtime
from hub.protocol import Author, PresenceDelta
from rooms import presence
from rooms.presence import DELTA_LIST_MAX, ENTRY_TTL_SECONDS, LocalPresence, PresenceDeltas
from tests.conftest import skip_or_fail

AMINA, YACINE, KARIM = Author(id=1, name="Amina"), Author(id=2, name="Yacine"), Author(id=3, name="Karim")


def a_room() -> int:
    """A room id no other test (nor an earlier run on the same Redis) uses."""
    return random.randrange(10**8, 10**9)


def redis_presence(settings: Any) -> presence.RedisPresence:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: no Redis to keep presence in")
    settings.REDIS_URL = url
    return presence.RedisPresence()


def stop_refreshing(*stores: Any) -> None:
    for found in stores:
        refresher = getattr(found, "_refresher", None)
        if refresher is not None:
            refresher.cancel()


@pytest.fixture(params=["local", "redis"])
async def store(request: Any, settings: Any) -> AsyncIterator[Any]:
    found = LocalPresence() if request.param == "local" else redis_presence(settings)
    yield found
    stop_refreshing(found)


# --- the stores -------------------------------------------------------------------------


async def test_a_member_is_online_from_his_first_connection_to_his_last(store: Any) -> None:
    room = a_room()
    assert await store.add(room, AMINA.id, "phone") is True
    assert await store.add(room, AMINA.id, "laptop") is False  # already online: nothing to announce
    assert await store.online(room) == ([AMINA.id], 1)
    assert await store.remove(room, AMINA.id, "phone") is False
    assert await store.remove(room, AMINA.id, "laptop") is True
    assert await store.online(room) == ([], 0)


async def test_removing_a_connection_the_store_does_not_hold_announces_nothing(store: Any) -> None:
    room = a_room()
    await store.add(room, AMINA.id, "phone")
    assert await store.remove(room, AMINA.id, "tablet") is False
    assert await store.remove(room, YACINE.id, "phone") is False
    assert await store.online(room) == ([AMINA.id], 1)
    await store.remove(room, AMINA.id, "phone")


async def test_the_online_list_pages_and_always_says_how_many(store: Any) -> None:
    room = a_room()
    for user in (KARIM, AMINA, YACINE):
        await store.add(room, user.id, f"c{user.id}")
    first, first_count = await store.online(room, limit=2)
    rest, rest_count = await store.online(room, limit=2, offset=2)
    # Pages follow the store's own order (ids here, arrival on Redis); together they hold everyone once.
    assert (len(first), len(rest), first_count, rest_count) == (2, 1, 3, 3)
    assert sorted(first + rest) == [AMINA.id, YACINE.id, KARIM.id]
    assert await store.online(room, limit=0) == ([], 3)
    for user in (KARIM, AMINA, YACINE):
        await store.remove(room, user.id, f"c{user.id}")


async def test_the_entries_of_a_process_that_stopped_refreshing_lapse(settings: Any, monkeypatch: Any) -> None:
    room = a_room()
    gone, alive = redis_presence(settings), redis_presence(settings)  # two processes
    try:
        await gone.add(room, AMINA.id, "dead-server")
        await alive.add(room, YACINE.id, "live-server")
        lapsed = time.time() + ENTRY_TTL_SECONDS + 1
        # The presence module's clock, moved on (not the process's: Redis's client keeps its own).
        monkeypatch.setattr(presence, "time", SimpleNamespace(time=lambda: lapsed - 1))
        await alive.refresh_all()  # only the living process pushes its entries' expiry back
        monkeypatch.setattr(presence, "time", SimpleNamespace(time=lambda: lapsed))
        assert await alive.online(room) == ([YACINE.id], 1)
        assert await alive.add(room, AMINA.id, "new-server") is True  # back: announced again
        await alive.remove(room, YACINE.id, "live-server")
        await alive.remove(room, AMINA.id, "new-server")
    finally:
        stop_refreshing(gone, alive)


async def test_the_refresher_ends_when_cancelled_at_any_turn_of_a_refresh(settings: Any, monkeypatch: Any) -> None:
    """A cancel that lands as a refresh's write to Redis completes still ends the refresher: on
    Python 3.11 redis-py's `asyncio.wait_for` around the write drops it (bpo-42130), and the
    refresher went on for as long as the process held an entry (`hub.redis_client.raise_if_cancelled`)."""
    monkeypatch.setattr(presence, "REFRESH_SECONDS", 0)  # refreshing without a pause: every turn is in a refresh
    room = a_room()
    went_on = []
    for turns in range(16):
        store = redis_presence(settings)
        try:
            await store.add(room, AMINA.id, "phone")
            refresher = store._refresher
            assert refresher is not None
            for _ in range(turns):
                await asyncio.sleep(0)
            refresher.cancel()
            await asyncio.wait({refresher}, timeout=5)
            if not refresher.done():
                went_on.append(turns)
            await store.remove(room, AMINA.id, "phone")  # no entry held: a refresher that went on stops
            await asyncio.wait({refresher}, timeout=5)
            assert refresher.done()
        finally:
            await store._redis.aclose()
    assert went_on == [], f"the refresher went on after a cancel at turns {went_on}"


# --- the announcements -----------------------------------------------------------------


@pytest.fixture
def published(monkeypatch: Any) -> list[tuple[str, PresenceDelta]]:
    sent: list[tuple[str, PresenceDelta]] = []
    monkeypatch.setattr(realtime, "publish_now", lambda group, frame: sent.append((group, frame)))
    return sent


@pytest.fixture
async def deltas(settings: Any) -> AsyncIterator[PresenceDeltas]:
    settings.REDIS_URL = ""  # the counts come from this process's store
    presence._local._rooms.clear()
    found = PresenceDeltas(asyncio.get_running_loop())
    yield found
    if found._task is not None:
        found._task.cancel()
    presence._local._rooms.clear()


async def test_a_period_of_arrivals_is_one_frame_with_the_online_count(deltas: PresenceDeltas, published: list) -> None:
    room = a_room()
    for user in (AMINA, YACINE):
        await presence._local.add(room, user.id, f"c{user.id}")
        deltas.note(room, user, online=True)
    await deltas.flush()
    ((group, frame),) = published
    assert group == realtime.room_group(room)
    assert (frame.joined, frame.left, frame.online_count, frame.more) == ([AMINA, YACINE], [], 2, False)


async def test_a_reconnect_within_the_period_is_not_announced(deltas: PresenceDeltas, published: list) -> None:
    room = a_room()
    deltas.note(room, AMINA, online=False)  # her phone lost the network…
    deltas.note(room, AMINA, online=True)  # …and came back
    deltas.note(room, YACINE, online=True)  # a visit too short to matter
    deltas.note(room, YACINE, online=False)
    await deltas.flush()
    assert published == []


async def test_a_room_without_a_net_change_costs_nothing_and_others_are_still_told(
    deltas: PresenceDeltas, published: list
) -> None:
    quiet, busy = a_room(), a_room()
    deltas.note(quiet, AMINA, online=False)
    deltas.note(quiet, AMINA, online=True)
    deltas.note(busy, KARIM, online=False)
    await deltas.flush()
    assert [(group, frame.left) for group, frame in published] == [(realtime.room_group(busy), [KARIM])]
    await deltas.flush()  # what was announced is forgotten
    assert len(published) == 1


async def test_a_crowd_is_named_up_to_the_list_limit_and_said_to_be_more(deltas: PresenceDeltas, published: list) -> None:
    room = a_room()
    crowd = [Author(id=100 + i, name=f"Artisan {i}") for i in range(DELTA_LIST_MAX + 5)]
    for author in crowd:
        deltas.note(room, author, online=True)
    await deltas.flush()
    ((_group, frame),) = published
    assert frame.joined == crowd[:DELTA_LIST_MAX] and frame.more is True


async def test_changes_are_announced_once_the_period_is_over(
    deltas: PresenceDeltas, published: list, settings: Any
) -> None:
    settings.HIRFA_PRESENCE_DELTA_SECONDS = 0.01
    room = a_room()
    deltas.note(room, AMINA, online=True)
    deltas.note(room, YACINE, online=True)
    assert published == []  # noted, not published
    for _ in range(500):  # bounded: the period is 10 ms
        if published:
            break
        await asyncio.sleep(0.01)
    assert [frame.joined for _group, frame in published] == [[AMINA, YACINE]]
    assert deltas.frames_published == 1


async def test_a_crowd_joining_a_room_adds_one_command_per_member(settings: Any) -> None:
    """A presence entry was six commands in a MULTI/EXEC transaction per subscription (redis-py
    packs each and reads a reply for each twice); one script does the same, as atomically, and
    still says which connection is a member's first."""
    from tests.hub.test_limits import commands_sent

    store = redis_presence(settings)
    room = a_room()
    sent = commands_sent(store._redis)
    try:
        firsts = await asyncio.gather(*(store.add(room, user, f"c{user}") for user in range(1, 41)))
        assert sum(sent) == 40, sent
        assert firsts == [True] * 40
        again = await asyncio.gather(*(store.add(room, user, f"d{user}") for user in range(1, 41)))
        assert again == [False] * 40
        assert await store.online(room, limit=5) == ([1, 2, 3, 4, 5], 40)
        for user in range(1, 41):
            assert not await store.remove(room, user, f"c{user}")
            assert await store.remove(room, user, f"d{user}")
    finally:
        stop_refreshing(store)


async def test_a_crowd_leaving_a_room_removes_in_one_command_per_member(settings: Any) -> None:
    """A removal was a MULTI/EXEC of three commands, then a fourth round trip when the member's
    last connection went, each on a connection of its own from the pool: a crowd closing at
    once (the end of a national room's evening, a hub's sockets cut) emptied the pool and
    removals failed ("No connection available"), the members left shown online until their
    entries lapsed. Queued like the additions, each removal is one script, as atomic."""
    from tests.hub.test_limits import commands_sent

    store = redis_presence(settings)
    room = a_room()
    try:
        await asyncio.gather(*(store.add(room, user, f"c{user}") for user in range(1, 41)))
        await asyncio.gather(*(store.add(room, user, f"d{user}") for user in range(1, 21)))
        sent = commands_sent(store._redis)
        lasts = await asyncio.gather(*(store.remove(room, user, f"c{user}") for user in range(1, 41)))
        assert sum(sent) == 40, sent
        assert lasts == [False] * 20 + [True] * 20
        assert await store.online(room) == (list(range(1, 21)), 20)
        assert await asyncio.gather(*(store.remove(room, user, f"c{user}") for user in range(1, 41))) == [False] * 40
        assert await asyncio.gather(*(store.remove(room, user, f"d{user}") for user in range(1, 21))) == [True] * 20
        assert await store.online(room) == ([], 0)
    finally:
        stop_refreshing(store)


async def test_a_large_room_is_told_its_count_not_names_and_less_often(
    deltas: PresenceDeltas, published: list, settings: Any
) -> None:
    """In a room with more members online than HIRFA_PRESENCE_LARGE_ROOM, a delta names
    nobody (`more`, the count) and goes out at most every HIRFA_PRESENCE_LARGE_ROOM_SECONDS
    per process: every subscriber of a national room got every process's delta every 2 s,
    each naming up to a hundred members."""
    settings.HIRFA_PRESENCE_LARGE_ROOM = 3
    settings.HIRFA_PRESENCE_LARGE_ROOM_SECONDS = 0.2
    room = a_room()
    crowd = [Author(id=100 + i, name=f"Artisan {i}") for i in range(5)]
    for author in crowd:
        await presence._local.add(room, author.id, f"c{author.id}")
        deltas.note(room, author, online=True)
    await deltas.flush()
    ((_group, frame),) = published
    assert (frame.joined, frame.left, frame.more, frame.online_count) == ([], [], True, 5)
    # Within the large room's period: nothing published; the change is kept, not lost.
    await presence._local.remove(room, crowd[0].id, f"c{crowd[0].id}")
    deltas.note(room, crowd[0], online=False)
    await deltas.flush()
    assert len(published) == 1
    await asyncio.sleep(0.25)
    await deltas.flush()
    assert [(f.joined, f.left, f.more, f.online_count) for _g, f in published[1:]] == [([], [], True, 4)]
    # Back under the size: names again, at once.
    for author in crowd[1:3]:
        await presence._local.remove(room, author.id, f"c{author.id}")
        deltas.note(room, author, online=False)
    await asyncio.sleep(0.25)
    await deltas.flush()
    assert [(f.left, f.more, f.online_count) for _g, f in published[2:]] == [(crowd[1:3], False, 2)]


async def test_changes_are_kept_when_the_count_cannot_be_read_and_announced_once_it_can(
    deltas: PresenceDeltas, published: list, monkeypatch: Any
) -> None:
    """A failed count read (Redis busy or restarting) dropped the period's changes: the
    room was never told those members left, and its count stayed wrong until the next change."""
    room = a_room()
    await presence._local.add(room, AMINA.id, "c1")
    deltas.note(room, AMINA, online=True)
    deltas.note(room, KARIM, online=False)
    real_online = presence._local.online

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("No connection available.")

    monkeypatch.setattr(presence._local, "online", unavailable)
    await deltas.flush()
    assert published == []
    monkeypatch.setattr(presence._local, "online", real_online)
    await deltas.flush()
    assert [(f.joined, f.left, f.online_count) for _g, f in published] == [([AMINA], [KARIM], 1)]
