"""The hub socket through Channels' communicator: rooms, resume and bad input.

Runs on whatever bus the settings choose: the in-process one by default, Redis
pub/sub when REDIS_URL is set (as in CI)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from hub.consumers import HubConsumer
from rooms import services
from tests import factories
from tests.sockets import expect, nothing_more, open_socket, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


guild_with_members = sync_to_async(factories.guild_with)
post_as = sync_to_async(factories.message)


async def test_anonymous_socket_is_closed_with_4003():
    from django.contrib.auth.models import AnonymousUser

    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = AnonymousUser()
    await comm.connect()
    out = await comm.receive_output(timeout=5)
    assert out == {"type": "websocket.close", "code": 4003}


async def test_frames_before_hello_are_refused_and_hello_version_is_checked():
    room, amina = await guild_with_members("amina")
    comm = await open_socket(amina, hello=False)
    await comm.send_json_to({"type": "subscribe", "room": room.pk, "ref": "early"})
    err = await expect(comm, "error")
    assert (err["code"], err["ref"]) == ("handshake_required", "early")
    await comm.send_json_to({"type": "hello", "v": 99})
    err = await expect(comm, "error")
    assert err["code"] == "unsupported_version"
    out = await comm.receive_output(timeout=5)
    assert out == {"type": "websocket.close", "code": 4002}


async def test_live_message_reaches_every_subscriber_with_its_ack():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    a, y = await open_socket(amina), await open_socket(yacine)
    await subscribe(a, room.pk)
    await subscribe(y, room.pk)
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": "k1", "text": "Salam", "ref": "s1"})
    own = {}
    while len(own) < 2:  # the ack and the sender's own copy, in either order
        frame = await a.receive_json_from(timeout=5)
        if frame["type"] in ("ack", "message"):
            own[frame["type"]] = frame
    got = await expect(y, "message")
    assert (got["id"], got["text"], got["author"]["name"]) == (own["ack"]["id"], "Salam", "Amina Belkacem")
    assert own["message"]["client_id"] == "k1" and own["ack"]["ref"] == "s1"
    await a.disconnect()
    await y.disconnect()


async def test_resume_replays_exactly_the_missed_messages_in_order():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    y = await open_socket(yacine)
    _, subscribed = await subscribe(y, room.pk)
    last_rev = subscribed["rev"]
    await post_as(amina, room, "before", "before")
    last_rev = (await expect(y, "message"))["rev"]
    await y.disconnect()

    services.send_buckets.reset()
    for i in range(50):
        await post_as(amina, room, f"missed {i}", f"m{i}")
        services.send_buckets.reset()

    y = await open_socket(yacine)
    replayed, subscribed = await subscribe(y, room.pk, since_rev=last_rev)
    assert [m["text"] for m in replayed] == [f"missed {i}" for i in range(50)]
    assert [m["id"] for m in replayed] == list(range(2, 52))
    assert subscribed["rev"] == replayed[-1]["rev"] and not subscribed["more"]
    # Live delivery goes on after the replay, with nothing replayed twice.
    await post_as(amina, room, "live again", "live")
    live = await expect(y, "message")
    assert live["text"] == "live again" and live["rev"] == subscribed["rev"] + 1
    await nothing_more(y, kind="message")
    await y.disconnect()


async def test_edits_and_deletions_made_while_away_are_replayed():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    await post_as(amina, room, "first", "f")
    y = await open_socket(yacine)
    _, subscribed = await subscribe(y, room.pk)
    await y.disconnect()
    await sync_to_async(services.message_edit)(user=amina, room_id=room.pk, seq=1, text="first, edited")
    y = await open_socket(yacine)
    replayed, _ = await subscribe(y, room.pk, since_rev=subscribed["rev"])
    assert [(m["id"], m["text"]) for m in replayed] == [(1, "first, edited")]
    await y.disconnect()


async def test_gap_is_filled_with_fetch():
    room, amina = await guild_with_members("amina")
    for i in range(3):
        await post_as(amina, room, f"m{i}", f"c{i}")
    a = await open_socket(amina)
    await a.send_json_to({"type": "fetch", "room": room.pk, "since_rev": 1, "ref": "f"})
    page = await expect(a, "messages", ref="f")
    assert [m["id"] for m in page["messages"]] == [2, 3]
    await a.send_json_to({"type": "history", "room": room.pk, "before": 3, "limit": 1, "ref": "h"})
    page = await expect(a, "messages", ref="h")
    assert [m["id"] for m in page["messages"]] == [2] and page["more"]
    await a.disconnect()


async def test_bad_input_is_answered_and_the_socket_keeps_working():
    room, amina, _yacine = await guild_with_members("amina", "yacine")
    a = await open_socket(amina)
    await subscribe(a, room.pk)
    await a.send_to(text_data="{not json")
    assert (await expect(a, "error"))["code"] == "bad_json"
    await a.send_json_to({"type": "teleport", "ref": "t"})
    assert (await expect(a, "error", ref="t"))["code"] == "unknown_type"
    await a.send_json_to([1, 2])
    assert (await expect(a, "error"))["code"] == "unknown_type"
    await a.send_json_to({"type": "send", "room": room.pk, "ref": "x", "text": "hi"})
    err = await expect(a, "error", ref="x")
    assert err["code"] == "invalid_frame" and "client_id" in err["message"]
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": "z", "text": "hi", "admin": True, "ref": "u"})
    assert (await expect(a, "error", ref="u"))["code"] == "invalid_frame"
    await a.send_to(text_data=json.dumps({"type": "send", "room": room.pk, "client_id": "big", "text": "x" * 17000}))
    assert (await expect(a, "error"))["code"] == "frame_too_large"
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": "long", "text": "x" * 4001, "ref": "l"})
    assert (await expect(a, "error", ref="l"))["code"] == "too_long"
    await a.send_to(bytes_data=b"\x00\x01")
    assert (await expect(a, "error"))["code"] == "invalid_frame"
    # After all that, the socket still chats.
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": "ok", "text": "still here", "ref": "ok"})
    assert (await expect(a, "ack", ref="ok"))["id"] == 1
    await a.disconnect()


async def test_private_rooms_and_missing_rooms_answer_alike():
    _room, amina, yacine = await guild_with_members("amina", "yacine")
    group = await sync_to_async(services.group_create)(user=yacine, title="Atelier secret")
    a = await open_socket(amina)
    answers = []
    for target in (group.pk, 987654):
        await a.send_json_to({"type": "send", "room": target, "client_id": f"c{target}", "text": "hi", "ref": "p"})
        err = await expect(a, "error", ref="p")
        answers.append((err["code"], err["message"]))
        await a.send_json_to({"type": "subscribe", "room": target, "ref": "q"})
        err = await expect(a, "error", ref="q")
        answers.append((err["code"], err["message"]))
    assert len(set(answers)) == 1 and answers[0][0] == "not_found"
    await a.disconnect()


async def test_editing_someone_elses_message_is_forbidden():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    await post_as(amina, room, "mine", "m")
    y = await open_socket(yacine)
    await y.send_json_to({"type": "edit", "room": room.pk, "id": 1, "text": "yours now", "ref": "e"})
    assert (await expect(y, "error", ref="e"))["code"] == "forbidden"
    await y.send_json_to({"type": "ping", "ref": "p"})
    await expect(y, "pong", ref="p")
    await y.disconnect()


async def test_a_flood_is_rate_limited_and_nothing_is_lost_after_it(settings):
    room, amina = await guild_with_members("amina")
    a = await open_socket(amina)
    await subscribe(a, room.pk)
    burst = settings.HIRFA_RATE_BURST
    for i in range(burst + 5):
        await a.send_json_to({"type": "send", "room": room.pk, "client_id": f"f{i}", "text": f"f{i}", "ref": f"r{i}"})
    acks, limited = [], []
    while len(acks) + len(limited) < burst + 5:
        frame = await a.receive_json_from(timeout=5)
        if frame["type"] == "ack":
            acks.append(frame)
        elif frame["type"] == "error":
            assert frame["code"] == "rate_limited" and frame["retry_after"] > 0
            limited.append(frame)
    assert len(acks) >= burst and len(limited) >= 1
    stored = await sync_to_async(lambda: list(room.messages.order_by("seq").values_list("text", flat=True)))()
    assert stored == [f"f{i}" for i in range(len(acks))]
    # The refused sends are retried with their client ids once the bucket refills.
    services.send_buckets.reset()
    refused = [int(f["ref"][1:]) for f in limited]
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": f"f{refused[0]}", "text": "retry", "ref": "again"})
    assert (await expect(a, "ack", ref="again"))["id"] == len(acks) + 1
    await a.disconnect()


async def test_typing_and_presence_reach_the_others_on_a_version_1_socket():
    """Version 1 clients still get one `presence` frame per member who came or went."""
    room, amina, yacine = await guild_with_members("amina", "yacine")
    a = await open_socket(amina, version=1)
    await subscribe(a, room.pk)
    y = await open_socket(yacine, version=1)
    _, subscribed = await subscribe(y, room.pk)
    assert {u["name"] for u in subscribed["online"]} == {"Amina Belkacem", "Yacine Haddad"}
    online = await expect(a, "presence", user={"id": yacine.pk, "name": "Yacine Haddad"})
    assert online["online"] is True
    await y.send_json_to({"type": "typing", "room": room.pk})
    assert (await expect(a, "typing"))["user"]["name"] == "Yacine Haddad"
    await y.disconnect()
    offline = await expect(a, "presence", user={"id": yacine.pk, "name": "Yacine Haddad"})
    assert offline["online"] is False
    await a.disconnect()


async def test_presence_changes_are_announced_once_per_room_and_period(settings):
    """Members arriving together cost one `presence_delta`, not one frame each; a member
    who comes and goes within the period is not announced at all."""
    settings.HIRFA_PRESENCE_DELTA_SECONDS = 1.0
    room, amina, *others = await guild_with_members("amina", "yacine", "nadia", "karim", "samir", "lila")
    a = await open_socket(amina)
    await subscribe(a, room.pk)
    own = await expect(a, "presence_delta", timeout=5)
    assert ([u["name"] for u in own["joined"]], own["online_count"]) == (["Amina Belkacem"], 1)
    sockets = [await open_socket(user) for user in others[:4]]
    for comm in sockets:
        await subscribe(comm, room.pk)
    passing = await open_socket(others[4])
    await subscribe(passing, room.pk)
    await passing.disconnect()
    delta = await expect(a, "presence_delta", timeout=5)
    assert delta["room"] == room.pk
    assert sorted(u["name"] for u in delta["joined"]) == ["Karim Benali", "Nadia", "Samir", "Yacine Haddad"]
    assert delta.get("left", []) == [] and delta["online_count"] == 5
    await nothing_more(a, kind="presence_delta", wait=1.5)
    await nothing_more(a, kind="presence")
    await sockets[0].disconnect()
    gone = await expect(a, "presence_delta", timeout=5)
    assert [u["name"] for u in gone["left"]] == ["Yacine Haddad"] and gone["online_count"] == 4
    # A member asks for the names page by page.
    await a.send_json_to({"type": "presence", "room": room.pk, "offset": 2, "limit": 2, "ref": "p"})
    page = await expect(a, "presence_list", ref="p")
    assert (len(page["online"]), page["online_count"], page["offset"]) == (2, 4, 2)
    for comm in (a, *sockets[1:]):
        await comm.disconnect()


async def test_a_banned_member_stops_receiving_the_room():
    room, amina, nadia = await guild_with_members("amina", "nadia")  # nadia moderates pottery
    a = await open_socket(amina)
    await subscribe(a, room.pk)
    y = await open_socket(nadia)
    await y.send_json_to({"type": "ban", "room": room.pk, "user": amina.pk, "ref": "b"})
    await expect(y, "ack", ref="b")
    removed = await expect(a, "removed")
    assert (removed["room"], removed["reason"]) == (room.pk, "banned")
    await post_as(nadia, room, "after the ban", "after")
    await nothing_more(a, kind="message")
    await a.send_json_to({"type": "history", "room": room.pk, "ref": "h"})
    assert (await expect(a, "error", ref="h"))["code"] == "not_found"
    await a.disconnect()
    await y.disconnect()


async def test_read_marker_updates_every_tab_of_the_member():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    for i in range(3):
        await post_as(amina, room, f"m{i}", f"c{i}")
    tab1, tab2 = await open_socket(yacine), await open_socket(yacine)
    _, subscribed = await subscribe(tab1, room.pk)
    assert subscribed["unread"] == 3
    await tab1.send_json_to({"type": "read", "room": room.pk, "id": 3})
    unread = await expect(tab2, "unread")
    assert (unread["room"], unread["read_id"], unread["unread"]) == (room.pk, 3, 0)
    await tab1.disconnect()
    await tab2.disconnect()


async def test_mention_notification_is_pushed_live():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    y = await open_socket(yacine)
    await post_as(amina, room, "@yacine tu viens ?", "m")
    note = await expect(y, "notification")
    assert note["kind"] == "mention" and note["data"]["room"] == room.pk
    await y.disconnect()


@pytest.fixture
def redis_bus(settings, redis_url):
    """Force the Redis pub/sub bus and presence, as in production."""
    from hub import realtime

    settings.REDIS_URL = redis_url
    realtime.reset_backend()
    yield
    realtime.reset_backend()


async def test_a_socket_idle_for_seven_seconds_still_receives_over_redis(redis_bus):
    import asyncio

    from hub import realtime

    assert realtime._backend().name == "redis"
    room, amina, yacine = await guild_with_members("amina", "yacine")
    y = await open_socket(yacine)
    await subscribe(y, room.pk)
    await asyncio.sleep(7)  # past redis-py's 5 s default socket timeout
    await post_as(amina, room, "réveille-toi", "wake")
    got = await expect(y, "message")
    assert got["text"] == "réveille-toi"
    await y.disconnect()


async def subscribe_crowd(monkeypatch, members, room, *, read_seconds: float) -> int:
    """Subscribe `members` to `room` all at once, each state read lasting `read_seconds` more;
    answers how many reads were in flight at most."""
    import asyncio

    from rooms import consumers as room_consumers

    room_consumers._admission.clear()
    real = room_consumers._subscription_state
    now = {"running": 0, "most": 0}

    async def counted(*args, **kwargs):
        now["running"] += 1
        now["most"] = max(now["most"], now["running"])
        try:
            await asyncio.sleep(read_seconds)
            return await real(*args, **kwargs)
        finally:
            now["running"] -= 1

    monkeypatch.setattr(room_consumers, "_subscription_state", counted)
    sockets = [await open_socket(user) for user in members]
    try:
        results = await asyncio.gather(*(subscribe(comm, room.pk) for comm in sockets))
        assert len(results) == len(members)
        return now["most"]
    finally:
        for comm in sockets:
            await comm.disconnect()
        room_consumers._admission.clear()


async def test_a_crowd_subscribing_at_once_reads_the_database_a_few_at_a_time(settings, monkeypatch):
    """Admission smoothing: every socket is accepted and subscribed, but at most
    HIRFA_SUBSCRIBES_AT_ONCE subscriptions read the database together."""
    settings.HIRFA_SUBSCRIBES_AT_ONCE = 3
    room, *members = await guild_with_members(*(f"membre{i}" for i in range(12)))
    most = await subscribe_crowd(monkeypatch, members, room, read_seconds=0.05)
    assert 1 < most <= 3


async def test_a_crowd_subscribing_gets_more_than_eight_reads_in_flight_by_default(monkeypatch):
    """With their reads together (`_states_together`), a hub lets 32 subscriptions through at
    once by default: eight, each one late turn of a busy loop after another, let 15 a second
    through while a crowd's openings went on (docs/performance.md, 2026-12-01 `crowd`)."""
    room, *members = await guild_with_members(*(f"membre{i}" for i in range(20)))
    most = await subscribe_crowd(monkeypatch, members, room, read_seconds=0.2)
    assert most > 8, most


