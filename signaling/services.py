"""Writes to meetings and attendance. Each function validates, writes in one
transaction and publishes the room's ``meeting`` frame through ``hub.realtime``
on commit, so rooms show which meeting is live and who is in it."""

from __future__ import annotations

import functools
import shutil
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks import task

from hub import realtime
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import MeetingOut
from rooms.selectors import room_access
from signaling.models import (
    Attendance,
    Meeting,
    MeetingTable,
    Recording,
    RecordingMarker,
    RecordingState,
    VideoCodecChoice,
    recording_directory,
)
from signaling.selectors import (
    live_meeting,
    meeting_for_host,
    meeting_frame,
    meetings_at_once_check,
    recording_for_host,
)
from signaling.tables import table_parent, tables_closed

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
        ended = not Attendance.objects.filter(meeting=meeting, left_at__isnull=True).exists() and not _held_by_tables(
            meeting
        )
        if ended:
            meeting.ended_at = now
            meeting.save(update_fields=["ended_at"])
            _recordings_stop(meeting)
        if closed or ended:
            _publish_room_frame(meeting)
        return ended


def _held_by_tables(meeting: Meeting) -> bool:
    """Whether the meeting is split into tables or is an open table's: it stays live empty
    (everyone may be at a table, or moving between two)."""
    return MeetingTable.objects.filter(
        Q(meeting=meeting) | Q(room_id=meeting.room_id), closed_at__isnull=True
    ).exists()


def meeting_end(*, user: User, meeting_id: int) -> None:
    """A host ends the meeting for everyone. A host visiting one of its workshop tables
    ends the whole meeting, every table with it (what he expects of "End the meeting for
    everyone": the gathering is over, not his table). Raises ``not_found`` or ``forbidden``."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        parent = table_parent(meeting=meeting)
        if parent is not None:
            meeting = meeting_for_host(user=user, meeting_id=parent.pk)
        now = timezone.now()
        Meeting.objects.filter(pk=meeting.pk, ended_at__isnull=True).update(ended_at=now)
        Attendance.objects.filter(meeting=meeting, left_at__isnull=True).update(left_at=now)
        _recordings_stop(meeting)
        tables = list(MeetingTable.objects.filter(meeting=meeting, closed_at__isnull=True))
        if tables:  # everyone at a table is told it is over; every table's meeting ends
            tables_closed(meeting, tables, now, ended=True)
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
                _recordings_stop(meeting)
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
    open_tables = MeetingTable.objects.filter(closed_at__isnull=True).filter(
        Q(meeting=OuterRef("pk")) | Q(room_id=OuterRef("room_id"))
    )
    idle = (
        Meeting.objects.filter(ended_at__isnull=True, started_at__lt=idle_since)
        .exclude(Exists(recent))
        .exclude(Exists(open_tables))
    )
    for meeting in idle:
        with transaction.atomic():
            if Meeting.objects.filter(pk=meeting.pk, ended_at__isnull=True).update(ended_at=now):
                _recordings_stop(meeting)
                ended.append(meeting.pk)
                _publish_room_frame(meeting)
    return ended


# --- recordings ------------------------------------------------------------------------------

RECORDING_MARKER_MAX = 80
#: Markers a recording may hold (hosts set them by hand: a few dozen at most in practice).
RECORDING_MARKERS_MAX = 200


def recording_start(*, user: User, meeting_id: int) -> Recording:
    """A host starts recording the live meeting. Raises ``not_found``, ``forbidden``, or
    ``conflict`` when a recording already runs. The caller tells the meeting's engine."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        Meeting.objects.select_for_update().filter(pk=meeting.pk).first()
        if Recording.objects.filter(meeting=meeting, stopped_at__isnull=True).exists():
            raise HirfaError(ErrorCode.CONFLICT, _("The meeting is already being recorded."))
        recording = Recording.objects.create(meeting=meeting, started_by=user)
        _publish_room_frame(meeting)
    return recording


def _recordings_stop(meeting: Meeting) -> list[int]:
    """Stop the meeting's running recording, if any, and have its replay built (on commit)."""
    from signaling.tasks import recording_build

    stopped = list(
        Recording.objects.select_for_update().filter(meeting=meeting, stopped_at__isnull=True).values_list("pk", flat=True)
    )
    if stopped:
        Recording.objects.filter(pk__in=stopped).update(stopped_at=timezone.now(), state=RecordingState.BUILDING)
        for recording_id in stopped:
            transaction.on_commit(functools.partial(recording_build.enqueue, recording_id=recording_id))
    return stopped


def recording_stop(*, user: User, meeting_id: int) -> int | None:
    """A host stops the recording; its replay is built by the job worker. Answers the
    recording's id (None: none was running). Raises ``not_found`` or ``forbidden``."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        stopped = _recordings_stop(meeting)
        if stopped:
            _publish_room_frame(meeting)
    return stopped[0] if stopped else None


def recording_mark(*, user: User, meeting_id: int, label: str) -> RecordingMarker:
    """A host marks a chapter ("now: glazing") at this moment of the running recording.

    Raises ``not_found``, ``forbidden``, ``invalid`` (empty or too long, or too many
    markers) or ``conflict`` (nothing is being recorded)."""
    label = " ".join(label.split())
    if not label or len(label) > RECORDING_MARKER_MAX:
        raise HirfaError(
            ErrorCode.INVALID, _("A chapter needs a name of at most %(n)d characters.") % {"n": RECORDING_MARKER_MAX}
        )
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        recording = Recording.objects.select_for_update().filter(meeting=meeting, stopped_at__isnull=True).first()
        if recording is None:
            raise HirfaError(ErrorCode.CONFLICT, _("The meeting is not being recorded."))
        if recording.markers.count() >= RECORDING_MARKERS_MAX:
            raise HirfaError(ErrorCode.INVALID, _("This recording has as many chapters as allowed."))
        at = max(0.0, (timezone.now() - recording.started_at).total_seconds())
        return RecordingMarker.objects.create(recording=recording, at=round(at, 1), label=label, by=user)


def recording_delete(*, user: User, recording_id: int) -> None:
    """A host of the recorded meeting deletes the recording: the row, its markers and, once
    that commits, its files. Raises ``not_found`` (also for one he may not see) or
    ``forbidden``; a running recording is stopped first by ``recording_stop``."""
    with transaction.atomic():
        recording = recording_for_host(user=user, recording_id=recording_id, lock=True)
        if recording.stopped_at is None:
            raise HirfaError(ErrorCode.CONFLICT, _("Stop the recording first."))
        directory = recording_directory(recording.pk)
        recording.delete()
        transaction.on_commit(functools.partial(shutil.rmtree, directory, ignore_errors=True))


def recordings_expire(*, now: datetime | None = None) -> int:
    """Delete the recordings older than ``HIRFA_RECORDING_RETENTION_DAYS`` (0: keep them);
    answers how many were deleted."""
    days = settings.HIRFA_RECORDING_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    for recording_id in Recording.objects.filter(stopped_at__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            if Recording.objects.filter(pk=recording_id).delete()[0]:
                deleted += 1
                transaction.on_commit(functools.partial(shutil.rmtree, recording_directory(recording_id), ignore_errors=True))
    return deleted


@task()
def recordings_expire_job() -> int:
    """The periodic job (registered in `signaling.hooks`) running `recordings_expire`."""
    return recordings_expire()
