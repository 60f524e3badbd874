"""Writes to meetings and attendance. Each function validates, writes in one
transaction and publishes the room's ``meeting`` frame through ``hub.realtime``
on commit, so rooms show which meeting is live and who is in it."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from hub import realtime
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import MeetingOut, encode
from rooms.selectors import room_access
from signaling.models import Attendance, Meeting, VideoCodecChoice
from signaling.selectors import live_meeting, meeting_for_host, meeting_frame


def _publish_room_frame(meeting: Meeting) -> None:
    def publish() -> None:
        fresh = Meeting.objects.filter(pk=meeting.pk).first()
        realtime.publish_now(
            realtime.room_group(meeting.room_id),
            encode(meeting_frame(meeting=fresh, room_id=meeting.room_id)),
        )

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
    ``user`` may start it (a gathering's Join, ``hub.gatherings.services``);
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


def meeting_attend(*, user: User, meeting_id: int) -> None:
    """Record that ``user`` is in the meeting (idempotent while he stays)."""
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().filter(pk=meeting_id).first()
        if meeting is None or not meeting.live:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such meeting."))
        if Attendance.objects.filter(meeting=meeting, user=user, left_at__isnull=True).exists():
            return
        Attendance.objects.create(meeting=meeting, user=user)
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