async def test_subscriptions_waiting_for_their_read_are_read_together(monkeypatch):
    """A crowd's subscriptions read their state together: those that arrive while a read is
    on the database pool go in the next call. One call each made every subscription of a
    crowd a hop to a thread of the pool, and admitted few at a time (the threads took the
    GIL from the loop serving the crowd's openings), each waited for all of them."""
    import asyncio

    from rooms import consumers as room_consumers

    room, *members = await guild_with_members(*(f"membre{i}" for i in range(6)))
    together = room_consumers._states_together
    real = together._many
    calls: list[int] = []
    release = asyncio.Event()

    async def held(asks):
        calls.append(len(asks))
        if len(calls) == 1:
            await release.wait()
        return await real(asks)

    monkeypatch.setattr(together, "_many", held)
    sockets = [await open_socket(user) for user in members]
    try:
        first = asyncio.ensure_future(subscribe(sockets[0], room.pk))
        for _ in range(500):
            if calls:
                break
            await asyncio.sleep(0.01)
        crowd = [asyncio.ensure_future(subscribe(comm, room.pk)) for comm in sockets[1:]]
        for _ in range(200):
            await asyncio.sleep(0)  # the crowd's subscriptions reach their read
        release.set()
        for _replayed, subscribed in await asyncio.gather(first, *crowd):
            assert subscribed["rev"] >= 0
        assert calls == [1, 5], calls
    finally:
        for comm in sockets:
            await comm.disconnect()


