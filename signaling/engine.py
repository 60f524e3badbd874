"""Meetings on an SFU, driven by commands: the one code path of both placements.

The hub consumer never touches the SFU. It sends small command dicts (see
:data:`OPS`) to a :class:`MeetingEngine`, in-process in the embedded default
or in a ``hirfa sfu`` worker through the channel layer (``signaling.placement``),
and gets events back at its ``reply_to`` address:

- ``joined`` / ``lobby`` — the participant is in, or waits for a host;
- ``offer`` — a server offer (``sdp``, ``revision``, ``mlines``);
- ``error`` — a refused command (``code``, ``message``, ``ref``);
- ``ended`` — the participant is out (``reason``: removed, replaced, ended, denied, or
  left when he did not rejoin within the rejoin grace after a failure);
- ``rejoin`` — his media session is gone (``reason``: connection_failed: his peer
  connection failed or was closed from his side).

The engine holds the live state of its meetings (participants, tracks, hands,
self and host mutes, active speaker, lock, lobby) and publishes the whole
``meeting_state`` to the group ``meeting.<id>`` through ``publish`` on every
change, so every participant sees it whichever process holds his socket.
Commands of one meeting are handled one at a time, in order.

Permissions are checked by the consumer against the database before a
command is sent; the engine checks only that a command comes from the socket
(``reply_to``) the participant joined with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hub.errors import ErrorCode, HirfaError
from hub.protocol import Author, MeetingParticipant, MeetingState, encode
from signaling.sfu import (
    BadSessionDescription,
    InvalidSfuState,
    Meeting,
    Participant,
    ParticipantState,
    Sfu,
    SlotDirection,
    TooManyTracks,
    TrackSource,
    VideoCodec,
)

log = logging.getLogger(__name__)

Reply = Callable[[str, dict[str, Any]], Awaitable[None]]
Publish = Callable[[str, str], None]

SOURCES: dict[str, TrackSource] = {
    "mic": TrackSource.MICROPHONE,
    "camera": TrackSource.CAMERA,
    "screen": TrackSource.SCREEN,
}
SOURCE_NAMES: dict[TrackSource, str] = {v: k for k, v in SOURCES.items()}
CODECS = {"vp8": VideoCodec.VP8, "h264": VideoCodec.H264}

OPS = (
    "join", "leave", "answer", "candidate", "publish", "unpublish", "mute_self", "hand",
    "receive", "host_mute", "remove", "admit", "deny", "settings", "end",
)
#: A participant told to rejoin after his connection failed who has not rejoined after this
#: long is taken out of the meeting (``ended``, reason ``left``): his socket is likely gone too.
REJOIN_GRACE_SECONDS = 30.0


def meeting_group(meeting_id: int) -> str:
    return f"meeting.{meeting_id}"


@dataclass
class Member:
    user_id: int
    name: str
    host: bool
    reply_to: str
    receive_video: bool
    participant: Participant | None = None
    #: Bumped for every new server-side peer; callbacks of an older one are ignored.
    generation: int = 0
    hand: bool = False
    muted: set[str] = field(default_factory=set)
    #: Sources to publish on each new server-side peer (join, admission, rejoin).
    publish: tuple[str, ...] = ()


@dataclass
class LiveMeeting:
    id: int
    room_id: int
    sfu_meeting: Meeting
    locked: bool
    lobby: bool
    members: dict[int, Member] = field(default_factory=dict)
    waiting: dict[int, Member] = field(default_factory=dict)
    host_muted: set[tuple[int, str]] = field(default_factory=set)
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    runner: asyncio.Task[None] | None = None
    state_scheduled: bool = False

    def empty(self) -> bool:
        return not self.members and not self.waiting


class MeetingEngine:
    """Runs the meetings of one SFU.

    Guarantees: every participant who leaves, is removed, fails or is
    replaced has his server-side peer connection closed; a meeting whose
    last participant is gone is closed on the SFU; :meth:`close` closes all.
    """

    def __init__(
        self,
        sfu: Sfu,
        *,
        reply: Reply,
        publish: Publish,
        max_participants: int = 50,
        rejoin_grace: float = REJOIN_GRACE_SECONDS,
    ) -> None:
        self.sfu = sfu
        self._rejoin_grace = rejoin_grace
        self._reply = reply
        self._publish = publish
        self._max_participants = max_participants
        self._meetings: dict[int, LiveMeeting] = {}
        self._closed = False

    # ------------------------------------------------------------ intake

    @property
    def load(self) -> int:
        """Participants on this engine (what placement balances)."""
        return sum(len(m.members) for m in self._meetings.values())

    def meeting_ids(self) -> tuple[int, ...]:
        return tuple(self._meetings)

    def submit(self, command: dict[str, Any]) -> None:
        """Queue a command; commands of one meeting run in order. Never blocks."""
        if self._closed:
            return
        meeting_id = int(command["meeting"])
        live = self._meetings.get(meeting_id)
        if live is None:
            if command.get("op") != "join":
                self._spawn_detached(self._error(command, ErrorCode.NO_SESSION, "You are not in this meeting."))
                return
            codec = CODECS.get(str(command.get("video_codec", "vp8")), VideoCodec.VP8)
            live = LiveMeeting(
                id=meeting_id,
                room_id=int(command["room"]),
                sfu_meeting=self.sfu.meeting(str(meeting_id), video_codec=codec),
                locked=bool(command.get("locked")),
                lobby=bool(command.get("lobby")),
            )
            live.sfu_meeting.on_active_speaker = lambda _uid, lm=live: self._state_changed(lm)
            self._meetings[meeting_id] = live
            live.runner = asyncio.get_running_loop().create_task(
                self._run(live), name=f"meeting-{meeting_id}"
            )
        live.queue.put_nowait(command)

    def _spawn_detached(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)

    async def _run(self, live: LiveMeeting) -> None:
        while True:
            command = await live.queue.get()
            try:
                await self._handle(live, command)
            except HirfaError as exc:
                await self._error(command, exc.code, exc.message)
            except Exception:
                log.exception("meeting %s: command %s failed", live.id, command.get("op"))
                await self._error(command, ErrorCode.INTERNAL_ERROR, "Something went wrong on the server.")
            if live.empty() and live.queue.empty():
                await self._close_meeting(live)
                return

    async def _error(self, command: dict[str, Any], code: ErrorCode, message: str) -> None:
        reply_to = command.get("reply_to")
        if reply_to:
            await self._send(
                str(reply_to),
                {"kind": "error", "code": code.value, "message": message, "ref": command.get("ref")},
            )

    async def _send(self, reply_to: str, event: dict[str, Any]) -> None:
        try:
            await self._reply(reply_to, event)
        except Exception:  # a socket gone or a full channel: the bus is best-effort
            log.warning("reply %s to %s failed", event.get("kind"), reply_to, exc_info=True)

    # ------------------------------------------------------------ commands

    async def _handle(self, live: LiveMeeting, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "join":
            await self._join(live, command)
            return
        if op == "leave":
            await self._leave(live, command)
            return
        if op == "expire":  # internal: queued by _failed once the rejoin grace is over
            await self._expire(live, command)
            return
        member = self._member(live, command)
        if op == "answer":
            participant = self._participant(member)
            try:
                await participant.apply_answer(str(command["sdp"]), revision=int(command["revision"]))
            except BadSessionDescription:
                # The offer is withdrawn: make a fresh one so the participant can try again.
                self._negotiate_soon(live, member, participant)
                raise HirfaError(ErrorCode.INVALID_SDP, "The answer was refused.") from None
            except InvalidSfuState:
                raise HirfaError(ErrorCode.CONFLICT, "No offer with that revision is pending.") from None
        elif op == "candidate":
            participant = self._participant(member)
            mid = command.get("sdp_mid")
            if mid is None and command.get("sdp_mline_index") is not None:
                mid = str(command["sdp_mline_index"])
            try:
                await participant.add_ice_candidate(command.get("candidate"), sdp_mid=mid)
            except BadSessionDescription:
                raise HirfaError(ErrorCode.INVALID_SDP, "The ICE candidate was refused.") from None
        elif op == "publish":
            participant = self._participant(member)
            try:
                participant.publish(_source(command))
            except TooManyTracks as exc:
                raise HirfaError(ErrorCode.TOO_MANY_TRACKS, _tracks_message(exc)) from None
            self._state_changed(live)
        elif op == "unpublish":
            participant = self._participant(member)
            try:
                participant.unpublish(_source(command))
            except InvalidSfuState:
                raise HirfaError(ErrorCode.INVALID, "That source is not published.") from None
            self._state_changed(live)
        elif op == "mute_self":
            name = SOURCE_NAMES[_source(command)]
            (member.muted.add if command.get("muted") else member.muted.discard)(name)
            self._state_changed(live)
        elif op == "hand":
            member.hand = bool(command.get("up"))
            self._state_changed(live)
        elif op == "receive":
            member.receive_video = bool(command.get("video"))
            if member.participant is not None:
                member.participant.set_receive_video(member.receive_video)
        elif op == "host_mute":
            target = self._target(live, command)
            source = _source(command)
            key = (target.user_id, SOURCE_NAMES[source])
            muted = bool(command.get("muted"))
            (live.host_muted.add if muted else live.host_muted.discard)(key)
            if target.participant is not None:
                live.sfu_meeting.set_muted(str(target.user_id), source, muted)
            self._state_changed(live)
        elif op == "remove":
            target = self._target(live, command)
            await self._drop_member(live, target)
            await self._send(target.reply_to, {"kind": "ended", "reason": "removed"})
            self._state_changed(live)
        elif op in ("admit", "deny"):
            waiter = live.waiting.pop(int(command.get("target") or 0), None)
            if waiter is None:
                raise HirfaError(ErrorCode.INVALID, "Nobody by that id waits in the lobby.")
            if op == "admit":
                await self._enter(live, waiter, ref=None)
            else:
                await self._send(waiter.reply_to, {"kind": "ended", "reason": "denied"})
                self._state_changed(live)
        elif op == "settings":
            if command.get("locked") is not None:
                live.locked = bool(command["locked"])
            if command.get("lobby") is not None:
                live.lobby = bool(command["lobby"])
                if not live.lobby:
                    for waiter in list(live.waiting.values()):
                        del live.waiting[waiter.user_id]
                        await self._enter(live, waiter, ref=None)
            self._state_changed(live)
        elif op == "end":
            for gone in [*live.members.values(), *live.waiting.values()]:
                await self._drop_member(live, gone)
                live.waiting.pop(gone.user_id, None)
                await self._send(gone.reply_to, {"kind": "ended", "reason": "ended"})
        else:
            raise HirfaError(ErrorCode.INVALID, f"Unknown meeting command {str(op)[:32]!r}.")

    def _member(self, live: LiveMeeting, command: dict[str, Any]) -> Member:
        member = live.members.get(int(command.get("user") or 0))
        if member is None or member.reply_to != command.get("reply_to"):
            raise HirfaError(ErrorCode.NO_SESSION, "You are not in this meeting.")
        return member

    def _participant(self, member: Member) -> Participant:
        if member.participant is None or member.participant.state is ParticipantState.CLOSED:
            raise HirfaError(ErrorCode.NO_SESSION, "Your media session is gone; join again.")
        return member.participant

    def _target(self, live: LiveMeeting, command: dict[str, Any]) -> Member:
        target = live.members.get(int(command.get("target") or 0))
        if target is None:
            raise HirfaError(ErrorCode.INVALID, "Nobody by that id is in the meeting.")
        return target

    async def _join(self, live: LiveMeeting, command: dict[str, Any]) -> None:
        user_id = int(command["user"])
        reply_to = str(command["reply_to"])
        ref = command.get("ref")
        member = live.members.get(user_id) or live.waiting.get(user_id)
        if member is not None:
            if member.reply_to != reply_to:
                await self._send(member.reply_to, {"kind": "ended", "reason": "replaced"})
            # His old peer stays in the SFU until the new one takes its place (_enter), so
            # the others' m-lines carrying him are kept: nobody else renegotiates.
            await self._close_session(live, member, keep_place=user_id in live.members)
            member.reply_to = reply_to
            member.host = bool(command.get("host"))
            member.receive_video = bool(command.get("receive_video", True))
        else:
            if len(live.members) >= self._max_participants:
                raise HirfaError(ErrorCode.FORBIDDEN, "The meeting is full.")
            member = Member(
                user_id=user_id,
                name=str(command.get("name") or user_id),
                host=bool(command.get("host")),
                reply_to=reply_to,
                receive_video=bool(command.get("receive_video", True)),
            )
        member.publish = tuple(command.get("publish") or ())
        if user_id not in live.members and command.get("must_wait") and live.lobby and not member.host:
            live.waiting[user_id] = member
            await self._send(reply_to, {"kind": "lobby", "ref": ref})
            self._state_changed(live)
            return
        live.waiting.pop(user_id, None)
        await self._enter(live, member, ref=ref)

    async def _enter(self, live: LiveMeeting, member: Member, *, ref: str | None) -> None:
        """Give ``member`` a new server-side peer and announce him."""
        live.members[member.user_id] = member
        await self._send(member.reply_to, {"kind": "joined", "ref": ref, "host": member.host})
        member.generation += 1
        generation = member.generation

        def negotiation_needed(participant: Participant) -> None:
            if member.generation == generation:
                self._negotiate_soon(live, member, participant)

        def state_changed(participant: Participant, state: ParticipantState) -> None:
            if member.generation != generation:
                return
            # Our own closes bump the generation first: a close seen here came from the
            # other side (its DTLS close_notify makes aiortc close the peer) and is a failure.
            if state in (ParticipantState.FAILED, ParticipantState.CLOSED):
                self._spawn(live, self._failed(live, member, generation))
            else:
                self._state_changed(live)

        participant = await live.sfu_meeting.join(
            str(member.user_id),
            on_negotiation_needed=negotiation_needed,
            on_state_change=state_changed,
            receive_video=member.receive_video,
            replace=True,
        )
        member.participant = participant
        for user_id, name in live.host_muted:
            if user_id == member.user_id:
                live.sfu_meeting.set_muted(str(user_id), SOURCES[name], True)
        # A replaced peer's publications were carried over: keep what he still publishes.
        carried = live.sfu_meeting.publishes(str(member.user_id))
        wanted = {SOURCES[str(name)] for name in member.publish if str(name) in SOURCES}
        for source in carried - wanted:
            participant.unpublish(source)
        for name in member.publish:
            if SOURCES.get(str(name)) in carried:
                continue
            try:
                participant.publish(SOURCES[str(name)])
            except TooManyTracks as exc:
                await self._send(
                    member.reply_to,
                    {"kind": "error", "code": ErrorCode.TOO_MANY_TRACKS.value, "message": _tracks_message(exc), "ref": ref},
                )
        self._state_changed(live)

    async def _leave(self, live: LiveMeeting, command: dict[str, Any]) -> None:
        user_id = int(command["user"])
        member = live.members.get(user_id) or live.waiting.get(user_id)
        if member is None or member.reply_to != command.get("reply_to"):
            return  # already gone, or replaced by another socket: nothing to do
        await self._drop_member(live, member)
        self._state_changed(live)

    async def _drop_member(self, live: LiveMeeting, member: Member) -> None:
        live.members.pop(member.user_id, None)
        live.waiting.pop(member.user_id, None)
        live.host_muted = {key for key in live.host_muted if key[0] != member.user_id}
        await self._close_session(live, member)

    async def _close_session(self, live: LiveMeeting, member: Member, *, keep_place: bool = False) -> None:
        """Forget the member's peer; unless ``keep_place`` (a new peer replaces it), close it."""
        member.generation += 1
        participant, member.participant = member.participant, None
        if keep_place:
            return
        # Even a peer whose connection already closed is still registered in the meeting.
        if participant is not None and participant in live.sfu_meeting.participants():
            try:
                await live.sfu_meeting.leave(str(member.user_id))
            except Exception:
                log.warning("closing the peer of %s failed", member.user_id, exc_info=True)

    async def _failed(self, live: LiveMeeting, member: Member, generation: int) -> None:
        if member.generation != generation or live.members.get(member.user_id) is not member:
            return
        await self._close_session(live, member)
        await self._send(member.reply_to, {"kind": "rejoin", "reason": "connection_failed"})
        self._state_changed(live)
        self._spawn(live, self._expire_later(live, member.user_id, member.generation))

    async def _expire_later(self, live: LiveMeeting, user_id: int, generation: int) -> None:
        await asyncio.sleep(self._rejoin_grace)
        if self._meetings.get(live.id) is live:
            live.queue.put_nowait({"op": "expire", "meeting": live.id, "user": user_id, "generation": generation})

    async def _expire(self, live: LiveMeeting, command: dict[str, Any]) -> None:
        member = live.members.get(int(command["user"]))
        if member is None or member.generation != command["generation"] or member.participant is not None:
            return  # rejoined (or left) meanwhile
        await self._drop_member(live, member)
        await self._send(member.reply_to, {"kind": "ended", "reason": "left"})
        self._state_changed(live)

    # ------------------------------------------------------------ negotiation

    def _negotiate_soon(self, live: LiveMeeting, member: Member, participant: Participant) -> None:
        self._spawn(live, self._negotiate(member, participant, member.generation))

    async def _negotiate(self, member: Member, participant: Participant, generation: int) -> None:
        if member.generation != generation or participant.state is ParticipantState.CLOSED:
            return
        try:
            offer = await participant.create_offer()
        except InvalidSfuState:
            return  # closed meanwhile, or an offer is pending (the answer triggers the next)
        if member.generation != generation:
            return
        mlines = [
            {
                "mid": slot.mid,
                "kind": slot.kind.value,
                "direction": "publish" if slot.direction is SlotDirection.PUBLISH else "subscribe",
                "user": int(slot.publisher_id) if slot.publisher_id is not None else None,
                "source": SOURCE_NAMES[slot.source] if slot.source is not None else None,
            }
            for slot in offer.slots
        ]
        await self._send(
            member.reply_to,
            {"kind": "offer", "sdp": offer.sdp, "revision": offer.revision, "mlines": mlines},
        )

    def _spawn(self, live: LiveMeeting, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------ state

    def _state_changed(self, live: LiveMeeting) -> None:
        """Publish the meeting's state once the current burst of changes is over."""
        if live.state_scheduled or live.id not in self._meetings:
            return
        live.state_scheduled = True
        asyncio.get_running_loop().call_soon(self._publish_state, live)

    def state_frame(self, live: LiveMeeting) -> MeetingState:
        participants = []
        for member in live.members.values():
            participant = member.participant
            tracks = (
                sorted(SOURCE_NAMES[t.source] for t in participant.snapshot().published)
                if participant is not None and participant.state is not ParticipantState.CLOSED
                else []
            )
            participants.append(
                MeetingParticipant(
                    user=Author(id=member.user_id, name=member.name),
                    host=member.host,
                    hand=member.hand,
                    tracks=tracks,
                    muted=sorted(member.muted),
                    host_muted=sorted(s for u, s in live.host_muted if u == member.user_id),
                    connected=participant is not None and participant.state is ParticipantState.CONNECTED,
                )
            )
        speaker = live.sfu_meeting.active_speaker
        return MeetingState(
            meeting=live.id,
            room=live.room_id,
            locked=live.locked,
            lobby=live.lobby,
            active_speaker=int(speaker) if speaker is not None and int(speaker) in live.members else None,
            hosts=sorted(m.user_id for m in live.members.values() if m.host),
            participants=participants,
            waiting=[Author(id=w.user_id, name=w.name) for w in live.waiting.values()],
        )

    def _publish_state(self, live: LiveMeeting) -> None:
        live.state_scheduled = False
        if live.id not in self._meetings:
            return
        try:
            self._publish(meeting_group(live.id), encode(self.state_frame(live)))
        except Exception:
            log.exception("publishing the state of meeting %s failed", live.id)

    # ------------------------------------------------------------ teardown

    async def _close_meeting(self, live: LiveMeeting) -> None:
        if self._meetings.get(live.id) is live:
            del self._meetings[live.id]
        for task in list(live.tasks):
            task.cancel()
        try:
            await self.sfu.close_meeting(str(live.id))
        except Exception:
            # Usually UnknownMeeting (already closed); closing must finish whatever it was.
            log.debug("meeting %s already closed on the SFU", live.id, exc_info=True)

    async def close(self) -> None:
        """Close every meeting and its peer connections; later commands are ignored."""
        self._closed = True
        for live in list(self._meetings.values()):
            if live.runner is not None:
                live.runner.cancel()
            for member in [*live.members.values(), *live.waiting.values()]:
                await self._close_session(live, member)
            await self._close_meeting(live)
        await self.sfu.close()


def _source(command: dict[str, Any]) -> TrackSource:
    try:
        return SOURCES[str(command.get("source"))]
    except KeyError:
        raise HirfaError(ErrorCode.INVALID, "Unknown source.") from None


def _tracks_message(exc: Exception) -> str:
    return "You already publish that source, or as many sources as allowed."


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("meeting task failed", exc_info=task.exception())
