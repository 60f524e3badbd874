"""Writes to meetings and attendance. Each function validates, writes in one
transaction and publishes the room's ``meeting`` frame through ``hub.realtime``
on commit, so rooms show which meeting is live and who is in it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from hub import realtime
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import MeetingOut
from rooms.selectors import room_access
from signaling.models import Attendance, Meeting, VideoCodecChoice
from signaling.selectors import (
    live_meeting,
    meeting_for_host,
    meeting_frame,
    meetings_at_once_check,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet


def _publish_room_frame(meeting: Meeting) -> None:
    def publish() -> None:
        fresh = Meeting.objects.filter(pk=meeting.pk).first()
        realtime.publish_now(realtime.room_group(meeting.room_id), meeting_frame(meeting=fresh, room_id=meeting.room_id))

    transaction.on_commit(publish)


def meeting_start(
    *,
    user: User,
    room_id: int,
    video_codec: str = VideoCodecChoice.VP8,
    lobby: bool = False,
    start_allowed: bool = False,
) -> MeetingOut:
    """Start the room's meeting, or return the one already live (unchanged).

    Moderators start meetings in guild and region rooms; any member in a
    private group or a direct room. Raises ``not_found`` (room not readable)
    or ``forbidden``. ``start_allowed``: the caller has already decided that
    ``user`` may start it (a gathering's Join, ``gatherings.services``);
    the room must still be readable.
    """
    access = room_access(user=user, room_id=room_id)
    if access.room.is_public and not access.can_moderate and not start_allowed:
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only moderators start meetings in this room."))
    if video_codec not in VideoCodecChoice.values:
        raise HirfaError(ErrorCode.INVALID, _("Unknown video codec."))
    existing = live_meeting(room_id=room_id)
    if existing is None:
        try:
            with transaction.atomic():
                existing = Meeting.objects.create(
                    room=access.room, started_by=user, video_codec=video_codec, lobby=lobby
                )
                _publish_room_frame(existing)
        except IntegrityError:  # started concurrently: the other one is the meeting
            existing = live_meeting(room_id=room_id)
            if existing is None:
                raise
    return meeting_frame(meeting=existing, room_id=room_id)


def meeting_attend(*, user: User, meeting_id: int, process: str = "") -> None:
    """Record that ``user`` is in the meeting, his socket held by hub process ``process``
    (idempotent while he stays; a second socket moves the row to its process).

    Raises ``not_found`` for an ended meeting and ``limit_reached`` when he is in as many
    other meetings as a member may be: the check at join is repeated here, one member at
    a time, so that joins sent at once from several sockets cannot all pass it."""
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().filter(pk=meeting_id).first()
        if meeting is None or not meeting.live:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such meeting."))
        now = timezone.now()
        if Attendance.objects.filter(meeting=meeting, user=user, left_at__isnull=True).update(
            process=process, seen_at=now
        ):
            return
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        meetings_at_once_check(user=user, meeting_id=meeting.pk)
        Attendance.objects.create(meeting=meeting, user=user, process=process, joined_at=now, seen_at=now)
        _publish_room_frame(meeting)


def meeting_depart(*, user: User, meeting_id: int) -> bool:
    """Record that ``user`` left; the meeting ends when nobody is left. Returns whether it ended."""
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().filter(pk=meeting_id).first()
        if meeting is None or not meeting.live:
            return False
        now = timezone.now()
        closed = Attendance.objects.filter(meeting=meeting, user=user, left_at__isnull=True).update(
            left_at=now
        )
        ended = not Attendance.objects.filter(meeting=meeting, left_at__isnull=True).exists()
        if ended:
            meeting.ended_at = now
            meeting.save(update_fields=["ended_at"])
        if closed or ended:
            _publish_room_frame(meeting)
        return ended


def meeting_end(*, user: User, meeting_id: int) -> None:
    """A host ends the meeting for everyone. Raises ``not_found`` or ``forbidden``."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        now = timezone.now()
        Meeting.objects.filter(pk=meeting.pk, ended_at__isnull=True).update(ended_at=now)
        Attendance.objects.filter(meeting=meeting, left_at__isnull=True).update(left_at=now)
        _publish_room_frame(meeting)


def meeting_settings_set(
    *, user: User, meeting_id: int, locked: bool | None = None, lobby: bool | None = None
) -> Meeting:
    """A host locks or unlocks the meeting, or turns its lobby on or off."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        fields = []
        if locked is not None:
            meeting.locked = locked
            fields.append("locked")
        if lobby is not None:
            meeting.lobby = lobby
            fields.append("lobby")
        if fields:
            meeting.save(update_fields=fields)
        return meeting


def meeting_worker_assign(*, meeting_id: int, expected: str, worker: str) -> str:
    """Move the meeting to ``worker`` if it is still on ``expected``; returns its worker now.

    Two processes choosing at once agree: the first write wins and the other
    reads it back.
    """
    with transaction.atomic():
        Meeting.objects.filter(pk=meeting_id, worker=expected).update(worker=worker)
        return Meeting.objects.filter(pk=meeting_id).values_list("worker", flat=True).first() or ""


def attendance_heartbeat(*, process: str) -> int:
    """Mark the open attendance rows of hub process ``process`` as seen now; returns how many."""
    return Attendance.objects.filter(process=process, left_at__isnull=True).update(seen_at=timezone.now())


def _close_rows(rows: QuerySet[Attendance], *, left_at: datetime | None) -> list[int]:
    """Close ``rows`` (at ``left_at``, else each at its last ``seen_at``); end every live
    meeting left without an open row. Returns the ids of the meetings that ended."""
    ended: list[int] = []
    with transaction.atomic():
        meeting_ids = set(rows.values_list("meeting_id", flat=True))
        if not meeting_ids:
            return ended
        if left_at is None:
            rows.update(left_at=F("seen_at"))
        else:
            rows.update(left_at=left_at)
        now = timezone.now()
        for meeting in Meeting.objects.select_for_update().filter(pk__in=meeting_ids, ended_at__isnull=True):
            if not Attendance.objects.filter(meeting=meeting, left_at__isnull=True).exists():
                meeting.ended_at = now
                meeting.save(update_fields=["ended_at"])
                ended.append(meeting.pk)
            _publish_room_frame(meeting)
    return ended


def attendance_close_process(*, process: str) -> list[int]:
    """Hub process ``process`` stops: close its open rows now. Returns the meetings that ended."""
    rows = Attendance.objects.filter(process=process, left_at__isnull=True)
    return _close_rows(rows, left_at=timezone.now())


def meetings_sweep(
    *, stale_after: float, unattended_after: float, now: datetime | None = None
) -> list[int]:
    """Clean up after crashed processes; returns the ids of the meetings it ended.

    Guarantees: an open attendance row not refreshed for ``stale_after``
    seconds is closed at its last ``seen_at`` (its process died without
    leaving); a live meeting left without an open row by that ends, like when
    its last participant leaves; a live meeting that nobody has been in for
    ``unattended_after`` seconds (started and never joined, or everyone gone
    without ending it) ends too. Rows refreshed in time are never touched.
    """
    now = now or timezone.now()
    stale = Attendance.objects.filter(left_at__isnull=True, seen_at__lt=now - timedelta(seconds=stale_after))
    ended = _close_rows(stale, left_at=None)
    idle_since = now - timedelta(seconds=unattended_after)
    recent = Attendance.objects.filter(meeting=OuterRef("pk")).filter(
        Q(left_at__isnull=True) | Q(left_at__gte=idle_since)
    )
    idle = Meeting.objects.filter(ended_at__isnull=True, started_at__lt=idle_since).exclude(Exists(recent))
    for meeting in idle:
        with transaction.atomic():
            if Meeting.objects.filter(pk=meeting.pk, ended_at__isnull=True).update(ended_at=now):
                ended.append(meeting.pk)
                _publish_room_frame(meeting)
    return ended
