"""Live meetings of rooms and who attended them.

A meeting is live while ``ended_at`` is null; a room has at most one live
meeting. Attendance rows are the durable record of who was in a meeting and
when (gatherings use them); an open row names the hub process holding the
participant's socket, which refreshes ``seen_at`` (``signaling.liveness``), so
the rows of a crashed process are found and closed; the live media state (tracks, hands, mutes) lives
with the SFU that holds the meeting, not here.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rooms.models import Room


class VideoCodecChoice(models.TextChoices):
    VP8 = "vp8", "VP8"
    H264 = "h264", "H.264"


class Meeting(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="meetings")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    locked = models.BooleanField(_("locked"), default=False)
    lobby = models.BooleanField(_("lobby"), default=False)
    video_codec = models.CharField(
        _("video codec"), max_length=8, choices=VideoCodecChoice.choices, default=VideoCodecChoice.VP8
    )
    #: The SFU worker holding the meeting ("embedded" for the in-process SFU; "" before the first join).
    worker = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("meeting")
        verbose_name_plural = _("meetings")
        constraints = [
            models.UniqueConstraint(
                fields=["room"], condition=Q(ended_at__isnull=True), name="meeting_one_live_per_room"
            )
        ]

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def __str__(self) -> str:
        return f"{self.room} · {self.started_at:%Y-%m-%d %H:%M}"


class Attendance(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="attendances")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField(_("joined at"), default=timezone.now)
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    #: The hub process holding the participant's socket (it closes its rows when it stops).
    process = models.CharField(max_length=64, blank=True, default="")
    #: Refreshed by that process while the participant stays: an old one means the process died.
    seen_at = models.DateTimeField(_("last seen at"), default=timezone.now)

    class Meta:
        verbose_name = _("attendance")
        verbose_name_plural = _("attendances")
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "user"],
                condition=Q(left_at__isnull=True),
                name="attendance_one_open_per_user",
            )
        ]
        indexes = [
            models.Index(fields=["meeting", "left_at"]),
            models.Index(fields=["process"], condition=Q(left_at__isnull=True), name="attendance_open_process"),
            models.Index(fields=["seen_at"], condition=Q(left_at__isnull=True), name="attendance_open_seen"),
        ]


def recording_directory(recording_id: int) -> Path:
    """Where a recording's files live (private storage, shared by SFU and job workers)."""
    return Path(settings.HIRFA_RECORDINGS_DIR) / str(int(recording_id))


class RecordingState(models.TextChoices):
    RECORDING = "recording", _("Recording")
    BUILDING = "building", _("Being prepared")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class Recording(models.Model):
    """A recording of a meeting: the SFU writes each participant's tracks while it runs
    (``signaling/sfu/recorder.py``), the job worker builds the replay afterwards
    (``signaling/replay.py``). Its files live in ``recording_directory(pk)``, in private
    storage, and go with the row."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="recordings")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    state = models.CharField(max_length=16, choices=RecordingState.choices, default=RecordingState.RECORDING)
    #: Percent of the replay built.
    progress = models.PositiveSmallIntegerField(default=0)
    #: Seconds of the replay, once built.
    duration = models.FloatField(null=True, blank=True)
    video_bytes = models.BigIntegerField(default=0)
    audio_bytes = models.BigIntegerField(default=0)
    #: Why the last build failed (English, for the admins).
    error = models.CharField(max_length=300, blank=True, default="")
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        constraints = [
            models.UniqueConstraint(
                fields=["meeting"], condition=Q(stopped_at__isnull=True), name="recording_one_running_per_meeting"
            )
        ]
        indexes = [models.Index(fields=["state", "stopped_at"])]

    def __str__(self) -> str:
        return f"{self.meeting} · {self.started_at:%H:%M}"


class RecordingMarker(models.Model):
    """A chapter a host set while recording ("now: glazing"), ``at`` seconds in."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="markers")
    at = models.FloatField()
    label = models.CharField(_("label"), max_length=80)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]


class RecordingAppearance(models.Model):
    """A member whose camera or voice is in a recording (from its manifests, at build)."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="appearances")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["recording", "user"], name="recording_appearance_once")]


class MeetingTable(models.Model):
    """One table of a meeting split into small groups (a workshop's breakout).

    A table is a private room of its own (its chat; its members are the members seated at
    it and the host who opened it) whose own live meeting they join: each table is a
    meeting of its own on the SFU. It is open while ``closed_at`` is null; while a meeting
    has open tables it does not end when nobody is left in it (everyone may be at a
    table), and neither does an open table's meeting.
    """

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="tables")
    room = models.OneToOneField(Room, on_delete=models.CASCADE, related_name="meeting_table")
    number = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    opened_at = models.DateTimeField(default=timezone.now)
    #: When the host's timer brings everyone back (null: no timer).
    ends_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["meeting", "number"]
        indexes = [models.Index(fields=["meeting", "closed_at"], name="table_meeting_open")]

    def __str__(self) -> str:
        return f"{self.meeting_id} · {self.number} {self.label}"
