"""A crowd resuming a room since the same rev is sent one replay read once per process
(rooms/replays.py), and nothing committed meanwhile is lost or let past the access check."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from rooms import replays, selectors, services
from tests import factories
from tests.sockets import expect, open_socket, subscribe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

guild_with_members = sync_to_async(factories.guild_with)
post_as = sync_to_async(factories.message)


@pytest.fixture
def reads(monkeypatch):
    """How many times a replay was read from the database."""
    replays.replays_forget()
    real = selectors.room_changes_unchecked
    counted = {"n": 0}

    def spy(**kwargs):
        counted["n"] += 1
        return real(**kwargs)

    monkeypatch.setattr(selectors, "room_changes_unchecked", spy)
    yield counted
    replays.replays_forget()


async def test_a_crowd_resuming_since_the_same_rev_reads_the_changes_once(reads):
    room, amina, yacine, karim, nadia = await guild_with_members("amina", "yacine", "karim", "nadia")
    for i in range(3):
        await post_as(amina, room, f"message {i}", f"c{i}")
    crowd = [await open_socket(user) for user in (yacine, karim, nadia)]
    try:
        answers = [await subscribe(comm, room.pk, since_rev=0) for comm in crowd]
        assert reads["n"] == 1
        first_replay, first_subscribed = answers[0]
        assert [m["text"] for m in first_replay] == ["message 0", "message 1", "message 2"]
        for replayed, subscribed in answers[1:]:
            assert replayed == first_replay
            assert subscribed["rev"] == first_subscribed["rev"] == 3
        # What comes next still comes live to every one of them.
        await post_as(amina, room, "après", "c9")
        for comm in crowd:
            assert (await expect(comm, "message"))["text"] == "après"
    finally:
        for comm in crowd:
            await comm.disconnect()


async def test_a_change_between_two_resumptions_is_read_again_not_lost(reads):
    room, amina, yacine, karim = await guild_with_members("amina", "yacine", "karim")
    await post_as(amina, room, "avant", "c1")
    y, k = await open_socket(yacine), await open_socket(karim)
    try:
        await subscribe(y, room.pk, since_rev=0)
        await post_as(amina, room, "entre-temps", "c2")
        assert (await expect(y, "message"))["text"] == "entre-temps"
        replayed, subscribed = await subscribe(k, room.pk, since_rev=0)
        assert [m["text"] for m in replayed] == ["avant", "entre-temps"]
        assert subscribed["rev"] == 2 and reads["n"] == 2
    finally:
        await y.disconnect()
        await k.disconnect()


async def test_a_kept_replay_still_checks_each_members_access(reads):
    _room, amina, yacine, karim = await guild_with_members("amina", "yacine", "karim")
    group = await sync_to_async(services.group_create)(user=amina, title="Atelier", member_ids=[yacine.pk])
    await post_as(amina, group, "entre nous", "c1")
    y, k = await open_socket(yacine), await open_socket(karim)
    try:
        replayed, _ = await subscribe(y, group.pk, since_rev=0)
        assert [m["text"] for m in replayed] == ["entre nous"]
        await k.send_json_to({"type": "subscribe", "room": group.pk, "since_rev": 0, "ref": "s"})
        refused = await expect(k, "error", ref="s")
        assert refused["code"] == "not_found"
    finally:
        await y.disconnect()
        await k.disconnect()
