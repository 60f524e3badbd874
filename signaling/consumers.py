"""Meeting frames of the hub socket: the one bridge between the socket
protocol and the SFU (see docs/protocol.md, "Meetings").

`MeetingFrames`, one part of the socket (`hub.sockets`, registered by
``signaling.hooks``), checks permissions through ``signaling.selectors`` / ``services``,
turns each frame into a command for the meeting's engine through an
:class:`~signaling.placement.SfuLink` (in-process or a ``hirfa sfu`` worker:
the same commands either way) and turns the engine's events back into
frames. The meeting's state reaches the socket through the group
``meeting.<id>`` of ``hub.realtime``, like room events.

Its database calls go through Channels' one database thread (``db_in_order``), not
the pool of ``hub.db.db_call`` the room frames use: run in the order they are made,
a seat (attendance) taken in the background is always written before it is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async as db_in_order
from django.conf import settings
from django.utils.translation import gettext as _
from pydantic import ValidationError

from hub import protocol, realtime
from hub.errors import ErrorCode, HirfaError
from hub.protocol import (
    ErrorOut,
    MeetingEnded,
    MeetingEndReason,
    MeetingIceServers,
    MeetingJoined,
    MeetingLobby,
    MeetingMarked,
    MeetingOffer,
    MeetingReception,
    MeetingRejoin,
)
from hub.sockets import ChannelHandler, FrameHandler, Socket, SocketPart
from signaling import liveness, placement, selectors, services, tables
from signaling import messages as m
from signaling.engine import meeting_group
from signaling.turn import ice_servers, renew_after

log = logging.getLogger(__name__)

MEETING_FRAME_BURST = 40
MEETING_FRAMES_PER_SECOND = 10.0
TARGET_COMMANDS: dict[str, type[m.Remove | m.Admit | m.Deny]] = {
    "remove": m.Remove,
    "admit": m.Admit,
    "deny": m.Deny,
}


@dataclass
class MeetingSession:
    """The meeting this socket is in (one at a time)."""

    meeting_id: int
    room_id: int
    host: bool
    link: placement.SfuLink | None
    receive_video: bool
    attended: bool = False
    # The attendance (seat) being written for the engine's `joined`: a leave waits for it, so
    # that a seat written just after the leave looked is still given back.
    attending: asyncio.Future[None] | None = None
    watchdog: asyncio.Task[None] | None = None
    # Sends fresh TURN credentials before the current ones expire (signaling/turn.py).
    ice_renewal: asyncio.TimerHandle | None = None
    join_options: dict[str, Any] = field(default_factory=dict)


#: Each meeting frame type and the `MeetingFrames` method that answers it.
_MEETING_HANDLERS: dict[str, str] = {
    "meeting_start": "on_meeting_start",
    "meeting_info": "on_meeting_info",
    "meeting_join": "on_meeting_join",
    "meeting_leave": "on_meeting_leave",
    "meeting_answer": "on_meeting_answer",
    "meeting_candidate": "on_meeting_candidate",
    "meeting_publish": "on_meeting_publish",
    "meeting_unpublish": "on_meeting_unpublish",
    "meeting_mute": "on_meeting_mute",
    "meeting_hand": "on_meeting_hand",
    "meeting_receive": "on_meeting_receive",
    "meeting_host": "on_meeting_host",
    "meeting_ice_restart": "on_meeting_ice_restart",
    "meeting_pin": "on_meeting_pin",
    "meeting_retry_video": "on_meeting_retry_video",
    "meeting_record": "on_meeting_record",
    "meeting_marker": "on_meeting_marker",
    "meeting_recorded": "on_meeting_recorded",
    "meeting_tables": "on_meeting_tables",
}


class MeetingFrames(SocketPart):
    """The meeting a socket is in: its frames, the engine's events, its own frame budget."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.user = socket.user
        self.meeting: MeetingSession | None = None
        # The engine's events not yet applied, in order; made with the first one (an idle
        # socket holds none: an asyncio.Queue was 2.5 kB per socket).
        self.meeting_events: deque[m.Event] | None = None
        self.meeting_pump: asyncio.Task[None] | None = None
        self.meeting_tokens = float(MEETING_FRAME_BURST)
        self.meeting_clock = 0.0
        # Where the engine answers: the socket's channel, opened with the first join.
        self.meeting_reply_to = ""

    def handlers(self) -> Mapping[str, FrameHandler]:
        # One bound handler for every meeting frame, not a closure per frame type: a socket
        # that never joins a meeting (most of 20,000 idle ones) pays for one object here.
        limited = self._meeting_limited
        return dict.fromkeys(_MEETING_HANDLERS, limited)

    def channel_handlers(self) -> Mapping[str, ChannelHandler]:
        return {"sfu.event": self.sfu_event}

    def frame_limits(self) -> Mapping[str, int]:
        # An answer to an offer with many m-lines outgrows the socket's frame limit.
        return {"meeting_answer": settings.HIRFA_MEETING_ANSWER_MAX_BYTES}

    def plain(self, group: str) -> bool:
        return True  # `deliver` only looks at `removed` (`kinds_seen`)

    def kinds_seen(self) -> Collection[str]:
        return ("removed",)

    def deliver(self, group: str, event: realtime.Event) -> bool:
        session = self.meeting
        # Banned or removed from a room: a meeting in that room is checked again.
        if (
            session is not None
            and event.kind == "removed"
            and group.startswith("user.")
            and protocol.Removed.model_validate_json(event.text).room == session.room_id
        ):
            self.socket.spawn(self.recheck(session.room_id))
        return True

    async def close(self) -> None:
        """The socket closes: leave the meeting (the peer connection is closed)."""
        try:
            if self.meeting is not None:
                await self._meeting_leave(reason=None, tell_engine=True)
        finally:
            if self.meeting_reply_to:
                placement.unregister_local(self.meeting_reply_to)
            if self.meeting_pump is not None:
                self.meeting_pump.cancel()

    async def suspend(self) -> None:
        """The hub restarts (hub/shutdown.py): close the peer on the SFU but keep the seat
        (the attendance stays open), so that the member rejoins from another hub and a
        meeting whose members were all here does not end."""
        if self.meeting is not None:
            await self._meeting_leave(reason=None, tell_engine=True, depart=False)

    async def recheck(self, room_id: int | None) -> None:
        """End the meeting session if the member may no longer be in it (banned from its
        room, removed from its group, the gathering closed to him): his peer is closed,
        he gets ``meeting_ended`` with ``removed``. Checked whichever room changed: a
        meeting's right may hang on more than its room (a gathering's guests)."""
        session = self.meeting
        if session is None:
            return
        try:
            await db_in_order(selectors.meeting_right_check)(user=self.user, meeting_id=session.meeting_id)
        except HirfaError:
            if self.meeting is session:
                log.info("user %s may no longer be in meeting %s", self.user.pk, session.meeting_id)
                await self._meeting_leave(reason="removed", tell_engine=True)

    # --- limits -------------------------------------------------------------------------

    async def _meeting_limited(self, frame: Any) -> None:
        """Every meeting frame: the meeting's own frame budget, then the frame's handler."""
        now = asyncio.get_running_loop().time()
        if self.meeting_clock:
            self.meeting_tokens = min(
                MEETING_FRAME_BURST,
                self.meeting_tokens + (now - self.meeting_clock) * MEETING_FRAMES_PER_SECOND,
            )
        self.meeting_clock = now
        if self.meeting_tokens < 1:
            wait = (1 - self.meeting_tokens) / MEETING_FRAMES_PER_SECOND
            raise HirfaError(ErrorCode.RATE_LIMITED, _("Too many meeting frames."), retry_after=wait)
        self.meeting_tokens -= 1
        await getattr(self, _MEETING_HANDLERS[frame.type])(frame)

    # --- engine events -----------------------------------------------------------------

    async def sfu_event(self, message: dict[str, Any]) -> None:
        """Channel-layer handler: an event from a ``hirfa sfu`` worker, validated here."""
        try:
            event = m.event_from(message.get("event"))
        except ValidationError:
            log.warning("a malformed meeting event was dropped: %.200r", message)
            return
        self._meeting_event(event)

    def _meeting_event(self, event: m.Event) -> None:
        if self.meeting_events is None:
            self.meeting_events = deque()
        self.meeting_events.append(event)
        if self.meeting_pump is None or self.meeting_pump.done():
            self.meeting_pump = asyncio.get_running_loop().create_task(self._pump_meeting_events())

    async def _pump_meeting_events(self) -> None:
        # One at a time, in the engine's order: joined before its offer, and so on.
        events = self.meeting_events
        while events:
            event = events.popleft()
            try:
                await self._apply_meeting_event(event)
            except Exception:
                log.exception("meeting event %s failed", event.kind)

    async def _apply_meeting_event(self, event: m.Event) -> None:
        session = self.meeting
        if session is None or (event.meeting is not None and event.meeting != session.meeting_id):
            return  # what the meeting it left (for a workshop table, or back) still sent
        if isinstance(event, m.Joined):
            if not session.attended:
                try:
                    await asyncio.shield(self._attend(session))
                except HirfaError as exc:
                    # Ended meanwhile, or another socket of his took his last meeting seat:
                    # the engine lets his new peer go, and he hears why.
                    await self._meeting_leave(reason=None, tell_engine=True)
                    self.socket.emit(ErrorOut(ref=event.ref, code=exc.code.value, message=exc.message))
                    return
            codec = session.join_options.get("video_codec", "vp8")
            self.socket.emit(
                MeetingJoined(
                    ref=event.ref,
                    meeting=session.meeting_id,
                    room=session.room_id,
                    video_codec=codec,
                    host=event.host,
                    resumed=event.resumed,
                )
            )
            self._emit_ice_servers(session)
        elif isinstance(event, m.Lobby):
            self.socket.emit(MeetingLobby(ref=event.ref, meeting=session.meeting_id))
        elif isinstance(event, m.Offer):
            self.socket.emit(
                MeetingOffer(
                    meeting=session.meeting_id,
                    sdp=event.sdp,
                    revision=event.revision,
                    mlines=[protocol.MLine(**line.model_dump()) for line in event.mlines],
                )
            )
        elif isinstance(event, m.EngineError):
            # The engine's message is an English msgid: said here in the member's language.
            self.socket.emit(ErrorOut(ref=event.ref, code=event.code, message=_(event.message)))
        elif isinstance(event, m.Reception):
            self.socket.emit(
                MeetingReception(
                    meeting=session.meeting_id,
                    audio_only=event.audio_only,
                    videos=[protocol.ReceivedVideoOut(**video.model_dump()) for video in event.videos],
                    estimate_kbps=event.estimate_kbps,
                    pinned=event.pinned,
                    slots=[protocol.MLine(**line.model_dump()) for line in event.slots],
                )
            )
        elif isinstance(event, m.Rejoin):
            self.socket.emit(MeetingRejoin(meeting=session.meeting_id, reason=event.reason))
        elif isinstance(event, m.Ended):
            reason = event.reason
            # Replaced: the same member goes on from another socket, still attending.
            await self._meeting_leave(
                reason=reason, tell_engine=False, depart=reason not in ("replaced", "denied")
            )

    def _attend(self, session: MeetingSession) -> asyncio.Future[None]:
        """Write the member's seat; `session.attended` says so once it is written, whoever
        waits for it (the pump may be cancelled meanwhile: the write goes on)."""

        def written(attending: asyncio.Future[None]) -> None:
            if not attending.cancelled() and attending.exception() is None:
                session.attended = True
                liveness.session_opened()

        attending = asyncio.ensure_future(
            db_in_order(services.meeting_attend)(
                user=self.user, meeting_id=session.meeting_id, process=liveness.PROCESS_ID
            )
        )
        attending.add_done_callback(written)
        session.attending = attending
        return attending

    def _emit_ice_servers(self, session: MeetingSession, ref: str | None = None) -> None:
        servers, ttl = ice_servers(user_id=self.user.pk, meeting_id=session.meeting_id)
        self.socket.emit(MeetingIceServers(ref=ref, meeting=session.meeting_id, ice_servers=servers, ttl=ttl))
        if session.ice_renewal is not None:
            session.ice_renewal.cancel()
            session.ice_renewal = None
        if ttl is not None:
            session.ice_renewal = asyncio.get_running_loop().call_later(
                renew_after(ttl), self._renew_ice_servers, session
            )

    def _renew_ice_servers(self, session: MeetingSession) -> None:
        # Only while this socket is still in that meeting: leaving cancels the timer too.
        if self.meeting is session:
            self._emit_ice_servers(session)

    # --- helpers ------------------------------------------------------------------------

    def _session(self, meeting_id: int) -> MeetingSession:
        session = self.meeting
        if session is None or session.meeting_id != meeting_id:
            raise HirfaError(ErrorCode.NO_SESSION, _("You are not in this meeting."))
        return session

    async def _command(
        self, session: MeetingSession, command: type[m.Command], ref: str | None = None, **fields: Any
    ) -> None:
        if session.link is None:
            raise HirfaError(ErrorCode.NO_SESSION, _("Your media session is gone; join again."))
        await session.link.send(
            command(
                meeting=session.meeting_id,
                room=session.room_id,
                user=self.user.pk,
                reply_to=self.meeting_reply_to,
                ref=ref,
                **fields,
            )
        )

    async def _watch_worker(self, session: MeetingSession) -> None:
        """Tell the client to rejoin when the worker holding the meeting stops heartbeating."""
        link = session.link
        while link is not None and session.link is link:
            await asyncio.sleep(settings.HIRFA_SFU_HEARTBEAT_SECONDS)
            if session.link is link and not await link.alive():
                log.info("SFU worker %s is gone; meeting %s rejoins", link.worker, session.meeting_id)
                session.link = None
                self.socket.emit(MeetingRejoin(meeting=session.meeting_id, reason="worker_lost"))
                return

    async def _meeting_leave(self, *, reason: MeetingEndReason | None, tell_engine: bool, depart: bool = True, ref: str | None = None) -> None:
        session, self.meeting = self.meeting, None
        if session is None:
            return
        if session.watchdog is not None:
            session.watchdog.cancel()
        if session.ice_renewal is not None:
            session.ice_renewal.cancel()
        if tell_engine and session.link is not None:
            try:
                await session.link.send(
                    m.Leave(
                        meeting=session.meeting_id,
                        room=session.room_id,
                        user=self.user.pk,
                        reply_to=self.meeting_reply_to,
                    )
                )
            except Exception:
                log.warning("telling the SFU that %s left failed", self.user.pk, exc_info=True)
        await self.socket.leave_group(meeting_group(session.meeting_id))
        attending = session.attending
        if attending is not None and not attending.done():
            # A seat being written now would otherwise stay taken after this leave.
            with contextlib.suppress(Exception):
                await asyncio.shield(attending)
        if session.attended:
            liveness.session_closed()
        if depart and session.attended:
            await db_in_order(services.meeting_depart)(user=self.user, meeting_id=session.meeting_id)
        if reason is not None:
            self.socket.emit(MeetingEnded(ref=ref, meeting=session.meeting_id, reason=reason))

    async def _send_join(self, session: MeetingSession, ref: str | None, *, resume: bool = False) -> None:
        """(Re)join the engine: a new server-side peer for this socket, or with ``resume`` his
        own kept (an ICE restart on it) while it lives."""
        if not isinstance(session.link, placement.EmbeddedLink):
            if session.watchdog is not None:
                session.watchdog.cancel()
            session.watchdog = asyncio.get_running_loop().create_task(self._watch_worker(session))
        await self._command(session, m.Join, ref, **session.join_options, resume=resume)

    # --- handlers -----------------------------------------------------------------------

    async def on_meeting_start(self, frame: protocol.MeetingStart) -> None:
        await liveness.sweep()
        out = await db_in_order(services.meeting_start)(
            user=self.user, room_id=frame.room, video_codec=frame.video_codec, lobby=frame.lobby
        )
        self.socket.emit(out.model_copy(update={"ref": frame.ref}))

    async def on_meeting_info(self, frame: protocol.MeetingInfo) -> None:
        await liveness.sweep()
        out = await db_in_order(selectors.room_meeting)(user=self.user, room_id=frame.room, ref=frame.ref)
        self.socket.emit(out)

    async def on_meeting_join(self, frame: protocol.MeetingJoin) -> None:
        if frame.meeting is None and frame.room is None:
            raise HirfaError(ErrorCode.INVALID, _("Name a meeting or a room."))
        await liveness.sweep()
        ticket = await db_in_order(selectors.meeting_join_ticket)(
            user=self.user, meeting_id=frame.meeting, room_id=frame.room
        )
        current = self.meeting
        if current is not None and current.meeting_id != ticket.meeting_id:
            raise HirfaError(ErrorCode.CONFLICT, _("Leave your meeting first."))
        if not self.meeting_reply_to:
            self.meeting_reply_to = await self.socket.open_reply_channel()
        link = await placement.link_for(meeting_id=ticket.meeting_id, worker=ticket.worker)
        receive_video = frame.receive_video and not frame.audio_only
        publish = [s for s in dict.fromkeys(frame.publish) if not (frame.audio_only and s != "mic")]
        options = {
            "name": ticket.name,
            "host": ticket.host,
            "must_wait": ticket.must_wait,
            "locked": ticket.locked,
            "lobby": ticket.lobby,
            "video_codec": ticket.video_codec,
            "receive_video": receive_video,
            "video_slots": frame.video_slots,
            "publish": publish,
            "recorded": frame.recorded,
            "recording": ticket.recording,
            "presenter": ticket.presenter,
            "listener": ticket.listener,
            "masterclass": ticket.masterclass,
        }
        if current is None:
            session = MeetingSession(
                meeting_id=ticket.meeting_id,
                room_id=ticket.room_id,
                host=ticket.host,
                link=link,
                receive_video=receive_video,
                join_options=options,
            )
            self.meeting = session
            placement.register_local(self.meeting_reply_to, self._meeting_event)
            await self.socket.join_group(meeting_group(ticket.meeting_id))
        else:
            session = current
            session.link = link
            session.host = ticket.host
            session.join_options = options
        try:
            await self._send_join(session, frame.ref, resume=frame.resume)
        except BaseException:
            if current is None:
                await self._meeting_leave(reason=None, tell_engine=False)
            raise
        # A late comer to a meeting split into tables is told where everyone sits.
        split = await db_in_order(tables.tables_of)(user=self.user, meeting_id=ticket.meeting_id)
        if split.open:
            self.socket.emit(split)

    async def on_meeting_leave(self, frame: protocol.MeetingLeave) -> None:
        self._session(frame.meeting)
        await self._meeting_leave(reason="left", tell_engine=True, ref=frame.ref)

    async def on_meeting_answer(self, frame: protocol.MeetingAnswer) -> None:
        session = self._session(frame.meeting)
        await self._command(session, m.Answer, frame.ref, sdp=frame.sdp, revision=frame.revision)

    async def on_meeting_candidate(self, frame: protocol.MeetingCandidateIn) -> None:
        session = self._session(frame.meeting)
        await self._command(
            session,
            m.Candidate,
            frame.ref,
            candidate=frame.candidate,
            sdp_mid=frame.sdp_mid,
            sdp_mline_index=frame.sdp_mline_index,
        )

    async def on_meeting_publish(self, frame: protocol.MeetingPublish) -> None:
        session = self._session(frame.meeting)
        await self._command(session, m.Publish, frame.ref, source=frame.source)
        published = session.join_options.setdefault("publish", [])
        if frame.source not in published:
            published.append(frame.source)

    async def on_meeting_unpublish(self, frame: protocol.MeetingUnpublish) -> None:
        session = self._session(frame.meeting)
        await self._command(session, m.Unpublish, frame.ref, source=frame.source)
        if frame.source in session.join_options.get("publish", []):
            session.join_options["publish"].remove(frame.source)

    async def on_meeting_mute(self, frame: protocol.MeetingMute) -> None:
        session = self._session(frame.meeting)
        await self._command(session, m.MuteSelf, frame.ref, source=frame.source, muted=frame.muted)

    async def on_meeting_hand(self, frame: protocol.MeetingHand) -> None:
        session = self._session(frame.meeting)
        await self._command(session, m.Hand, frame.ref, up=frame.up)

    async def on_meeting_receive(self, frame: protocol.MeetingReceive) -> None:
        session = self._session(frame.meeting)
        session.receive_video = frame.video
        session.join_options["receive_video"] = frame.video
        await self._command(session, m.Receive, frame.ref, video=frame.video)

    async def on_meeting_pin(self, frame: protocol.MeetingPin) -> None:
        await self._command(self._session(frame.meeting), m.Pin, frame.ref, target=frame.user)

    async def on_meeting_retry_video(self, frame: protocol.MeetingRetryVideo) -> None:
        await self._command(self._session(frame.meeting), m.RetryVideo, frame.ref)

    async def on_meeting_host(self, frame: protocol.MeetingHost) -> None:
        session = self._session(frame.meeting)
        action = frame.action
        if action in ("lock", "unlock", "lobby_on", "lobby_off"):
            flags = {
                "lock": {"locked": True},
                "unlock": {"locked": False},
                "lobby_on": {"lobby": True},
                "lobby_off": {"lobby": False},
            }[action]
            await db_in_order(services.meeting_settings_set)(user=self.user, meeting_id=session.meeting_id, **flags)
            await self._command(session, m.Settings, frame.ref, **flags)
            return
        if action == "end":
            await db_in_order(services.meeting_end)(user=self.user, meeting_id=session.meeting_id)
            await self._command(session, m.End, frame.ref)
            return
        if action in ("allow_speak", "stop_speak"):
            # A masterclass's presenters may too: the engine knows who presents and listens.
            if frame.user is None:
                raise HirfaError(ErrorCode.INVALID, _("Name the participant."))
            await self._command(session, m.Speak, frame.ref, target=frame.user, allowed=action == "allow_speak")
            return
        await db_in_order(selectors.meeting_for_host)(user=self.user, meeting_id=session.meeting_id)
        if frame.user is None:
            raise HirfaError(ErrorCode.INVALID, _("Name the participant."))
        if frame.user == self.user.pk and action in ("remove", "admit", "deny"):
            raise HirfaError(ErrorCode.INVALID, _("Not on yourself."))
        if action in ("mute", "unmute"):
            await self._command(
                session, m.HostMute, frame.ref, target=frame.user, source=frame.source, muted=action == "mute"
            )
        else:
            await self._command(session, TARGET_COMMANDS[action], frame.ref, target=frame.user)

    async def on_meeting_ice_restart(self, frame: protocol.MeetingIceRestart) -> None:
        session = self._session(frame.meeting)
        if session.link is None:
            raise HirfaError(ErrorCode.NO_SESSION, _("Your media session is gone; join again."))
        # An ICE restart on his own peer while it lives (else a new one, without leaving).
        # Sent before the check below: a new peer must take the old one's place before the
        # old one is noticed as failed (else everyone renegotiates); neither carries media
        # before the client answers, and the check ends the session first if it must.
        await self._send_join(session, frame.ref, resume=True)
        # A new peer is a new grant: the right to be in the meeting is checked again.
        await self.recheck(session.room_id)
        if self.meeting is not session:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such meeting."))

    async def on_meeting_record(self, frame: protocol.MeetingRecord) -> None:
        session = self._session(frame.meeting)
        if frame.action == "start":
            recording = await db_in_order(services.recording_start)(user=self.user, meeting_id=session.meeting_id)
            try:
                await self._command(session, m.Record, frame.ref, recording=recording.pk)
            except BaseException:
                await db_in_order(services.recording_stop)(user=self.user, meeting_id=session.meeting_id)
                raise
        else:
            await db_in_order(services.recording_stop)(user=self.user, meeting_id=session.meeting_id)
            await self._command(session, m.Record, frame.ref, recording=None)

    async def on_meeting_marker(self, frame: protocol.MeetingMarker) -> None:
        session = self._session(frame.meeting)
        marker = await db_in_order(services.recording_mark)(user=self.user, meeting_id=session.meeting_id, label=frame.label)
        self.socket.emit(
            MeetingMarked(ref=frame.ref, meeting=session.meeting_id, at=marker.at, label=marker.label)
        )

    async def on_meeting_recorded(self, frame: protocol.MeetingRecorded) -> None:
        session = self._session(frame.meeting)
        session.join_options["recorded"] = frame.recorded
        await self._command(session, m.Recorded, frame.ref, recorded=frame.recorded)

    async def on_meeting_tables(self, frame: protocol.MeetingTables) -> None:
        # Not tied to the socket's session: a host visiting a table acts on the meeting he split.
        if frame.action == "open":
            out = await db_in_order(tables.tables_open)(
                user=self.user, meeting_id=frame.meeting, split=frame.split, count=frame.count,
                seats=frame.seats, minutes=frame.minutes,
            )
        elif frame.action == "broadcast":
            if not frame.text or not frame.text.strip():
                raise HirfaError(ErrorCode.EMPTY, _("Write the message first."))
            out = await db_in_order(tables.tables_broadcast)(user=self.user, meeting_id=frame.meeting, text=frame.text)
        elif frame.action == "seat":
            if frame.user is None or frame.table is None:
                raise HirfaError(ErrorCode.INVALID, _("Name the participant and the table."))
            out = await db_in_order(tables.tables_seat)(
                user=self.user, meeting_id=frame.meeting, member_id=frame.user, number=frame.table
            )
        else:
            out = await db_in_order(tables.tables_close)(user=self.user, meeting_id=frame.meeting)
        self.socket.emit(out.model_copy(update={"ref": frame.ref}))
