"""The socket's meeting part alone, against a fake socket (tests/sockets.py): its frame
budget, the engine's events turned into frames, and a lost room ending the meeting."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from django.utils import translation

from hub import protocol, realtime
from hub.errors import ErrorCode, HirfaError
from hub.protocol import Removed
from signaling import messages as m
from signaling.consumers import MEETING_FRAME_BURST, MeetingFrames, MeetingSession
from signaling.engine import meeting_group
from tests import factories
from tests.sockets import FakeSocket

pytestmark = pytest.mark.django_db(transaction=True)

# Ids of a meeting and room that do not exist: no right to them can be found.
GONE_MEETING, GONE_ROOM = 987_654, 987_655


make_amina = sync_to_async(factories.amina)


async def in_meeting(user) -> tuple[FakeSocket, MeetingFrames, MeetingSession]:
    """A part whose member is in a meeting with no media session (no engine is asked)."""
    socket = FakeSocket(user)
    part = MeetingFrames(socket)
    session = MeetingSession(meeting_id=GONE_MEETING, room_id=GONE_ROOM, host=False, link=None, receive_video=True)
    part.meeting = session
    await socket.join_group(meeting_group(GONE_MEETING))
    return socket, part, session


async def engine_says(part: MeetingFrames, socket: FakeSocket, event: m.Event | dict) -> None:
    data = event if isinstance(event, dict) else event.model_dump(mode="json")
    await part.channel_handlers()["sfu.event"]({"type": "sfu.event", "event": data})
    if part.meeting_pump is not None:
        await part.meeting_pump
    await socket.settle()


async def test_meeting_frames_have_their_own_budget_beside_the_sockets():
    part = MeetingFrames(FakeSocket(await make_amina()))
    hand = part.handlers()["meeting_hand"]
    frame = protocol.MeetingHand(type="meeting_hand", meeting=GONE_MEETING, up=True)
    codes = []
    for _ in range(MEETING_FRAME_BURST + 1):
        with pytest.raises(HirfaError) as refused:
            await hand(frame)
        codes.append(refused.value.code)
    assert codes[:MEETING_FRAME_BURST] == [ErrorCode.NO_SESSION] * MEETING_FRAME_BURST
    assert codes[-1] is ErrorCode.RATE_LIMITED and refused.value.retry_after


def test_an_idle_socket_holds_one_meeting_handler_and_no_event_queue():
    """20,000 idle sockets per box (issue 12): a socket in no meeting builds one handler for
    all its meeting frames (not a closure per frame type) and no queue of engine events."""
    part = MeetingFrames(FakeSocket(None))
    handlers = part.handlers()
    assert "meeting_join" in handlers and "meeting_hand" in handlers
    assert len({id(handler) for handler in handlers.values()}) == 1
    assert not [name for name, value in vars(part).items() if isinstance(value, asyncio.Queue)]


def test_only_an_answer_may_outgrow_the_sockets_frame_limit(settings):
    part = MeetingFrames(FakeSocket(None))
    assert part.frame_limits() == {"meeting_answer": settings.HIRFA_MEETING_ANSWER_MAX_BYTES}


async def test_the_engines_events_become_frames_in_their_order():
    socket, part, _session = await in_meeting(await make_amina())
    await engine_says(part, socket, m.Lobby(ref="j1"))
    line = m.OfferLine(mid="0", kind="audio", direction="subscribe", user=7, source="mic")
    await engine_says(part, socket, m.Offer(sdp="v=0", revision=2, mlines=(line,)))
    with translation.override("fr"):  # the engine's English msgid, said in the member's language
        await engine_says(part, socket, m.EngineError(code="no_session", message="You are not in this meeting.", ref="r"))
    await engine_says(part, socket, m.Rejoin(reason="connection_failed"))
    assert socket.sent == [
        {"type": "meeting_lobby", "ref": "j1", "meeting": GONE_MEETING},
        {
            "type": "meeting_offer",
            "meeting": GONE_MEETING,
            "sdp": "v=0",
            "revision": 2,
            "mlines": [{"mid": "0", "kind": "audio", "direction": "subscribe", "user": 7, "source": "mic"}],
        },
        {"type": "error", "ref": "r", "code": "no_session", "message": "Vous ne participez pas à cette réunion."},
        {"type": "meeting_rejoin", "meeting": GONE_MEETING, "reason": "connection_failed"},
    ]


async def test_what_a_meeting_left_behind_is_not_taken_for_the_next_ones():
    """A member who moved to a workshop table on the same socket: an offer his last meeting
    still had in flight must not reach his new peer as the table's."""
    socket, part, _session = await in_meeting(await make_amina())
    line = m.OfferLine(mid="0", kind="audio", direction="publish", user=7, source="mic")
    await engine_says(part, socket, m.Offer(meeting=GONE_MEETING + 1, sdp="v=0", revision=3, mlines=(line,)))
    await engine_says(part, socket, m.Ended(meeting=GONE_MEETING + 1, reason="left"))
    assert socket.sent == []
    await engine_says(part, socket, m.Offer(meeting=GONE_MEETING, sdp="v=0", revision=3, mlines=(line,)))
    assert [frame["type"] for frame in socket.sent] == ["meeting_offer"]


