"""Gatherings, their exceptions, RSVPs, reminders sent and calendar-feed tokens.

Times are stored in UTC; `tz` names the zone the series is defined in, and the
recurrence is expanded there (see `recurrence.py`). An occurrence is identified
by its *original* start (the RFC 5545 RECURRENCE-ID), which never changes when
the occurrence is moved.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from gatherings.recurrence import DEFAULT_TZ


class Visibility(models.TextChoices):
    MEMBERS = "members", _("Members of the room")
    PUBLIC = "public", _("Public")


class Gathering(models.Model):
    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="gatherings")
    title = models.CharField(_("title"), max_length=160)
    agenda = models.TextField(_("agenda"), max_length=4000, blank=True)
    hosts = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="hosted_gatherings")
    start = models.DateTimeField(_("start"))
    tz = models.CharField(_("time zone"), max_length=64, default=DEFAULT_TZ)
    duration = models.DurationField(_("duration"))
    language = models.CharField(_("language"), max_length=8, blank=True, default="")
    capacity = models.PositiveIntegerField(_("capacity"), null=True, blank=True)
    visibility = models.CharField(
        _("visibility"), max_length=16, choices=Visibility.choices, default=Visibility.MEMBERS
    )
    rrule = models.CharField(_("recurrence rule"), max_length=300, blank=True, default="")
    # The end of the last occurrence (moves included): lets reads skip finished series.
    series_end = models.DateTimeField(db_index=True)
    cancelled = models.BooleanField(_("cancelled"), default=False)
    # A masterclass: its presenters speak; everyone else listens until a presenter or host
    # lets him speak (the meeting engine enforces it).
    masterclass = models.BooleanField(_("masterclass"), default=False)
    presenters = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="presented_gatherings")
    # Set on the second half of a "this and the following ones" split.
    split_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="continuations"
    )
    # RFC 5545 SEQUENCE: bumped on every change calendar clients must notice.
    sequence = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("gathering")
        verbose_name_plural = _("gatherings")
        indexes = [models.Index(fields=["room", "series_end"])]
        constraints = [
            models.CheckConstraint(condition=Q(duration__gt=timedelta(0)), name="gathering_duration_positive")
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def uid(self) -> str:
        return f"gathering-{self.pk}@hirfa"


class OccurrenceException(models.Model):
    """One occurrence cancelled or moved; keyed by its original start."""

    gathering = models.ForeignKey(Gathering, on_delete=models.CASCADE, related_name="exceptions")
    original_start = models.DateTimeField()
    cancelled = models.BooleanField(default=False)
    new_start = models.DateTimeField(null=True, blank=True)
    new_duration = models.DurationField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gathering", "original_start"], name="occurrence_exception_unique"
            )
        ]


class RsvpStatus(models.TextChoices):
    GOING = "going", _("Going")
    MAYBE = "maybe", _("Maybe")
    NOT_GOING = "not_going", _("Not going")
    WAITLISTED = "waitlisted", _("On the waitlist")


class Rsvp(models.Model):
    """A member's answer for one occurrence, or for the whole series (`occurrence_start` null).

    An answer for one occurrence overrides the series answer for that occurrence.
    `waitlisted` only exists for one occurrence: a seat is always per occurrence.
    """

    gathering = models.ForeignKey(Gathering, on_delete=models.CASCADE, related_name="rsvps")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rsvps")
    occurrence_start = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RsvpStatus.choices)
    # Waitlist order: when the member last asked for a seat.
    requested_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gathering", "user"],
                condition=Q(occurrence_start__isnull=True),
                name="rsvp_one_per_series",
            ),
            models.UniqueConstraint(
                fields=["gathering", "user", "occurrence_start"],
                condition=Q(occurrence_start__isnull=False),
                name="rsvp_one_per_occurrence",
            ),
            models.CheckConstraint(
                condition=~Q(status="waitlisted") | Q(occurrence_start__isnull=False),
                name="rsvp_waitlist_per_occurrence",
            ),
        ]
        indexes = [models.Index(fields=["gathering", "occurrence_start", "status"])]


class ReminderSent(models.Model):
    """The claim that makes a reminder go out once: one row per member, occurrence and offset.

    The row, the notification and the e-mail job are written in one transaction;
    a second worker's insert fails on the unique constraint and it sends nothing.
    """

    gathering = models.ForeignKey(Gathering, on_delete=models.CASCADE, related_name="+")
    occurrence_start = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    offset_minutes = models.PositiveIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gathering", "occurrence_start", "user", "offset_minutes"],
                name="reminder_sent_once",
            )
        ]


def _new_token() -> str:
    return secrets.token_urlsafe(24)


class FeedToken(models.Model):
    """The secret in a member's personal calendar URL; revoking replaces it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gathering_feed")
    token = models.CharField(max_length=64, unique=True, default=_new_token)
    created_at = models.DateTimeField(default=timezone.now)


class OccurrenceMeeting(models.Model):
    """The live meeting opened for one occurrence (keyed by its original start).

    The meeting's attendance (`signaling.models.Attendance`) is the occurrence's.
    An occurrence may have several meetings (one ends when everybody leaves and a
    later Join opens another); a meeting serves at most one occurrence.
    """

    gathering = models.ForeignKey(Gathering, on_delete=models.CASCADE, related_name="meetings")
    occurrence_start = models.DateTimeField()
    meeting = models.OneToOneField(
        "signaling.Meeting", on_delete=models.CASCADE, related_name="gathering_occurrence"
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("meeting of an occurrence")
        verbose_name_plural = _("meetings of occurrences")
        indexes = [models.Index(fields=["gathering", "occurrence_start"])]


def private_storage() -> FileSystemStorage:
    """Files only a permission check hands out (`hub.protected_files`)."""
    return FileSystemStorage(location=settings.PRIVATE_MEDIA_ROOT, base_url=None)


class MaterialKind(models.TextChoices):
    PHOTO = "photo", _("Photo")
    PDF = "pdf", _("PDF")


class Material(models.Model):
    """A photo or a PDF a host attached to a gathering (a masterclass's materials list).

    Stored in private storage; whoever may see the gathering may download it, through a
    permission-checked view. Photos are re-encoded (`hub.images`); PDFs are probed.
    """

    gathering = models.ForeignKey(Gathering, on_delete=models.CASCADE, related_name="materials")
    kind = models.CharField(max_length=8, choices=MaterialKind.choices)
    title = models.CharField(_("title"), max_length=160, blank=True, default="")
    file = models.FileField(upload_to="materials/", storage=private_storage)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    #: A photo's small copy (at most 320 px a side, re-encoded like it) for the gathering's
    #: page, which shows it lazily; empty for a PDF (and for photos added before it).
    thumbnail = models.FileField(upload_to="materials/", storage=private_storage, blank=True, default="")
    thumbnail_width = models.PositiveSmallIntegerField(default=0)
    thumbnail_height = models.PositiveSmallIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("material")
        verbose_name_plural = _("materials")
        indexes = [models.Index(fields=["gathering", "created_at"])]
