"""The authorization matrix of the websocket, held against docs/permissions.md.

Each role opens a real socket (Channels' communicator, the hub consumer, the
database and bus of the settings) and sends every client frame in every room
kind; the answer (no error, or the error's code) becomes a word of the
document. A refusal is `hidden` only when it is exactly the answer for a room
that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from hub import protocol
from hub.consumers import HubConsumer
from signaling import services as meeting_services
from tests.permissions import matrix
from tests.permissions.matrix import LOGIN, OK, Answer, Results
from tests.permissions.world import KINDS, MISSING_ID, ROLES, World, build
from tests.sockets import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

Frame = dict[str, Any]


def room_frames(world: World, role: str, kind: str, room: int) -> list[tuple[str, Frame, bool]]:
    """(row key, frame, whether it changes the world) in the order they are sent."""
    target, own = world.target[kind], world.own_seq(role, kind)
    kamel = world.kamel.pk
    return [
        ("subscribe", {"type": "subscribe", "room": room}, False),
        ("history", {"type": "history", "room": room}, False),
        ("fetch", {"type": "fetch", "room": room, "since_rev": 0}, False),
        ("presence", {"type": "presence", "room": room}, False),
        ("typing", {"type": "typing", "room": room}, False),
        ("read", {"type": "read", "room": room, "id": target}, False),
        ("react", {"type": "react", "room": room, "id": target, "emoji": "👍", "on": True}, True),
        ("report", {"type": "report", "room": room, "id": target, "reason": "spam"}, True),
        ("send", {"type": "send", "room": room, "client_id": f"m-{role}", "text": "Salam"}, True),
        ("edit own", {"type": "edit", "room": room, "id": own, "text": "edited"}, False),
        ("edit another's", {"type": "edit", "room": room, "id": target, "text": "edited"}, True),
        ("delete own", {"type": "delete", "room": room, "id": own}, True),
        ("delete another's", {"type": "delete", "room": room, "id": target}, True),
        ("mute", {"type": "mute", "room": room, "user": kamel, "minutes": 5}, True),
        ("ban", {"type": "ban", "room": room, "user": kamel, "on": True}, True),
        ("unsubscribe", {"type": "unsubscribe", "room": room}, False),
    ]


def meeting_frames(meeting: int, room: int) -> list[tuple[str, Frame]]:
    return [
        ("meeting_info", {"type": "meeting_info", "room": room}),
        ("meeting_start", {"type": "meeting_start", "room": room}),
        ("meeting_join", {"type": "meeting_join", "room": room}),
        ("meeting_hand", {"type": "meeting_hand", "meeting": meeting, "up": True}),
        ("meeting_mute", {"type": "meeting_mute", "meeting": meeting, "source": "mic", "muted": True}),
        ("meeting_receive", {"type": "meeting_receive", "meeting": meeting, "video": False}),
        ("meeting_pin", {"type": "meeting_pin", "meeting": meeting, "user": None}),
        ("meeting_retry_video", {"type": "meeting_retry_video", "meeting": meeting}),
        ("meeting_publish", {"type": "meeting_publish", "meeting": meeting, "source": "mic"}),
        ("meeting_unpublish", {"type": "meeting_unpublish", "meeting": meeting, "source": "mic"}),
        ("meeting_candidate", {"type": "meeting_candidate", "meeting": meeting, "candidate": None}),
        ("meeting_answer", {"type": "meeting_answer", "meeting": meeting, "sdp": "v=0\r\n", "revision": 99}),
        ("meeting_host lock", {"type": "meeting_host", "meeting": meeting, "action": "lock"}),
        ("meeting_host unlock", {"type": "meeting_host", "meeting": meeting, "action": "unlock"}),
        ("meeting_ice_restart", {"type": "meeting_ice_restart", "meeting": meeting}),
        ("meeting_recorded", {"type": "meeting_recorded", "meeting": meeting, "recorded": False}),
        ("meeting_record start", {"type": "meeting_record", "meeting": meeting, "action": "start"}),
        ("meeting_marker", {"type": "meeting_marker", "meeting": meeting, "label": "now: glazing"}),
        ("meeting_record stop", {"type": "meeting_record", "meeting": meeting, "action": "stop"}),
        ("meeting_tables close", {"type": "meeting_tables", "meeting": meeting, "action": "close"}),
        ("meeting_leave", {"type": "meeting_leave", "meeting": meeting}),
    ]


def _missing(frame: Frame) -> Frame:
    """The same frame for a room (or meeting) that does not exist."""
    key = "meeting" if "meeting" in frame else "room"
    return {**frame, key: MISSING_ID}


class Probe:
    """Sends frames and tells which were refused.

    A `ping` follows every frame: the socket answers frames in order, so an
    error for the frame comes before the `pong`. Answers the SFU sends later
    are collected until `settle`.
    """

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm = comm
        self.errors: dict[str, Answer] = {}
        self.sent: dict[str, Frame] = {}
        self.count = 0

    async def send(self, frame: Frame) -> str:
        self.count += 1
        ref = f"r{self.count}"
        self.sent[ref] = frame
        await self.comm.send_json_to({**frame, "ref": ref})
        await self._until_pong()
        return ref

    async def _until_pong(self) -> None:
        probe = f"probe{self.count}"
        await self.comm.send_json_to({"type": "ping", "ref": probe})
        while True:
            got = await self.comm.receive_json_from(timeout=10)
            self._note(got)
            if got["type"] == "pong" and got.get("ref") == probe:
                return

    def _note(self, got: Frame) -> None:
        if got["type"] == "error" and got.get("ref"):
            asked = self.sent.get(got["ref"], {})
            details = Answer.details_of(got, [asked.get(k) for k in ("room", "meeting", "id", "user")])
            self.errors.setdefault(
                got["ref"], Answer(ok=False, code=got["code"], message=got["message"], details=details)
            )

    async def settle(self, wait: float = 0.3, *, awaited: tuple[str, ...] | list[str] = (), patience: float = 10) -> None:
        """Read until the socket is quiet; and until each of `awaited` got its error, or `patience` runs out.

        The SFU answers in its own time: a refusal the document expects is waited
        for (a busy machine may be slow), so the cell is never read too early.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            while not await self.comm.receive_nothing(timeout=wait):
                self._note(await self.comm.receive_json_from(timeout=1))
            if all(ref in self.errors for ref in awaited) or loop.time() > deadline:
                return

    def answer(self, ref: str) -> Answer:
        return self.errors.get(ref, OK)


