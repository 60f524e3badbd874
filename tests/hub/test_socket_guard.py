"""No frame kills the hub socket, and whatever happens its state is released.

Runs through Channels' communicator on whatever bus and presence store the
settings choose (Redis when REDIS_URL is set, as in CI)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from hub import realtime
from hub.consumers import HubConsumer
from rooms.consumers import RoomFrames
from rooms.presence import presence_store
from tests import factories
from tests.sockets import clear_presence, expect, open_socket, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _fresh_presence():
    await clear_presence()


guild_with = sync_to_async(factories.guild_with)


def registrations(user_id: int) -> int:
    """How many fan-out registrations of this loop belong to sockets of `user_id`."""
    return sum(
        1
        for subs in realtime.fanout().groups.values()
        for sub in subs
        if getattr(getattr(sub, "user", None), "pk", None) == user_id
    )


async def assert_released(room_id: int, user_id: int) -> None:
    online, _count = await presence_store().online(room_id)
    assert user_id not in online, "still online after the socket closed"
    assert registrations(user_id) == 0, "fan-out registrations left behind"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 16000,
        "{\"a\":" * 5000 + "1" + "}" * 5000,
        '{"type": "send", "room": ' + "[" * 3000 + "]" * 3000 + "}",
    ],
    ids=["open-brackets", "nested-objects", "nested-field"],
)
async def test_deep_nesting_is_refused_and_the_socket_goes_on(text):
    room, amina = await guild_with("amina")
    comm = await open_socket(amina)
    await subscribe(comm, room.pk)
    await comm.send_to(text_data=text)
    err = await expect(comm, "error")
    assert err["code"] == "invalid_frame"
    await comm.send_json_to({"type": "ping", "ref": "p"})
    assert (await expect(comm, "pong"))["ref"] == "p"
    online, _ = await presence_store().online(room.pk)
    assert amina.pk in online
    await comm.disconnect()
    await assert_released(room.pk, amina.pk)


async def test_an_unexpected_failure_answers_internal_error_and_the_socket_goes_on(monkeypatch, caplog):
    room, amina = await guild_with("amina")
    comm = await open_socket(amina)

    async def broken(self, frame):
        raise RecursionError("deep inside a handler")

    monkeypatch.setattr(RoomFrames, "on_presence", broken)
    comm2 = await open_socket(amina)  # handlers are bound when the socket opens
    await comm2.send_json_to({"type": "presence", "room": room.pk, "ref": "x"})
    err = await expect(comm2, "error")
    assert (err["code"], err["ref"]) == ("internal_error", "x")
    assert "deep inside" not in err["message"], "the traceback stays on the server"
    assert any("deep inside a handler" in (r.exc_text or "") for r in caplog.records)
    await comm2.send_json_to({"type": "ping", "ref": "p"})
    await expect(comm2, "pong")
    await comm2.disconnect()
    await comm.disconnect()


async def test_state_is_released_even_when_the_consumer_dies(monkeypatch):
    room, amina = await guild_with("amina")
    comm = await open_socket(amina)
    await subscribe(comm, room.pk)

    async def dies(self, text_data=None, bytes_data=None):
        raise SystemError("the consumer dies")

    monkeypatch.setattr(HubConsumer, "receive", dies)
    await comm.send_to(text_data="{}")
    with pytest.raises(SystemError):
        for _ in range(10):  # frames already on their way (its own presence) come first
            await comm.receive_output(timeout=5)
    await assert_released(room.pk, amina.pk)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 16 + "]" * 16, False),
        ("[" * 17 + "]" * 17, True),
        ('{"a":' * 16 + "1" + "}" * 16, False),
        ('{"a":' * 17 + "1" + "}" * 17, True),
        ("[{" * 8 + "[]" + "}]" * 8, True),
        ('["' + "[" * 40 + '"]', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 40 + '"]', False),  # nor after an escaped quote
        ("[]" * 30000, False),
        ('"' + '\\"' * 30000 + "\\" + "[" * 20, False),  # an unclosed string swallows the rest
        ("[" * 16000, True),
        ("[" * 20, True),  # truncated: unbalanced counts as deep
    ],
)
def test_depth_is_measured_without_parsing(text, deep):
    from hub.protocol import json_depth_exceeds

    assert json_depth_exceeds(text) is deep


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "presence", "room": ROOM, "ref": "\\ud800"}',  # echoed back, it cannot be encoded
        '{"type": "send", "room": ROOM, "client_id": "c1", "text": "a\\u0000b"}',  # PostgreSQL refuses NUL
        '{"type": "send", "room": ROOM, "client_id": "\\udfff", "text": "salam"}',
    ],
    ids=["surrogate-ref", "nul-text", "surrogate-client-id"],
)
async def test_text_no_database_or_encoder_takes_is_refused(text):
    room, amina = await guild_with("amina")
    comm = await open_socket(amina)
    await subscribe(comm, room.pk)
    await comm.send_to(text_data=text.replace("ROOM", str(room.pk)))
    err = await expect(comm, "error")
    assert err["code"] == "invalid_frame"
    await comm.send_json_to({"type": "ping", "ref": "p"})
    await expect(comm, "pong", ref="p")
    await comm.disconnect()
    await assert_released(room.pk, amina.pk)


@pytest.mark.parametrize(
    "text",
    [
        # Found by the fuzzer's long run: cast to bigint in the one-statement insert, it failed.
        '{"type": "send", "room": ROOM, "client_id": "c1", "text": "salam", "reply_to": 1000000000000000000000000000000}',
        '{"type": "send", "room": ROOM, "client_id": "c2", "text": "salam", "attachments": [99999999999999999999]}',
        '{"type": "subscribe", "room": ROOM, "since_rev": 9223372036854775808}',
        '{"type": "read", "room": ROOM, "id": 9223372036854775808}',
        '{"type": "subscribe", "room": 9223372036854775808}',
    ],
    ids=["reply-to", "attachment", "since-rev", "read-id", "room"],
)
async def test_numbers_no_database_column_holds_are_refused(text):
    room, amina = await guild_with("amina")
    comm = await open_socket(amina)
    await subscribe(comm, room.pk)
    await comm.send_to(text_data=text.replace("ROOM", str(room.pk)))
    err = await expect(comm, "error")
    assert err["code"] == "invalid_frame", err
    await comm.send_json_to({"type": "ping", "ref": "p"})
    await expect(comm, "pong", ref="p")
    await comm.disconnect()
    await assert_released(room.pk, amina.pk)