def test_subscriptions_read_together_refuse_each_in_its_members_language():
    """Read on one thread, each refusal is in its own member's language, and one refusal
    does not refuse the others."""
    from hub.errors import HirfaError
    from rooms.consumers import StateAsk, SubscriptionState, subscription_states

    room, amina, yacine = factories.guild_with("amina", "yacine")
    found = subscription_states(
        [
            StateAsk(amina, 987_654_321, None, "fr"),
            StateAsk(yacine, room.pk, None, "ar"),
            StateAsk(yacine, 987_654_321, None, "en"),
        ]
    )
    french, state, english = found
    assert isinstance(french, HirfaError) and isinstance(english, HirfaError)
    assert (str(french), str(english)) == ("Salon introuvable.", "No such room."), (str(french), str(english))
    assert isinstance(state, SubscriptionState) and state.view.room_id == room.pk


def test_a_crowd_resuming_since_the_same_rev_reads_the_changes_once_per_call():
    """A restarted hub's crowd resumes since the same rev: read together, each reads his own
    state, and the changes once for all of them (each read them again, a model per message:
    a fifth more of the restarted hub's CPU with 32 subscriptions at once)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rooms.consumers import StateAsk, subscription_states

    room, amina, yacine, karim = factories.guild_with("amina", "yacine", "karim")
    since = factories.message(amina, room, "avant", "k0").message.rev
    for i in range(3):
        factories.message(karim, room, f"pendant {i}", f"k{i + 1}")

    def queries_for(asks: list[StateAsk]) -> tuple[int, list]:
        with CaptureQueriesContext(connection) as queries:
            found = subscription_states(asks)
        return len(queries.captured_queries), found

    alone, (one,) = queries_for([StateAsk(amina, room.pk, since, "fr")])
    crowd, found = queries_for([StateAsk(user, room.pk, since, "fr") for user in (amina, yacine, karim)])
    assert crowd == alone + 2, (alone, crowd)
    for state in found:
        assert [m.text for m in state.messages] == ["pendant 0", "pendant 1", "pendant 2"]
        assert (state.more, state.rev_before) == (one.more, one.rev_before)
    assert [state.view.unread for state in found] == [3, 4, 0]


async def test_a_send_is_refused_the_moment_a_right_ends_whatever_the_socket_heard():
    """No event reaches the socket (a bare update): its next send is still refused."""
    from rooms.models import Membership

    _room, amina, yacine = await guild_with_members("amina", "yacine")
    group = await sync_to_async(services.group_create)(user=yacine, title="Atelier", member_ids=[amina.pk])
    a = await open_socket(amina)
    await subscribe(a, group.pk)
    await a.send_json_to({"type": "send", "room": group.pk, "client_id": "k1", "text": "Salam", "ref": "s1"})
    await expect(a, "ack", ref="s1")
    await sync_to_async(lambda: Membership.objects.filter(room=group, user=amina).update(active=False))()
    await a.send_json_to({"type": "send", "room": group.pk, "client_id": "k2", "text": "encore", "ref": "s2"})
    assert (await expect(a, "error", ref="s2"))["code"] == "not_found"
    await a.disconnect()


async def test_a_mention_sent_through_the_socket_is_notified_after_the_ack():
    room, amina, yacine = await guild_with_members("amina", "yacine")
    a, y = await open_socket(amina), await open_socket(yacine)
    await a.send_json_to({"type": "send", "room": room.pk, "client_id": "k1", "text": "@yacine viens", "ref": "s"})
    await expect(a, "ack", ref="s")
    note = await expect(y, "notification")
    assert note["kind"] == "mention" and note["data"]["room"] == room.pk and note["data"]["by"] == "Amina Belkacem"
    await a.disconnect()
    await y.disconnect()
