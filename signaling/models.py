"""Live meetings of rooms and who attended them.

A meeting is live while ``ended_at`` is null; a room has at most one live
meeting. Attendance rows are the durable record of who was in a meeting and
when (gatherings use them); an open row names the hub process holding the
participant's socket, which refreshes ``seen_at`` (``signaling.liveness``), so
the rows of a crashed process are found and closed; the live media state (tracks, hands, mutes) lives
with the SFU that holds the meeting, not here.
"""

from __future__ import annotations

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
