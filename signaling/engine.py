"""Meetings on an SFU, driven by commands: the one code path of both placements.

The hub consumer never touches the SFU. It sends commands (frozen models of
``signaling.messages``) to a :class:`MeetingEngine`, in-process in the embedded default
or in a ``hirfa sfu`` worker through the channel layer (``signaling.placement``),
and gets events back at its ``reply_to`` address:

- ``joined`` / ``lobby`` — the participant is in, or waits for a host;
- ``offer`` — a server offer (``sdp``, ``revision``, ``mlines``);
- ``error`` — a refused command (``code``, ``message`` marked for translation, ``ref``);
- ``ended`` — the participant is out (``reason``: removed, replaced, ended, denied, or
  left when he did not rejoin within the rejoin grace after a failure);
- ``rejoin`` — his media session is gone (``reason``: connection_failed: his peer
  connection failed, was closed from his side, or was not connected within
  ``connect_timeout`` of being made — its UDP ports are released then);
- ``reception`` — what his own connection carries (each video's layer or "paused",
  audio-only), each time the SFU's allocator changes it.

A peer that cannot get a UDP port (the range is full) answers ``error``
(``sfu_unavailable``) and ``ended`` (``left``) instead of an offer.

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
import collections
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, cast

from django.utils.translation import gettext_noop

from hub.errors import ErrorCode, HirfaError
from hub.protocol import Author, MeetingParticipant, MeetingState
from signaling import messages as m
from signaling.models import recording_directory
from signaling.sfu import (
    PIPE_KEY_SIZE,
    BadSessionDescription,
    InvalidSfuState,
    MediaKind,
    Meeting,
    NoFreePort,
    Participant,
    ParticipantState,
    Reception,
    Sfu,
    SlotDirection,
    TooManyTracks,
    TrackSlot,
    TrackSource,
    VideoCodec,
)
from signaling.spread import PeerBus

log = logging.getLogger(__name__)

Reply = Callable[[str, m.Event], Awaitable[None]]
Publish = Callable[[str, MeetingState], None]

SOURCES: dict[m.Source, TrackSource] = {
    "mic": TrackSource.MICROPHONE,
    "camera": TrackSource.CAMERA,
    "screen": TrackSource.SCREEN,
    "camera2": TrackSource.CAMERA2,
}
SOURCE_NAMES: dict[TrackSource, m.Source] = {v: k for k, v in SOURCES.items()}
CODECS: dict[m.Codec, VideoCodec] = {"vp8": VideoCodec.VP8, "h264": VideoCodec.H264}
TOO_MANY_TRACKS = gettext_noop("You already publish that source, or as many sources as allowed.")
NOT_ALLOWED_TO_SPEAK = gettext_noop("A presenter has not let you speak yet: raise your hand.")
PRESENTERS_ONLY = gettext_noop("Only a masterclass's presenters and hosts may show a second camera.")
NO_FREE_PORT = gettext_noop("The video server has no free connection; try again in a moment.")

#: Replies handed to the bus at once (the others wait in their queues): a worker's Redis pool
#: has 100 connections (hub/channel_layer.py), and its own read of its channel needs one.
REPLIES_IN_FLIGHT = 32
#: A participant told to rejoin after his connection failed who has not rejoined after this
#: long is taken out of the meeting (``ended``, reason ``left``): his socket is likely gone too.
REJOIN_GRACE_SECONDS = 30.0
#: A participant whose peer is not connected this long after it was made is treated as
#: failed (peer and UDP ports released, told to rejoin): an unanswered join holds nothing.
CONNECT_TIMEOUT_SECONDS = 20.0


def _may_speak(live: LiveMeeting, member: Member) -> bool:
    """Whether ``member`` may publish: anyone but a masterclass's listener not let speak."""
    return not member.listener or member.user_id in live.speakers


def _may_publish(live: LiveMeeting, member: Member, source: m.Source) -> bool:
    """Whether ``member`` may publish ``source`` now (`_may_speak`; a second camera: a
    masterclass's presenters and hosts only)."""
    if source == "camera2" and not (live.masterclass and (member.presenter or member.host)):
        return False
    return _may_speak(live, member)


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
    #: His video slots when fewer than the server's (a phone), else None.
    video_slots: int | None = None
    #: Bumped for every new server-side peer; callbacks of an older one are ignored.
    generation: int = 0
    hand: bool = False
    muted: set[m.Source] = field(default_factory=set)
    #: Sources to publish on each new server-side peer (join, admission, rejoin).
    publish: tuple[m.Source, ...] = ()
    #: False: he chose not to be recorded.
    recorded: bool = True
    #: A masterclass's presenter: he lets listeners speak.
    presenter: bool = False
    #: A masterclass's listener: he publishes nothing unless let speak (`LiveMeeting.speakers`).
    listener: bool = False


@dataclass(frozen=True)
class _Expire:
    """Internal: queued by `_failed` once the rejoin grace is over."""

    user: int
    generation: int


@dataclass(frozen=True)
class _ConnectDeadline:
    """Internal: queued `connect_timeout` after a peer was made; a peer not connected by
    then is let go."""

    user: int
    generation: int


@dataclass(frozen=True)
class _NoFreePort:
    """Internal: queued when a peer's offer found no free UDP port."""

    user: int
    generation: int


@dataclass(frozen=True)
class _FromPeer:
    """Internal: a host's act on another worker of the meeting, for this worker's part
    (`m.PeerCommand`), run in the meeting's order as his commands are."""

    command: m.HostCommand


_Internal = _Expire | _ConnectDeadline | _NoFreePort | _FromPeer


@dataclass(frozen=True)
class EngineStats:
    """What an engine holds now (its worker's heartbeat; ``hirfa sfu --status``)."""

    meetings: int
    participants: int
    #: UDP media ports its peers hold open (the process's, see `Sfu.ports_in_use`).
    ports: int