async def _anonymous_is_refused() -> None:
    comm = WebsocketCommunicator(HubConsumer.as_asgi(), "/ws/")
    comm.scope["user"] = AnonymousUser()
    await comm.connect()
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}


async def _missing_answers(user: Any, frames: list[tuple[str, Frame]]) -> dict[str, Answer]:
    comm = await open_socket(user)
    probe = Probe(comm)
    refs = {key: await probe.send(_missing(frame)) for key, frame in frames}
    await probe.settle(0)
    await comm.disconnect()
    return {key: probe.answer(ref) for key, ref in refs.items()}


@pytest.fixture
def sfu_in_process(settings):
    settings.HIRFA_SFU_PLACEMENT = "embedded"


async def _no_room_frames(world: World) -> Results:
    results = Results("Socket", "")
    for role in ROLES:
        if role == "anonymous":
            results.record("hello", role, "login")
            results.record("ping", role, "login")
            continue
        comm = await open_socket(world.users[role])  # asserts the `welcome`
        results.record("hello", role, "ok")
        probe = Probe(comm)
        results.record("ping", role, matrix.word(probe.answer(await probe.send({"type": "ping"})), None))
        await comm.disconnect()
    return results


async def _room_kind(
    world: World,
    kind: str,
    missing: dict[str, dict[str, Answer]],
    turns: dict[str, asyncio.Lock],
    expected: matrix.Table,
) -> Results:
    """Every role's frames in the room of `kind`; the room is put back after each change."""
    room = world.rooms[kind]
    host = world.ghania if not room.is_public else world.users["admin"]
    reset = sync_to_async(world.reset)
    results = Results("Socket", kind)
    for role in ROLES:
        if role == "anonymous":
            continue
        user = world.users[role]
        # One socket of a member at a time, and one meeting: whatever the per-member limits.
        async with turns[role]:
            comm = await open_socket(user)
            probe = Probe(comm)
            for key, frame, changes in room_frames(world, role, kind, room.pk):
                answer = probe.answer(await probe.send(frame))
                results.record(key, role, matrix.word(answer, missing[role][key]))
                if changes and answer.ok:
                    await reset(kind)
            await comm.disconnect()
            # A meeting ends when its last participant leaves: each role finds one live.
            live = await sync_to_async(meeting_services.meeting_start)(user=host, room_id=room.pk)
            comm = await open_socket(user)
            probe = Probe(comm)
            assert live.meeting is not None
            refs = [(key, await probe.send(frame)) for key, frame in meeting_frames(live.meeting, room.pk)]
            if probe.answer(refs[2][1]).ok:  # joined: the SFU's own answers come later
                refused = [ref for key, ref in refs if expected.get(key, {}).get(role, "ok") != "ok"]
                await probe.settle(awaited=refused)
            for key, ref in refs:
                results.record(key, role, matrix.word(probe.answer(ref), missing[role][key]))
            await comm.disconnect()
            await reset(kind)
    return results


async def test_every_frame_answers_each_role_as_documented(sfu_in_process):
    from signaling import placement

    world: World = await sync_to_async(build)()
    doc = matrix.document()
    await _anonymous_is_refused()
    missing: dict[str, dict[str, Answer]] = {}
    for role, user in world.users.items():
        any_kind = KINDS[0]
        room = world.rooms[any_kind].pk
        missing[role] = await _missing_answers(user, [(k, f) for k, f, _ in room_frames(world, role, any_kind, room)])
        missing[role] |= await _missing_answers(user, meeting_frames(MISSING_ID, room))
    turns = {role: asyncio.Lock() for role in ROLES}
    try:
        by_kind = await asyncio.gather(*(_room_kind(world, kind, missing, turns, doc.get(("Socket", kind), {})) for kind in KINDS))
    finally:
        await placement.close_embedded()
    mismatches: list[str] = []
    tables: list[str] = []
    for results in [await _no_room_frames(world), *by_kind]:
        if results.kind:
            for key, *_ in room_frames(world, "member", results.kind, 0) + meeting_frames(0, 0):
                results.record(key, "anonymous", matrix.word(LOGIN, None))
        mismatches += results.mismatches(doc.get(("Socket", results.kind), {}))
        tables.append(f"### Socket: {results.kind}\n" + results.table())
    assert not mismatches, "\n".join(mismatches) + "\n\nobserved:\n" + "\n\n".join(tables)


def test_every_client_frame_is_in_the_document():
    doc = matrix.document()
    rows = {key.split()[0] for (surface, _), table in doc.items() if surface == "Socket" for key in table}
    missing = sorted(set(protocol.CLIENT_FRAME_TYPES) - rows)
    assert not missing, f"client frames missing from docs/permissions.md: {missing}"
    for kind in ("", *KINDS):
        assert ("Socket", kind) in doc, f"docs/permissions.md has no socket table for {kind or 'no room'}"
