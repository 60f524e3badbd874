"""Reads of meetings. Every read goes through ``rooms.selectors.room_access``, so a
meeting of a room the user may not read is "not found", like a missing one."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import Author, MeetingOut
from rooms.selectors import RoomAccess, room_access
from signaling.join_rules import hosts_by_rule, join_check, stage_by_rule
from signaling.models import Attendance, Meeting, Recording


@dataclass(frozen=True)
class JoinTicket:
    """What a user may do in the meeting he asks to join."""

    meeting_id: int
    room_id: int
    host: bool
    #: The lobby is on and the user is no host: he waits for a host to admit him.
    must_wait: bool
    locked: bool
    lobby: bool
    video_codec: str
    worker: str
    name: str
    #: The meeting's running recording (its engine resumes it on a new SFU worker).
    recording: int | None = None
    #: A masterclass's presenter: he speaks, and lets listeners speak.
    presenter: bool = False
    #: A masterclass's listener (no host, no presenter): he publishes nothing until let speak.
    listener: bool = False
    #: The meeting is held as a masterclass (its presenters and hosts may show a second camera).
    masterclass: bool = False


def _not_found() -> HirfaError:
    return HirfaError(ErrorCode.NOT_FOUND, _("No such meeting."))


def meeting_is_host(*, user: User, meeting: Meeting, access: RoomAccess) -> bool:
    """Hosts: the room's moderators, whoever started a meeting of a group or direct room,
    and whom a registered rule names (a gathering's hosts, `signaling.join_rules`)."""
    if access.can_moderate or hosts_by_rule(user=user, meeting=meeting):
        return True
    return not meeting.room.is_public and meeting.started_by_id == user.pk


def live_meeting(*, room_id: int) -> Meeting | None:
    """The live meeting of a room, without any access check (callers check)."""
    return Meeting.objects.filter(room_id=room_id, ended_at__isnull=True).first()


def meeting_frame(*, meeting: Meeting | None, room_id: int, ref: str | None = None) -> MeetingOut:
    """The small ``meeting`` frame of a room: live or not, and who is in it."""
    if meeting is None or not meeting.live:
        return MeetingOut(ref=ref, room=room_id, meeting=None, live=False)
    rows = (
        Attendance.objects.filter(meeting=meeting, left_at__isnull=True)
        .select_related("user", "user__profile")
        .order_by("joined_at", "id")
    )
    return MeetingOut(
        ref=ref,
        room=room_id,
        meeting=meeting.pk,
        live=True,
        video_codec=meeting.video_codec,
        started_at=meeting.started_at.isoformat(),
        participants=[Author(id=a.user.pk, name=a.user.display_name) for a in rows],
        recording=Recording.objects.filter(meeting=meeting, stopped_at__isnull=True).exists(),
    )


def room_meeting(*, user: User, room_id: int, ref: str | None = None) -> MeetingOut:
    """The room's ``meeting`` frame if ``user`` reads the room; ``not_found`` otherwise."""
    room_access(user=user, room_id=room_id)
    return meeting_frame(meeting=live_meeting(room_id=room_id), room_id=room_id, ref=ref)


MEETINGS_AT_ONCE = gettext_noop("You are already in as many meetings as a member may be: leave one first.")


def meetings_at_once_check(*, user: User, meeting_id: int) -> None:
    """Raises ``limit_reached`` when ``user`` is in ``HIRFA_MEETINGS_PER_MEMBER`` meetings
    other than ``meeting_id`` already (his open attendance rows)."""
    limit = settings.HIRFA_MEETINGS_PER_MEMBER
    elsewhere = Attendance.objects.filter(user=user, left_at__isnull=True).exclude(meeting_id=meeting_id)
    if elsewhere[:limit].count() >= limit:
        raise HirfaError(ErrorCode.LIMIT_REACHED, _(MEETINGS_AT_ONCE))


def meeting_join_ticket(
    *, user: User, meeting_id: int | None = None, room_id: int | None = None
) -> JoinTicket:
    """The ticket of ``user`` for a live meeting (by id, or the live one of a room).

    Raises ``not_found`` for a missing or ended meeting and for one in a room
    the user may not read (the same answer), ``meeting_locked`` when the
    meeting is locked and the user is no host, ``limit_reached`` when he is in as
    many other meetings as a member may be (``meetings_at_once_check``).
    """
    if meeting_id is not None:
        meeting = Meeting.objects.select_related("room").filter(pk=meeting_id).first()
    elif room_id is not None:
        meeting = Meeting.objects.select_related("room").filter(room_id=room_id, ended_at__isnull=True).first()
    else:
        raise HirfaError(ErrorCode.INVALID, _("Name a meeting or a room."))
    if meeting is None:
        raise _not_found()
    try:
        access = room_access(user=user, room_id=meeting.room_id)
    except HirfaError:
        raise _not_found() from None
    if not meeting.live:
        raise _not_found()
    join_check(user=user, meeting=meeting)
    host = meeting_is_host(user=user, meeting=meeting, access=access)
    if meeting.locked and not host:
        raise HirfaError(ErrorCode.MEETING_LOCKED, _("The meeting is locked."))
    meetings_at_once_check(user=user, meeting_id=meeting.pk)
    stage = stage_by_rule(user=user, meeting=meeting)
    return JoinTicket(
        presenter=stage == "presenter",
        listener=stage == "listener" and not host,
        masterclass=stage is not None,
        meeting_id=meeting.pk,
        room_id=meeting.room_id,
        host=host,
        must_wait=meeting.lobby and not host,
        locked=meeting.locked,
        lobby=meeting.lobby,
        video_codec=meeting.video_codec,
        worker=meeting.worker,
        name=user.display_name,
        recording=Recording.objects.filter(meeting=meeting, stopped_at__isnull=True).values_list("pk", flat=True).first(),
    )


def meeting_right_check(*, user: User, meeting_id: int) -> Meeting:
    """The live meeting if ``user`` may still be in it (he reads its room, and the
    gathering holding it, if any, lets him in); ``not_found`` otherwise. Unlike a join,
    a lock does not refuse someone already in."""
    meeting = Meeting.objects.select_related("room").filter(pk=meeting_id).first()
    if meeting is None or not meeting.live:
        raise _not_found()
    try:
        room_access(user=user, room_id=meeting.room_id)
    except HirfaError:
        raise _not_found() from None
    join_check(user=user, meeting=meeting)
    return meeting


def meeting_for_host(*, user: User, meeting_id: int) -> Meeting:
    """The live meeting if ``user`` hosts it; ``not_found`` or ``forbidden`` otherwise."""
    meeting = Meeting.objects.select_related("room").filter(pk=meeting_id).first()
    if meeting is None or not meeting.live:
        raise _not_found()
    try:
        access = room_access(user=user, room_id=meeting.room_id)
    except HirfaError:
        raise _not_found() from None
    if not meeting_is_host(user=user, meeting=meeting, access=access):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the meeting's hosts may do this."))
    return meeting


def recording_for_host(*, user: User, recording_id: int, lock: bool = False) -> Recording:
    """The recording if ``user`` hosts its meeting (live or not): the room's moderators and
    whom a rule names (a gathering's hosts). ``not_found`` when he may not read the room
    or it does not exist; ``forbidden`` for a reader who is no host."""
    rows = Recording.objects.select_related("meeting", "meeting__room")
    recording = (rows.select_for_update(of=("self",)) if lock else rows).filter(pk=recording_id).first()
    if recording is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such recording."))
    try:
        access = room_access(user=user, room_id=recording.meeting.room_id)
    except HirfaError:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such recording.")) from None
    if not meeting_is_host(user=user, meeting=recording.meeting, access=access):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the meeting's hosts may do this."))
    return recording


def meeting_recording(*, meeting_id: int) -> Recording | None:
    """The meeting's running recording, if any (no access check: callers check)."""
    return Recording.objects.filter(meeting_id=meeting_id, stopped_at__isnull=True).first()