@dataclass
class LiveMeeting:
    id: int
    room_id: int
    sfu_meeting: Meeting
    locked: bool
    lobby: bool
    members: dict[int, Member] = field(default_factory=dict)
    waiting: dict[int, Member] = field(default_factory=dict)
    host_muted: set[tuple[int, m.Source]] = field(default_factory=set)
    #: Held as a masterclass (from the joins): its presenters and hosts may show a second camera.
    masterclass: bool = False
    #: The masterclass's listeners let speak (user ids), until stopped or gone.
    speakers: set[int] = field(default_factory=set)
    queue: asyncio.Queue[m.Command | _Internal] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    runner: asyncio.Task[None] | None = None
    state_scheduled: bool = False
    #: The recording running (its id in the database), written by the SFU's recorder.
    recording: int | None = None
    #: Spread over several workers (`signaling.spread`): the other workers holding parts of
    #: it (their pipe addresses), and their participants as they last said.
    peers: dict[str, tuple[str, int]] = field(default_factory=dict)
    parts: dict[str, m.PartState] = field(default_factory=dict)
    #: The secret of each of those pipes (`signaling.sfu.pipe`: its datagrams' tags).
    pipe_keys: dict[str, bytes] = field(default_factory=dict)
    #: Its own participants changed since they were last sent to the other workers.
    part_changed: bool = False
    #: Sockets (``reply_to``) whose leave is queued: nothing they would now receive is sent.
    leaving: collections.Counter[str] = field(default_factory=collections.Counter)

    def empty(self) -> bool:
        return not self.members and not self.waiting

    def remote_ids(self) -> set[int]:
        """Participants on other workers (not here)."""
        return {p.user.id for part in self.parts.values() for p in part.participants} - set(self.members)

    def known_ids(self) -> set[int]:
        """Everyone in the meeting, here or on another worker."""
        return set(self.members) | self.remote_ids()


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
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        peers: PeerBus | None = None,
    ) -> None:
        self.sfu = sfu
        #: Other workers holding parts of the same meetings (None: a meeting lives here whole).
        self._peers = peers
        self._rejoin_grace = rejoin_grace
        self._connect_timeout = connect_timeout
        self._reply = reply
        self._publish = publish
        self._max_participants = max_participants
        self._meetings: dict[int, LiveMeeting] = {}
        self._closed = False
        #: Events waiting for their address's previous ones (`_send`), and the tasks sending them.
        self._outboxes: dict[str, collections.deque[tuple[m.Event, asyncio.Future[None]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._replying = asyncio.Semaphore(REPLIES_IN_FLIGHT)

    # ------------------------------------------------------------ intake

    @property
    def load(self) -> int:
        """Participants on this engine (what placement balances)."""
        return sum(len(m.members) for m in self._meetings.values())

    def meeting_ids(self) -> tuple[int, ...]:
        return tuple(self._meetings)

    def stats(self) -> EngineStats:
        """Meetings, participants and UDP ports held now (the worker's heartbeat)."""
        return EngineStats(meetings=len(self._meetings), participants=self.load, ports=self.sfu.ports_in_use())

    def submit(self, command: m.Command) -> None:
        """Queue a command; commands of one meeting run in order. Never blocks."""
        if self._closed:
            return
        live = self._meetings.get(command.meeting)
        if live is None:
            if not isinstance(command, m.Join):
                self._spawn_detached(
                    self._refuse(command, HirfaError(ErrorCode.NO_SESSION, gettext_noop("You are not in this meeting.")))
                )
                return
            live = LiveMeeting(
                id=command.meeting,
                room_id=command.room,
                sfu_meeting=self.sfu.meeting(str(command.meeting), video_codec=CODECS[command.video_codec]),
                locked=command.locked,
                lobby=command.lobby,
            )
            live.sfu_meeting.on_active_speaker = lambda _uid, lm=live: self._state_changed(lm)
            self._meetings[command.meeting] = live
            live.runner = asyncio.get_running_loop().create_task(
                self._run(live), name=f"meeting-{command.meeting}"
            )
            if self._peers is not None:
                self._spawn(live, self._spread_enter(live, self._peers))
        if isinstance(command, m.Leave):
            # His socket closed (or he left): a meeting's end closes many at once, and each
            # departure handled before his own would send him what his slots now carry.
            live.leaving[command.reply_to] += 1
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
                if not isinstance(command, _Internal):
                    await self._refuse(command, exc)
            except Exception:
                log.exception("meeting %s: command %s failed", live.id, type(command).__name__)
                if not isinstance(command, _Internal):
                    await self._refuse(
                        command, HirfaError(ErrorCode.INTERNAL_ERROR, gettext_noop("Something went wrong on the server."))
                    )
            if isinstance(command, m.Leave):
                live.leaving[command.reply_to] -= 1
                if live.leaving[command.reply_to] <= 0:
                    del live.leaving[command.reply_to]
            if live.empty() and live.queue.empty():
                await self._close_meeting(live)
                return

    async def _refuse(self, command: m.Command, exc: HirfaError) -> None:
        await self._send(
            command.reply_to, m.EngineError(code=exc.code.value, message=exc.message, ref=command.ref), command.meeting
        )

    def _send(self, reply_to: str, event: m.Event, meeting: int) -> asyncio.Future[None]:
        """Hand ``event`` to ``reply_to`` after every event queued for it before; the future
        is done once it was handed over (or that failed: the bus is best-effort).

        One at a time per address: the channel layer's send takes several Redis round trips,
        and two sends at once to one channel can arrive swapped — an offer naming a slot's
        old publisher after the reception that named the new one, which the page then
        believes. Stamped with its meeting: a socket that moved on (to a workshop table)
        drops what its last meeting still had in flight for it.

        A reception is a state, not a change: one waiting last in the queue (not in flight)
        is replaced by a newer one, whose future then stands for both. While Redis is busy
        (a meeting of a hundred emptying: each departure changes everyone's slots) a member
        is sent his latest reception, not each one in turn.

        Nothing is sent once the engine closes (:meth:`close`): each member it closes frees a
        slot of everyone still in, and a worker stopping with a meeting of a hundred sent ~N²/2
        receptions to sockets told to rejoin elsewhere anyway (or already closed)."""
        loop = asyncio.get_running_loop()
        if self._closed:
            done = loop.create_future()
            done.set_result(None)
            return done
        outbox = self._outboxes.get(reply_to)
        if outbox is None:
            outbox = self._outboxes[reply_to] = collections.deque()
            task = loop.create_task(self._drain(reply_to, outbox))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        stamped = event.model_copy(update={"meeting": meeting})
        if isinstance(event, m.Reception) and len(outbox) > 1 and isinstance(outbox[-1][0], m.Reception):
            done = outbox[-1][1]
            outbox[-1] = (stamped, done)
            return done
        done = loop.create_future()
        outbox.append((stamped, done))
        return done

    async def _drain(self, reply_to: str, outbox: collections.deque[tuple[m.Event, asyncio.Future[None]]]) -> None:
        try:
            while outbox:
                event, done = outbox[0]
                try:
                    async with self._replying:
                        await self._reply(reply_to, event)
                except Exception:  # a socket gone or a full channel: the bus is best-effort
                    log.warning("reply %s to %s failed", event.kind, reply_to, exc_info=True)
                outbox.popleft()
                if not done.done():
                    done.set_result(None)
        finally:
            if self._outboxes.get(reply_to) is outbox:
                del self._outboxes[reply_to]
            for _event, left in outbox:
                left.cancel()

    # ------------------------------------------------------------ commands

    async def _handle(self, live: LiveMeeting, command: m.Command | _Internal) -> None:
        if isinstance(command, _Internal):
            await self._internal_handlers[type(command)](self, live, command)
        elif isinstance(command, m.Join):
            await self._join(live, command)
        elif isinstance(command, m.Leave):
            await self._leave(live, command)
        else:
            member = self._member(live, command)
            handler = self._handlers[type(command)]
            await handler(self, live, member, command)

    async def _answer(self, live: LiveMeeting, member: Member, command: m.Answer) -> None:
        participant = self._participant(member)
        try:
            await participant.apply_answer(command.sdp, revision=command.revision)
        except BadSessionDescription:
            # The offer is withdrawn: make a fresh one so the participant can try again.
            self._negotiate_soon(live, member, participant)
            raise HirfaError(ErrorCode.INVALID_SDP, gettext_noop("The answer was refused.")) from None
        except InvalidSfuState:
            raise HirfaError(ErrorCode.CONFLICT, gettext_noop("No offer with that revision is pending.")) from None

    async def _candidate(self, live: LiveMeeting, member: Member, command: m.Candidate) -> None:
        participant = self._participant(member)
        mid = command.sdp_mid
        if mid is None and command.sdp_mline_index is not None:
            mid = str(command.sdp_mline_index)
        try:
            await participant.add_ice_candidate(command.candidate, sdp_mid=mid)
        except BadSessionDescription:
            raise HirfaError(ErrorCode.INVALID_SDP, gettext_noop("The ICE candidate was refused.")) from None

    async def _publish_source(self, live: LiveMeeting, member: Member, command: m.Publish) -> None:
        participant = self._participant(member)
        if not _may_speak(live, member):
            raise HirfaError(ErrorCode.NOT_ALLOWED_TO_SPEAK, NOT_ALLOWED_TO_SPEAK)
        if not _may_publish(live, member, command.source):
            raise HirfaError(ErrorCode.PRESENTERS_ONLY, PRESENTERS_ONLY)
        try:
            participant.publish(SOURCES[command.source])
        except TooManyTracks:
            raise HirfaError(ErrorCode.TOO_MANY_TRACKS, TOO_MANY_TRACKS) from None
        self._state_changed(live)

    async def _unpublish(self, live: LiveMeeting, member: Member, command: m.Unpublish) -> None:
        participant = self._participant(member)
        try:
            participant.unpublish(SOURCES[command.source])
        except InvalidSfuState:
            raise HirfaError(ErrorCode.INVALID, gettext_noop("That source is not published.")) from None
        self._state_changed(live)

    async def _mute_self(self, live: LiveMeeting, member: Member, command: m.MuteSelf) -> None:
        (member.muted.add if command.muted else member.muted.discard)(command.source)
        self._state_changed(live)

    async def _hand(self, live: LiveMeeting, member: Member, command: m.Hand) -> None:
        member.hand = command.up
        self._state_changed(live)

    async def _receive(self, live: LiveMeeting, member: Member, command: m.Receive) -> None:
        member.receive_video = command.video
        if member.participant is not None:
            member.participant.set_receive_video(member.receive_video)

    async def _host_mute(self, live: LiveMeeting, member: Member | None, command: m.HostMute) -> None:
        if command.target not in live.members and member is not None:
            await self._to_part_of(live, command.target, command)
            return
        target = self._target(live, command.target)
        (live.host_muted.add if command.muted else live.host_muted.discard)((target.user_id, command.source))
        if target.participant is not None:
            live.sfu_meeting.set_muted(str(target.user_id), SOURCES[command.source], command.muted)
        self._state_changed(live)

    async def _speak(self, live: LiveMeeting, member: Member | None, command: m.Speak) -> None:
        if member is not None:
            if not (member.host or member.presenter):
                raise HirfaError(ErrorCode.FORBIDDEN, gettext_noop("Only the presenters and hosts may do this."))
            if command.target not in live.members:
                await self._to_part_of(live, command.target, command)
                return
        target = self._target(live, command.target)
        if not target.listener:
            raise HirfaError(ErrorCode.INVALID, gettext_noop("That participant is no listener of the masterclass."))
        target.hand = False
        if command.allowed:
            live.speakers.add(target.user_id)
        else:
            live.speakers.discard(target.user_id)
            self._silence(live, target)
        self._state_changed(live)

    def _silence(self, live: LiveMeeting, member: Member) -> None:
        """Stop forwarding everything ``member`` publishes, at once (his right to speak ended)."""
        participant = member.participant
        if participant is None or participant.state is ParticipantState.CLOSED:
            return
        for source in live.sfu_meeting.publishes(str(member.user_id)):
            participant.unpublish(source)

    async def _remove(self, live: LiveMeeting, member: Member | None, command: m.Remove) -> None:
        if command.target not in live.members and member is not None:
            await self._to_part_of(live, command.target, command)
            return
        target = self._target(live, command.target)
        await self._drop_member(live, target)
        await self._send(target.reply_to, m.Ended(reason="removed"), live.id)
        self._state_changed(live)

    def _waiter(self, live: LiveMeeting, user_id: int) -> Member:
        waiter = live.waiting.pop(user_id, None)
        if waiter is None:
            raise HirfaError(ErrorCode.INVALID, gettext_noop("Nobody by that id waits in the lobby."))
        return waiter

    async def _admit(self, live: LiveMeeting, member: Member | None, command: m.Admit) -> None:
        if command.target not in live.waiting and member is not None:
            await self._to_part_of(live, command.target, command, waiting=True)
            return
        await self._enter(live, self._waiter(live, command.target), ref=None)

    async def _deny(self, live: LiveMeeting, member: Member | None, command: m.Deny) -> None:
        if command.target not in live.waiting and member is not None:
            await self._to_part_of(live, command.target, command, waiting=True)
            return
        waiter = self._waiter(live, command.target)
        await self._send(waiter.reply_to, m.Ended(reason="denied"), live.id)
        self._state_changed(live)

    async def _settings(self, live: LiveMeeting, member: Member | None, command: m.Settings) -> None:
        if member is not None:
            await self._to_every_part(live, command)
        if command.locked is not None:
            live.locked = command.locked
        if command.lobby is not None:
            live.lobby = command.lobby
            if not live.lobby:
                for waiter in list(live.waiting.values()):
                    del live.waiting[waiter.user_id]
                    await self._enter(live, waiter, ref=None)
        self._state_changed(live)

    async def _pin(self, live: LiveMeeting, member: Member, command: m.Pin) -> None:
        if command.target is not None and command.target not in live.known_ids():
            raise HirfaError(ErrorCode.INVALID, gettext_noop("Nobody by that id is in the meeting."))
        self._participant(member).pin(str(command.target) if command.target is not None else None)

    async def _retry_video(self, live: LiveMeeting, member: Member, command: m.RetryVideo) -> None:
        self._participant(member).retry_video()

    async def _record(self, live: LiveMeeting, member: Member, command: m.Record) -> None:
        if not member.host:
            raise HirfaError(ErrorCode.FORBIDDEN, gettext_noop("Only the meeting's hosts may do this."))
        if command.recording is None:
            await self._recording_stop(live)
        else:
            self._recording_start(live, command.recording)
        self._state_changed(live)

    def _recording_start(self, live: LiveMeeting, recording_id: int) -> None:
        if live.recording == recording_id:
            return
        if live.recording is not None:
            raise HirfaError(ErrorCode.CONFLICT, gettext_noop("The meeting is already being recorded."))
        excluded = frozenset(str(u) for u, w in live.members.items() if not w.recorded)
        live.sfu_meeting.start_recording(recording_directory(recording_id), excluded=excluded)
        live.recording = recording_id

    async def _recording_stop(self, live: LiveMeeting) -> None:
        live.recording = None
        await live.sfu_meeting.stop_recording()

    async def _recorded(self, live: LiveMeeting, member: Member, command: m.Recorded) -> None:
        member.recorded = command.recorded
        live.sfu_meeting.set_recorded(str(member.user_id), command.recorded)
        self._state_changed(live)

    async def _end(self, live: LiveMeeting, member: Member | None, command: m.End) -> None:
        if member is not None:
            await self._to_every_part(live, command)
        for gone in [*live.members.values(), *live.waiting.values()]:
            await self._drop_member(live, gone)
            live.waiting.pop(gone.user_id, None)
            await self._send(gone.reply_to, m.Ended(reason="ended"), live.id)

    #: The commands of a member in the meeting, by type (join and leave are handled above).
    _handlers: dict[type[Any], Callable[[MeetingEngine, LiveMeeting, Member, Any], Awaitable[None]]] = {
        m.Answer: _answer,
        m.Candidate: _candidate,
        m.Publish: _publish_source,
        m.Unpublish: _unpublish,
        m.MuteSelf: _mute_self,
        m.Hand: _hand,
        m.Receive: _receive,
        m.HostMute: _host_mute,
        m.Remove: _remove,
        m.Admit: _admit,
        m.Deny: _deny,
        m.Settings: _settings,
        m.End: _end,
        m.Pin: _pin,
        m.RetryVideo: _retry_video,
        m.Record: _record,
        m.Recorded: _recorded,
        m.Speak: _speak,
    }

    #: A host's acts that another worker of the meeting may pass on (`_from_peer`): ``None``
    #: for the member, done on this worker's part only.
    _host_handlers: dict[type[Any], Callable[[MeetingEngine, LiveMeeting, Member | None, Any], Awaitable[None]]] = {
        m.HostMute: _host_mute,
        m.Remove: _remove,
        m.Admit: _admit,
        m.Deny: _deny,
        m.Settings: _settings,
        m.End: _end,
        m.Speak: _speak,
    }

    def _member(self, live: LiveMeeting, command: m.Command) -> Member:
        member = live.members.get(command.user)
        if member is None or member.reply_to != command.reply_to:
            raise HirfaError(ErrorCode.NO_SESSION, gettext_noop("You are not in this meeting."))
        return member

    def _participant(self, member: Member) -> Participant:
        if member.participant is None or member.participant.state is ParticipantState.CLOSED:
            raise HirfaError(ErrorCode.NO_SESSION, gettext_noop("Your media session is gone; join again."))
        return member.participant

    def _target(self, live: LiveMeeting, user_id: int) -> Member:
        target = live.members.get(user_id)
        if target is None:
            raise HirfaError(ErrorCode.INVALID, gettext_noop("Nobody by that id is in the meeting."))
        return target

    async def _join(self, live: LiveMeeting, command: m.Join) -> None:
        user_id = command.user
        reply_to = command.reply_to
        member = live.members.get(user_id) or live.waiting.get(user_id)
        resumable = command.resume and member is not None and live.members.get(user_id) is member
        if resumable and member is not None and await self._resume(live, member, command):
            return
        if member is not None:
            if member.reply_to != reply_to:
                await self._send(member.reply_to, m.Ended(reason="replaced"), live.id)
            # His old peer stays in the SFU until the new one takes its place (_enter), so
            # the others' m-lines carrying him are kept: nobody else renegotiates.
            await self._close_session(live, member, keep_place=user_id in live.members)
            member.reply_to = reply_to
            member.host = command.host
            member.receive_video = command.receive_video
            member.video_slots = command.video_slots
        else:
            # The whole meeting's, on every worker holding a part of it (as their part states
            # last said: two joins at once on two workers may both pass).
            if len(live.known_ids() - {user_id}) >= self._max_participants:
                raise HirfaError(ErrorCode.FORBIDDEN, gettext_noop("The meeting is full."))
            member = Member(
                user_id=user_id,
                name=command.name or str(user_id),
                host=command.host,
                reply_to=reply_to,
                receive_video=command.receive_video,
                video_slots=command.video_slots,
            )
        member.publish = command.publish
        member.recorded = command.recorded
        member.presenter = command.presenter
        member.listener = command.listener
        live.masterclass = live.masterclass or command.masterclass
        if command.recording is not None and live.recording is None:
            self._recording_start(live, command.recording)
        if user_id not in live.members and command.must_wait and live.lobby and not member.host:
            live.waiting[user_id] = member
            await self._send(reply_to, m.Lobby(ref=command.ref), live.id)
            self._state_changed(live)
            return
        live.waiting.pop(user_id, None)
        await self._enter(live, member, ref=command.ref)

    async def _resume(self, live: LiveMeeting, member: Member, command: m.Join) -> bool:
        """Keep ``member``'s live peer and restart its ICE; False when it is gone (join anew).

        His network changed: from his (possibly new) socket he gets ``Joined(resumed)`` and
        then an offer with new ICE credentials on the connection he has. The peer, what he
        publishes and the others' m-lines carrying him stay: nobody else is offered anything.
        """
        participant = member.participant
        if participant is None or participant.state in (ParticipantState.FAILED, ParticipantState.CLOSED):
            return False
        if member.reply_to != command.reply_to:
            await self._send(member.reply_to, m.Ended(reason="replaced"), live.id)
            member.reply_to = command.reply_to
        member.host = command.host
        await self._send(member.reply_to, m.Joined(ref=command.ref, host=member.host, resumed=True), live.id)
        participant.restart_ice()
        self._state_changed(live)
        return True

    async def _enter(self, live: LiveMeeting, member: Member, *, ref: str | None) -> None:
        """Give ``member`` a new server-side peer and announce him."""
        live.members[member.user_id] = member
        await self._send(member.reply_to, m.Joined(ref=ref, host=member.host), live.id)
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

        def reception_changed(participant: Participant, reception: Reception) -> None:
            if member.generation == generation and member.reply_to not in live.leaving:
                self._send(member.reply_to, reception_event(reception, live.known_ids()), live.id)

        # Before his peer exists: nothing of his is written unless he agreed.
        live.sfu_meeting.set_recorded(str(member.user_id), member.recorded)
        live.sfu_meeting.set_presenter(str(member.user_id), member.presenter)
        participant = await live.sfu_meeting.join(
            str(member.user_id),
            on_negotiation_needed=negotiation_needed,
            on_state_change=state_changed,
            receive_video=member.receive_video,
            video_slots=member.video_slots,
            replace=True,
            on_reception=reception_changed,
        )
        member.participant = participant
        self._spawn(live, self._queue_later(live, self._connect_timeout, _ConnectDeadline(member.user_id, generation)))
        for user_id, name in live.host_muted:
            if user_id == member.user_id:
                live.sfu_meeting.set_muted(str(user_id), SOURCES[name], True)
        # A replaced peer's publications were carried over: keep what he still publishes.
        carried = live.sfu_meeting.publishes(str(member.user_id))
        wanted = {SOURCES[name] for name in member.publish if _may_publish(live, member, name)}
        for source in carried - wanted:
            participant.unpublish(source)
        for name in member.publish:
            if SOURCES[name] in carried or SOURCES[name] not in wanted:
                continue
            try:
                participant.publish(SOURCES[name])
            except TooManyTracks:
                await self._send(
                    member.reply_to,
                    m.EngineError(code=ErrorCode.TOO_MANY_TRACKS.value, message=TOO_MANY_TRACKS, ref=ref),
                    live.id,
                )
        self._state_changed(live)

    async def _leave(self, live: LiveMeeting, command: m.Leave) -> None:
        member = live.members.get(command.user) or live.waiting.get(command.user)
        if member is None or member.reply_to != command.reply_to:
            return  # already gone, or replaced by another socket: nothing to do
        await self._drop_member(live, member)
        self._state_changed(live)

    async def _drop_member(self, live: LiveMeeting, member: Member) -> None:
        live.members.pop(member.user_id, None)
        live.waiting.pop(member.user_id, None)
        live.host_muted = {key for key in live.host_muted if key[0] != member.user_id}
        live.speakers.discard(member.user_id)
        live.sfu_meeting.set_presenter(str(member.user_id), False)
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
        await self._send(member.reply_to, m.Rejoin(reason="connection_failed"), live.id)
        self._state_changed(live)
        self._spawn(live, self._queue_later(live, self._rejoin_grace, _Expire(member.user_id, member.generation)))

    async def _queue_later(self, live: LiveMeeting, delay: float, command: _Internal) -> None:
        await asyncio.sleep(delay)
        self._queue_internal(live, command)

    def _queue_internal(self, live: LiveMeeting, command: _Internal) -> None:
        if self._meetings.get(live.id) is live:
            live.queue.put_nowait(command)

    async def _expire(self, live: LiveMeeting, command: _Expire) -> None:
        member = live.members.get(command.user)
        if member is None or member.generation != command.generation or member.participant is not None:
            return  # rejoined (or left) meanwhile
        await self._drop_member(live, member)
        await self._send(member.reply_to, m.Ended(reason="left"), live.id)
        self._state_changed(live)

    async def _connect_deadline(self, live: LiveMeeting, command: _ConnectDeadline) -> None:
        member = live.members.get(command.user)
        if member is None or member.generation != command.generation or member.participant is None:
            return  # a newer peer, or gone
        if member.participant.state in (ParticipantState.NEW, ParticipantState.CONNECTING):
            log.info("meeting %s: %s not connected after %ss; let go", live.id, member.user_id, self._connect_timeout)
            await self._failed(live, member, command.generation)

    async def _no_free_port(self, live: LiveMeeting, command: _NoFreePort) -> None:
        member = live.members.get(command.user)
        if member is None or member.generation != command.generation:
            return
        await self._drop_member(live, member)
        await self._send(member.reply_to, m.EngineError(code=ErrorCode.SFU_UNAVAILABLE.value, message=NO_FREE_PORT), live.id)
        await self._send(member.reply_to, m.Ended(reason="left"), live.id)
        self._state_changed(live)

    async def _from_peer(self, live: LiveMeeting, command: _FromPeer) -> None:
        # No member: done on this part only (a refusal, say nobody by that id is here any
        # more, goes nowhere; the host's worker answered him already).
        await self._host_handlers[type(command.command)](self, live, None, command.command)

    #: What the engine queues for itself, by type (run in the meeting's order like commands).
    _internal_handlers: dict[type[Any], Callable[[MeetingEngine, LiveMeeting, Any], Awaitable[None]]] = {
        _Expire: _expire,
        _ConnectDeadline: _connect_deadline,
        _NoFreePort: _no_free_port,
        _FromPeer: _from_peer,
    }

    # ------------------------------------------------------------ negotiation

    def _negotiate_soon(self, live: LiveMeeting, member: Member, participant: Participant) -> None:
        self._spawn(live, self._negotiate(live, member, participant, member.generation))

    async def _negotiate(self, live: LiveMeeting, member: Member, participant: Participant, generation: int) -> None:
        if member.generation != generation or participant.state is ParticipantState.CLOSED:
            return
        try:
            offer = await participant.create_offer()
        except InvalidSfuState:
            return  # closed meanwhile, or an offer is pending (the answer triggers the next)
        except NoFreePort as exc:
            log.warning("meeting %s: no offer for %s: %s", live.id, member.user_id, exc)
            self._queue_internal(live, _NoFreePort(member.user_id, generation))
            return
        if member.generation != generation:
            return
        mlines = tuple(offer_line(slot) for slot in offer.slots)
        await self._send(member.reply_to, m.Offer(sdp=offer.sdp, revision=offer.revision, mlines=mlines), live.id)

    def _spawn(self, live: LiveMeeting, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------ state

    def _state_changed(self, live: LiveMeeting, *, here: bool = True) -> None:
        """Publish the meeting's state once the current burst of changes is over (``here``:
        a change of this worker's part, which the other workers of the meeting are sent)."""
        live.part_changed = live.part_changed or here
        if live.state_scheduled or live.id not in self._meetings:
            return
        live.state_scheduled = True
        asyncio.get_running_loop().call_soon(self._publish_state, live)

    def state_frame(self, live: LiveMeeting) -> MeetingState:
        participants = []
        for member in live.members.values():
            participant = member.participant
            tracks: list[str] = (
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
                    recorded=member.recorded,
                    presenter=member.presenter,
                    listener=member.listener,
                    may_speak=_may_speak(live, member),
                )
            )
        here = {p.user.id for p in participants}
        for part in live.parts.values():
            participants.extend(p for p in part.participants if p.user.id not in here)
        speaker = live.sfu_meeting.active_speaker
        known = live.known_ids()
        return MeetingState(
            meeting=live.id,
            room=live.room_id,
            locked=live.locked,
            lobby=live.lobby,
            active_speaker=int(speaker) if speaker is not None and int(speaker) in known else None,
            hosts=sorted(p.user.id for p in participants if p.host),
            participants=participants,
            waiting=[
                *(Author(id=w.user_id, name=w.name) for w in live.waiting.values()),
                *(w for part in live.parts.values() for w in part.waiting if w.id not in live.waiting),
            ],
            recording=live.recording is not None,
            masterclass=live.masterclass,
        )

    def _publish_state(self, live: LiveMeeting) -> None:
        live.state_scheduled = False
        if live.id not in self._meetings:
            return
        try:
            frame = self.state_frame(live)
            self._publish(meeting_group(live.id), frame)
        except Exception:
            log.exception("publishing the state of meeting %s failed", live.id)
            return
        if live.part_changed and live.peers and self._peers is not None:
            live.part_changed = False
            part = self._part(live, frame)
            for worker in live.peers:
                self._spawn(live, self._peers.send(worker, part))

    # ------------------------------------------------------------ spread over workers

    def _part(self, live: LiveMeeting, frame: MeetingState | None = None) -> m.PartState:
        """This worker's participants of the meeting, for the others."""
        assert self._peers is not None
        frame = frame or self.state_frame(live)
        return m.PartState(
            meeting=live.id,
            worker=self._peers.worker,
            participants=[p for p in frame.participants if p.user.id in live.members],
            waiting=[w for w in frame.waiting if w.id in live.waiting],
        )

    async def _to_part_of(self, live: LiveMeeting, user_id: int, command: m.HostCommand, *, waiting: bool = False) -> None:
        """A host's act on ``user_id``, who is on another worker (or waits in its lobby): that
        worker does it. Raises ``invalid`` if nobody by that id is in any part."""
        for worker, part in live.parts.items():
            people = part.waiting if waiting else [p.user for p in part.participants]
            if any(person.id == user_id for person in people):
                await self._tell_peer(live, worker, command)
                return
        if waiting:
            raise HirfaError(ErrorCode.INVALID, gettext_noop("Nobody by that id waits in the lobby."))
        raise HirfaError(ErrorCode.INVALID, gettext_noop("Nobody by that id is in the meeting."))

    async def _to_every_part(self, live: LiveMeeting, command: m.HostCommand) -> None:
        """A host's act on the whole meeting: every other worker holding a part does it too."""
        for worker in list(live.peers):
            await self._tell_peer(live, worker, command)

    async def _tell_peer(self, live: LiveMeeting, worker: str, command: m.HostCommand) -> None:
        # Awaited, not spawned: an end closes the meeting here next, which cancels its tasks.
        if self._peers is None:
            return
        try:
            await self._peers.send(worker, m.PeerCommand(meeting=live.id, worker=self._peers.worker, command=command))
        except Exception:  # the bus is best-effort; the act still holds on this worker
            log.warning("meeting %s: telling worker %s of a host's act failed", live.id, worker, exc_info=True)

    async def _spread_enter(self, live: LiveMeeting, peers: PeerBus) -> None:
        """Note this worker's part of the meeting; pipe with every other worker holding one."""
        endpoint = await self.sfu.pipe_endpoint()
        address = endpoint.address
        others = await peers.enter(live.id, address)
        for worker, other in others.items():
            self._pipe_with(live, worker, other, secrets.token_bytes(PIPE_KEY_SIZE))
            key = live.pipe_keys.get(worker)
            if key is not None:
                await peers.send(
                    worker,
                    m.PipeOpen(meeting=live.id, worker=peers.worker, host=address[0], port=address[1], key=key.hex()),
                )

    def _pipe_with(self, live: LiveMeeting, worker: str, address: tuple[str, int], key: bytes) -> None:
        """Pipe both ways with ``worker`` at ``address``, its datagrams tagged under ``key``."""
        endpoint = self.sfu.pipe_endpoint_now()
        if endpoint is None:
            return
        old = live.peers.get(worker)
        held = live.pipe_keys.get(worker)
        if old == address and held is not None:
            # Both drew a key for this pipe at once (each entered seeing the other in the
            # meeting's hash, and each sent its own): both keep the lesser.
            if held <= key:
                return
        elif old is not None:
            live.sfu_meeting.unpipe_to(old)
            live.sfu_meeting.unpipe_from(old)
        live.peers[worker] = address
        live.pipe_keys[worker] = key
        live.sfu_meeting.pipe_to(endpoint, address, key=key)
        live.sfu_meeting.pipe_from(endpoint, address, key=key)
        live.part_changed = True
        self._state_changed(live)

    def peer_message(self, message: m.PeerMessage) -> None:
        """A message of another worker holding a part of one of our meetings."""
        live = self._meetings.get(message.meeting)
        if live is None or self._peers is None or message.worker == self._peers.worker:
            return
        if isinstance(message, m.PipeOpen):
            if message.key is None:
                log.warning("meeting %s: worker %s pipes without a key (an older version): not piped", live.id, message.worker)
                return
            self._pipe_with(live, message.worker, (message.host, message.port), bytes.fromhex(message.key))
        elif isinstance(message, m.PipeClose):
            self._drop_part(live, message.worker, died=False)
        elif isinstance(message, m.PeerCommand) and message.worker in live.peers:
            self._queue_internal(live, _FromPeer(message.command))
        elif isinstance(message, m.PartState) and message.worker in live.peers:
            known = live.known_ids()
            before = live.parts.get(message.worker)
            live.parts[message.worker] = message
            self._hold_part(live, message, before)
            self._state_changed(live, here=False)
            self._name_newcomers(live, live.known_ids() - known)

    def _hold_part(self, live: LiveMeeting, part: m.PartState, before: m.PartState | None) -> None:
        """Hold this worker to what another's part says of its participants: its masterclass
        presenters come first on the links here too, and its host mutes are remembered, should
        their member come here (his worker died, he rejoins here) — until he leaves there."""
        remote = [p for p in part.participants if p.user.id not in live.members]
        remote_ids = {p.user.id for p in remote}
        live.host_muted = {key for key in live.host_muted if key[0] not in remote_ids} | {
            (p.user.id, cast(m.Source, s)) for p in remote for s in p.host_muted if s in SOURCES
        }
        for participant in remote:
            live.sfu_meeting.set_presenter(str(participant.user.id), participant.presenter)
        if before is not None:
            listed = {p.user.id for p in part.participants}
            self._forget_remote(live, {p.user.id for p in before.participants} - listed)

    def _forget_remote(self, live: LiveMeeting, user_ids: set[int]) -> None:
        """Those of ``user_ids`` neither here nor on another worker left: forget their host
        mutes and presenting, as when a member leaves here."""
        gone = user_ids - live.known_ids()
        live.host_muted = {key for key in live.host_muted if key[0] not in gone}
        for user_id in gone:
            live.sfu_meeting.set_presenter(str(user_id), False)

    def _drop_part(self, live: LiveMeeting, worker: str, *, died: bool) -> None:
        """``worker`` holds no part of the meeting any more: unpipe, forget its participants
        (``died``: their host mutes are kept, they rejoin on the workers left)."""
        address = live.peers.pop(worker, None)
        live.pipe_keys.pop(worker, None)
        if address is not None:
            live.sfu_meeting.unpipe_to(address)
            live.sfu_meeting.unpipe_from(address)
        part = live.parts.pop(worker, None)
        if part is None:
            return
        user_ids = {p.user.id for p in part.participants}
        if died:
            for user_id in user_ids - live.known_ids():
                live.sfu_meeting.set_presenter(str(user_id), False)
        else:
            self._forget_remote(live, user_ids)
        self._state_changed(live, here=False)

    def _name_newcomers(self, live: LiveMeeting, newcomers: set[int]) -> None:
        """Send again the reception of each member here who receives one of ``newcomers``.

        A reception names only the publishers the engine knows (`reception_event`). A track
        piped from another worker (UDP, direct) usually arrives before that worker's part
        state (the channel layer): the subscriber's slot was sent unnamed, and without this
        he would keep a picture and a voice of nobody until his slots change again."""
        if not newcomers:
            return
        named = {str(user_id) for user_id in newcomers}
        for member in live.members.values():
            participant = member.participant
            if participant is None or participant.state is ParticipantState.CLOSED or member.reply_to in live.leaving:
                continue
            reception = participant.reception
            if any(slot.publisher_id in named for slot in reception.slots) or any(
                video.publisher_id in named for video in reception.videos
            ):
                self._send(member.reply_to, reception_event(reception, live.known_ids()), live.id)

    def peer_workers(self) -> set[str]:
        """The other workers holding parts of this one's meetings."""
        return {worker for live in self._meetings.values() for worker in live.peers}

    def peer_gone(self, worker: str) -> list[int]:
        """``worker`` died: as if it had said `PipeClose` for every meeting (its participants
        rejoin, placed again; its piped tracks go now, or went after `pipe.SILENCE_TIMEOUT`).
        Answers the meetings it held parts of."""
        if self._peers is None:
            return []
        gone = [live for live in self._meetings.values() if worker in live.peers]
        for live in gone:
            self._drop_part(live, worker, died=True)
        return [live.id for live in gone]

    async def _spread_leave(self, live: LiveMeeting, peers: PeerBus) -> None:
        try:
            await peers.leave(live.id)
            for worker in live.peers:
                await peers.send(worker, m.PipeClose(meeting=live.id, worker=peers.worker))
        except Exception:
            log.warning("meeting %s: telling the other workers it left failed", live.id, exc_info=True)

    # ------------------------------------------------------------ teardown

    async def _close_meeting(self, live: LiveMeeting) -> None:
        if self._meetings.get(live.id) is live:
            del self._meetings[live.id]
        for task in list(live.tasks):
            task.cancel()
        if self._peers is not None:
            self._spawn_detached(self._spread_leave(live, self._peers))
        try:
            await self.sfu.close_meeting(str(live.id))
        except Exception:
            # Usually UnknownMeeting (already closed); closing must finish whatever it was.
            log.debug("meeting %s already closed on the SFU", live.id, exc_info=True)

    async def close(self) -> None:
        """Close every meeting and its peer connections; later commands are ignored and
        nothing more is sent to the sockets (their watch finds the worker gone)."""
        self._closed = True
        for live in list(self._meetings.values()):
            if live.runner is not None:
                live.runner.cancel()
            for member in [*live.members.values(), *live.waiting.values()]:
                await self._close_session(live, member)
            await self._close_meeting(live)
        await self.sfu.close()


def reception_event(reception: Reception, members: Collection[int]) -> m.Reception:
    """The SFU's decision for one subscriber, as the event his socket turns into ``meeting_reception``."""
    return m.Reception(
        audio_only=reception.audio_only,
        videos=tuple(
            m.ReceivedVideo(user=int(v.publisher_id), source=SOURCE_NAMES[v.source], quality=v.quality.value)
            for v in reception.videos
            if v.publisher_id.isdigit() and int(v.publisher_id) in members
        ),
        estimate_kbps=reception.estimate // 1000,
        pinned=int(reception.pinned) if reception.pinned is not None and reception.pinned.isdigit() else None,
        slots=tuple(
            offer_line(slot)
            if slot.publisher_id is not None and slot.publisher_id.isdigit() and int(slot.publisher_id) in members
            else offer_line(TrackSlot(mid=slot.mid, kind=slot.kind, direction=slot.direction, publisher_id=None, source=None))
            for slot in reception.slots
        ),
    )


def offer_line(slot: TrackSlot) -> m.OfferLine:
    """One m-line of an offer (or a slot of a reception) as the member's socket names it."""
    return m.OfferLine(
        mid=slot.mid,
        kind="audio" if slot.kind is MediaKind.AUDIO else "video",
        direction="publish" if slot.direction is SlotDirection.PUBLISH else "subscribe",
        user=int(slot.publisher_id) if slot.publisher_id is not None else None,
        source=SOURCE_NAMES[slot.source] if slot.source is not None else None,
    )


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("meeting task failed", exc_info=task.exception())