async def test_a_malformed_event_from_a_worker_is_dropped(caplog):
    socket, part, session = await in_meeting(await make_amina())
    with caplog.at_level(logging.WARNING):
        await engine_says(part, socket, {"kind": "ended", "reason": "bored"})
    assert socket.sent == [] and part.meeting is session
    assert "malformed meeting event" in caplog.text


async def test_ended_by_the_engine_ends_the_session():
    socket, part, _session = await in_meeting(await make_amina())
    await engine_says(part, socket, m.Ended(reason="removed"))
    assert socket.sent == [{"type": "meeting_ended", "meeting": GONE_MEETING, "reason": "removed"}]
    assert part.meeting is None and socket.groups == set()


async def test_removed_from_the_meetings_room_checks_the_meeting_again():
    amina = await make_amina()
    socket, part, _session = await in_meeting(amina)
    other_room = realtime.Event.of(Removed(room=GONE_ROOM + 1, reason="banned"))
    assert part.deliver(realtime.user_group(amina.pk), other_room) is True
    await socket.settle()
    assert socket.sent == [] and part.meeting is not None
    its_room = realtime.Event.of(Removed(room=GONE_ROOM, reason="banned"))
    assert part.deliver(realtime.user_group(amina.pk), its_room) is True
    await socket.settle()
    assert socket.sent == [{"type": "meeting_ended", "meeting": GONE_MEETING, "reason": "removed"}]
    assert part.meeting is None and socket.groups == set()


async def test_a_seat_written_while_the_member_leaves_is_given_back(monkeypatch):
    """The engine's `joined` writes the member's seat in the background; a leave (the socket
    closing, `meeting_leave`) that comes while it is being written waits for it and gives it
    back. It looked before the seat was written, found none, and the seat stayed taken
    (the protocol fuzzer's open seats once frames no longer queued on Django's one thread)."""
    import threading

    from rooms.models import Room, RoomKind
    from signaling import services
    from signaling.models import Attendance

    def world() -> tuple[object, int, int]:
        pottery = factories.pottery()
        amina = factories.amina(pottery_=pottery)
        nadia = factories.nadia(pottery_=pottery)
        guild = Room.objects.get(kind=RoomKind.GUILD, trade=pottery)
        meeting = services.meeting_start(user=nadia, room_id=guild.pk).meeting
        assert meeting is not None
        return amina, meeting, guild.pk

    amina, meeting_id, room_id = await sync_to_async(world)()
    writing, go_on = threading.Event(), threading.Event()
    attend = services.meeting_attend

    def slow_attend(**kwargs: object) -> None:
        writing.set()
        go_on.wait(10)
        attend(**kwargs)

    monkeypatch.setattr(services, "meeting_attend", slow_attend)
    socket = FakeSocket(amina)
    part = MeetingFrames(socket)
    part.meeting = MeetingSession(meeting_id=meeting_id, room_id=room_id, host=False, link=None, receive_video=True)
    await part.channel_handlers()["sfu.event"]({"type": "sfu.event", "event": m.Joined(ref="j", host=False).model_dump(mode="json")})
    assert await asyncio.to_thread(writing.wait, 10)
    closing = asyncio.ensure_future(part.close())
    await asyncio.sleep(0.1)
    go_on.set()
    await asyncio.wait_for(closing, 10)
    await asyncio.sleep(0.2)  # the seat's write, had it been left behind
    open_seats = await sync_to_async(
        lambda: Attendance.objects.filter(meeting_id=meeting_id, user=amina, left_at__isnull=True).count()
    )()
    assert open_seats == 0
