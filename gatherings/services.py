"""Writes of gatherings: scheduling, editing, exceptions, RSVPs, feed tokens.

Each service checks, then writes inside one transaction; notifications and e-mail
jobs are written in the same transaction and pushed live only on commit, so no
event describes a rolled-back write.

Seats: every RSVP write on a gathering locks the gathering's row
(`select_for_update`; SQLite serialises writers anyway), then counts and writes.
Two members asking for the last seat of an occurrence at once: one gets it, the
other is waitlisted. When a seat frees, the first of the waitlist (by the time he
asked) takes it and is told.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from gatherings import recurrence, selectors
from gatherings.models import (
    FeedToken,
    Gathering,
    Material,
    MaterialKind,
    OccurrenceException,
    OccurrenceMeeting,
    Rsvp,
    RsvpStatus,
    Visibility,
)
from gatherings.notify import member_notify
from gatherings.selectors import Occurrence
from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, read_bounded, validate_and_resize_image
from hub.models import User
from rooms.selectors import room_access
from signaling.models import Attendance, Meeting
from signaling.services import meeting_start

MAX_DURATION = timedelta(hours=12)
LANGUAGES = ("", "ar", "fr", "en", "ber")
MAX_HOSTS = 10
#: A masterclass has one or two presenters.
MAX_PRESENTERS = 2


def _invalid(message: str, field: str) -> HirfaError:
    return HirfaError(ErrorCode.INVALID, message, field=field)


def _aware(value: datetime, tz_name: str) -> datetime:
    """A naive datetime is read in the gathering's zone; the result is UTC."""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=recurrence.zone(tz_name))
    return value.astimezone(UTC)


@dataclass(frozen=True)
class GatheringFields:
    """Checked fields of a gathering (every time in UTC)."""

    title: str
    agenda: str
    start: datetime
    tz: str
    duration: timedelta
    language: str
    capacity: int | None
    visibility: str
    rrule: str


def gathering_check(
    *,
    title: str,
    agenda: str = "",
    start: datetime,
    tz: str = recurrence.DEFAULT_TZ,
    duration: timedelta,
    language: str = "",
    capacity: int | None = None,
    visibility: str = Visibility.MEMBERS,
    rrule: str = "",
    now: datetime | None = None,
) -> GatheringFields:
    """Validate a gathering's fields; every refusal is an `invalid` error naming the field."""
    now = now or timezone.now()
    title = (title or "").strip()
    if not title:
        raise _invalid(_("A gathering needs a title."), "title")
    if len(title) > 160:
        raise _invalid(_("The title is longer than 160 characters."), "title")
    agenda = (agenda or "").strip()
    if len(agenda) > 4000:
        raise _invalid(_("The agenda is longer than 4000 characters."), "agenda")
    recurrence.zone(tz)
    start = _aware(start, tz)
    if start <= now:
        raise _invalid(_("The start is in the past."), "start")
    if duration <= timedelta(0):
        raise _invalid(_("The duration must be longer than zero."), "duration")
    if duration > MAX_DURATION:
        raise _invalid(_("A gathering lasts at most 12 hours."), "duration")
    if language not in LANGUAGES:
        raise _invalid(_("Unknown language: %(lang)s") % {"lang": language}, "language")
    if capacity is not None and capacity < 1:
        raise _invalid(_("The capacity must be at least 1."), "capacity")
    if visibility not in Visibility.values:
        raise _invalid(_("Unknown visibility: %(v)s") % {"v": visibility}, "visibility")
    rule = recurrence.rule_normalise(rrule, start=start, tz_name=tz)
    return GatheringFields(
        title=title,
        agenda=agenda,
        start=start,
        tz=tz,
        duration=duration,
        language=language,
        capacity=capacity,
        visibility=visibility,
        rrule=rule,
    )


def _series_end(gathering: Gathering) -> datetime:
    exceptions = gathering.exceptions.all() if gathering.pk else []
    occs = selectors.gathering_occurrences(
        gathering=gathering, include_cancelled=True, exceptions=exceptions
    )
    return max(o.end for o in occs)


def _hosts(ids: list[int] | None, default: User) -> list[User]:
    if not ids:
        return [default]
    if len(ids) > MAX_HOSTS:
        raise _invalid(_("At most %(n)d hosts.") % {"n": MAX_HOSTS}, "hosts")
    users = list(User.objects.filter(pk__in=ids, is_active=True))
    if len(users) != len(set(ids)):
        raise _invalid(_("Unknown host."), "hosts")
    return users


def _presenters(*, masterclass: bool, ids: list[int]) -> list[User]:
    """The presenters of a masterclass (one or two active members); none for another gathering."""
    if not masterclass:
        if ids:
            raise _invalid(_("Only a masterclass has presenters."), "presenters")
        return []
    if not 1 <= len(set(ids)) <= MAX_PRESENTERS:
        raise _invalid(_("A masterclass has one or two presenters."), "presenters")
    users = list(User.objects.filter(pk__in=ids, is_active=True))
    if len(users) != len(set(ids)):
        raise _invalid(_("Unknown presenter."), "presenters")
    return users


def _managed(*, user: User, gathering_id: int, lock: bool = False) -> Gathering:
    """The gathering if `user` may edit it: `not_found` if he may not see it, else `forbidden`."""
    gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    if not selectors.gathering_can_manage(user=user, gathering=gathering):
        raise HirfaError(
            ErrorCode.FORBIDDEN, _("Only the moderators of this trade or wilaya may do that.")
        )
    if lock:
        gathering = Gathering.objects.select_for_update().select_related("room").get(pk=gathering.pk)
    return gathering


# --- scheduling ------------------------------------------------------------------------


def gathering_schedule(
    *,
    user: User,
    room_id: int,
    title: str,
    start: datetime,
    duration: timedelta,
    agenda: str = "",
    tz: str = recurrence.DEFAULT_TZ,
    language: str = "",
    capacity: int | None = None,
    visibility: str = Visibility.MEMBERS,
    rrule: str = "",
    host_ids: list[int] | None = None,
    masterclass: bool = False,
    presenter_ids: list[int] | None = None,
) -> Gathering:
    """Schedule a gathering in a guild, region or trade × region room.

    Only the moderators of that trade or wilaya, and admins, may; a room the user
    may not read is `not_found`; other rooms are `invalid`. A masterclass names one or
    two presenters (`invalid` otherwise, field ``presenters``).
    """
    access = room_access(user=user, room_id=room_id)
    if access.room.kind not in selectors.GATHERING_ROOM_KINDS:
        raise _invalid(_("Gatherings belong to a trade or a region room."), "room")
    if not access.can_moderate:
        raise HirfaError(
            ErrorCode.FORBIDDEN, _("Only the moderators of this trade or wilaya may schedule.")
        )
    fields = gathering_check(
        title=title,
        agenda=agenda,
        start=start,
        tz=tz,
        duration=duration,
        language=language,
        capacity=capacity,
        visibility=visibility,
        rrule=rrule,
    )
    hosts = _hosts(host_ids, user)
    presenters = _presenters(masterclass=masterclass, ids=presenter_ids or [])
    with transaction.atomic():
        gathering = Gathering(
            room=access.room, created_by=user, series_end=fields.start, masterclass=masterclass, **fields.__dict__
        )
        gathering.series_end = _series_end(gathering)
        gathering.save()
        gathering.hosts.set(hosts)
        gathering.presenters.set(presenters)
    return gathering


def gathering_update(
    *,
    user: User,
    gathering_id: int,
    host_ids: list[int] | None = None,
    masterclass: bool | None = None,
    presenter_ids: list[int] | None = None,
    **changes: Any,
) -> Gathering:
    """Change a gathering (title, agenda, start, tz, duration, language, capacity,
    visibility, rrule, hosts, masterclass and its presenters: one or two, `invalid`
    otherwise). Answers for occurrences that no longer exist are
    dropped; members who said they are going (or maybe) are told of a change of time.
    """
    unknown = set(changes) - {
        "title", "agenda", "start", "tz", "duration", "language", "capacity", "visibility", "rrule"
    }
    if unknown:
        raise _invalid(_("Unknown field: %(f)s") % {"f": ", ".join(sorted(unknown))}, "fields")
    with transaction.atomic():
        gathering = _managed(user=user, gathering_id=gathering_id, lock=True)
        if gathering.cancelled:
            raise HirfaError(ErrorCode.CONFLICT, _("This gathering is cancelled."))
        current = {
            "title": gathering.title,
            "agenda": gathering.agenda,
            "start": gathering.start,
            "tz": gathering.tz,
            "duration": gathering.duration,
            "language": gathering.language,
            "capacity": gathering.capacity,
            "visibility": gathering.visibility,
            "rrule": gathering.rrule,
        }
        merged = {**current, **changes}
        now = timezone.now()
        if "start" not in changes or _aware(changes["start"], merged["tz"]) == gathering.start:
            # A running series started in the past; only a new start must be in the future.
            now = min(now, gathering.start - timedelta(seconds=1))
        fields = gathering_check(**merged, now=now)
        # Compared once checked: a form resends every field (naive local start, a rule
        # written another way) and only a real change of the occurrences is a change.
        timing_changed = fields.duration != gathering.duration or recurrence.series_starts(
            rule=fields.rrule, start=fields.start, tz_name=fields.tz
        ) != recurrence.series_starts(rule=gathering.rrule, start=gathering.start, tz_name=gathering.tz)
        old_capacity = gathering.capacity
        for key, value in fields.__dict__.items():
            setattr(gathering, key, value)
        if timing_changed:
            starts = set(
                recurrence.series_starts(rule=fields.rrule, start=fields.start, tz_name=fields.tz)
            )
            stale_exc = [e.pk for e in gathering.exceptions.all() if e.original_start not in starts]
            OccurrenceException.objects.filter(pk__in=stale_exc).delete()
            stale_rsvp = [
                r.pk
                for r in gathering.rsvps.filter(occurrence_start__isnull=False)
                if r.occurrence_start not in starts
            ]
            Rsvp.objects.filter(pk__in=stale_rsvp).delete()
        gathering.sequence += 1
        gathering.updated_at = timezone.now()
        gathering.series_end = _series_end(gathering)
        if masterclass is not None or presenter_ids is not None:
            stage = gathering.masterclass if masterclass is None else masterclass
            if presenter_ids is None:
                presenter_ids = list(gathering.presenters.values_list("pk", flat=True)) if stage else []
            gathering.presenters.set(_presenters(masterclass=stage, ids=presenter_ids))
            gathering.masterclass = stage
        gathering.save()
        if host_ids is not None:
            gathering.hosts.set(_hosts(host_ids, user))
        if timing_changed:
            for member in _interested_members(gathering):
                member_notify(user=member, gathering=gathering, event="changed", original_start=None, start=None)
        if gathering.capacity is None or (old_capacity is not None and gathering.capacity > old_capacity):
            book = _SeatBook(gathering)
            for occ in _upcoming(gathering):
                book.promote(occ)
    return gathering


def _interested_members(gathering: Gathering) -> list[User]:
    ids = (
        Rsvp.objects.filter(
            gathering=gathering,
            status__in=[RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.WAITLISTED],
        )
        .values_list("user_id", flat=True)
        .distinct()
    )
    return list(User.objects.filter(pk__in=list(ids)))


def gathering_cancel(*, user: User, gathering_id: int) -> Gathering:
    """Cancel the whole gathering; everyone who answered going, maybe or waitlisted is told."""
    with transaction.atomic():
        gathering = _managed(user=user, gathering_id=gathering_id, lock=True)
        if gathering.cancelled:
            return gathering
        gathering.cancelled = True
        gathering.sequence += 1
        gathering.updated_at = timezone.now()
        gathering.save(update_fields=["cancelled", "sequence", "updated_at"])
        for member in _interested_members(gathering):
            member_notify(user=member, gathering=gathering, event="cancelled", original_start=None, start=None)
    return gathering


def _occurrence_members(gathering: Gathering, original_start: datetime) -> list[User]:
    answers = selectors.effective_rsvps(gathering=gathering, original_start=original_start)
    ids = [
        uid
        for uid, r in answers.items()
        if r.status in (RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.WAITLISTED)
    ]
    return list(User.objects.filter(pk__in=ids))


def _future_occurrence(gathering: Gathering, original_start: datetime) -> Occurrence:
    occ = selectors.occurrence_get(gathering=gathering, original_start=original_start)
    if occ.cancelled:
        raise HirfaError(ErrorCode.CONFLICT, _("This occurrence is cancelled."))
    if occ.start <= timezone.now():
        raise _invalid(_("This occurrence has already started."), "occurrence")
    return occ


def occurrence_cancel(*, user: User, gathering_id: int, original_start: datetime) -> Occurrence:
    """Cancel one occurrence (an EXDATE in the feeds); those going are told."""
    with transaction.atomic():
        gathering = _managed(user=user, gathering_id=gathering_id, lock=True)
        occ = _future_occurrence(gathering, original_start)
        OccurrenceException.objects.update_or_create(
            gathering=gathering,
            original_start=occ.original_start,
            defaults={"cancelled": True},
        )
        gathering.sequence += 1
        gathering.save(update_fields=["sequence"])
        for member in _occurrence_members(gathering, occ.original_start):
            member_notify(
                user=member,
                gathering=gathering,
                event="occurrence_cancelled",
                original_start=occ.original_start,
                start=occ.start,
            )
    return selectors.occurrence_get(gathering=gathering, original_start=occ.original_start)


def occurrence_move(
    *,
    user: User,
    gathering_id: int,
    original_start: datetime,
    new_start: datetime,
    new_duration: timedelta | None = None,
) -> Occurrence:
    """Move one occurrence (a RECURRENCE-ID override in the feeds); answers stay with it."""
    with transaction.atomic():
        gathering = _managed(user=user, gathering_id=gathering_id, lock=True)
        occ = _future_occurrence(gathering, original_start)
        fields = gathering_check(
            title=gathering.title,
            start=new_start,
            tz=gathering.tz,
            duration=new_duration or gathering.duration,
        )
        OccurrenceException.objects.update_or_create(
            gathering=gathering,
            original_start=occ.original_start,
            defaults={
                "cancelled": False,
                "new_start": fields.start,
                "new_duration": new_duration,
            },
        )
        gathering.sequence += 1
        gathering.series_end = _series_end(gathering)
        gathering.save(update_fields=["sequence", "series_end"])
        for member in _occurrence_members(gathering, occ.original_start):
            member_notify(
                user=member,
                gathering=gathering,
                event="moved",
                original_start=occ.original_start,
                start=fields.start,
            )
    return selectors.occurrence_get(gathering=gathering, original_start=occ.original_start)


def gathering_split(
    *, user: User, gathering_id: int, original_start: datetime, **changes: Any
) -> Gathering:
    """"This and the following ones": the series ends before `original_start`, and a new
    gathering carries the rest with `changes` applied. Exceptions and answers of the
    later occurrences move to it (shifted by the change of start, if any); series
    answers are copied. Returns the new gathering.
    """
    with transaction.atomic():
        gathering = _managed(user=user, gathering_id=gathering_id, lock=True)
        if not gathering.rrule:
            raise _invalid(_("Only a recurring gathering can be split."), "occurrence")
        occ = _future_occurrence(gathering, original_start)
        starts = recurrence.series_starts(rule=gathering.rrule, start=gathering.start, tz_name=gathering.tz)
        index = starts.index(occ.original_start)
        if index == 0:
            raise _invalid(_("To change every occurrence, edit the gathering itself."), "occurrence")
        rest = starts[index:]
        rule = gathering.rrule
        if "COUNT=" in rule:
            rule = recurrence.rule_with_count(rule, len(rest))
        base = {
            "title": gathering.title,
            "agenda": gathering.agenda,
            "start": occ.original_start,
            "tz": gathering.tz,
            "duration": gathering.duration,
            "language": gathering.language,
            "capacity": gathering.capacity,
            "visibility": gathering.visibility,
            "rrule": rule,
        }
        host_ids = changes.pop("host_ids", None)
        masterclass = bool(changes.pop("masterclass", gathering.masterclass))
        presenter_ids = changes.pop("presenter_ids", None)
        if presenter_ids is None:
            presenter_ids = list(gathering.presenters.values_list("pk", flat=True)) if masterclass else []
        presenters = _presenters(masterclass=masterclass, ids=presenter_ids)
        fields = gathering_check(**{**base, **changes})
        shift = fields.start - occ.original_start
        new = Gathering(
            room=gathering.room,
            created_by=user,
            split_from=gathering,
            masterclass=masterclass,
            series_end=fields.start,
            **fields.__dict__,
        )
        new.series_end = _series_end(new)
        new.save()
        new.hosts.set(_hosts(host_ids, user) if host_ids else list(gathering.hosts.all()))
        new.presenters.set(presenters)
        new_starts = set(recurrence.series_starts(rule=new.rrule, start=new.start, tz_name=new.tz))
        for exc in gathering.exceptions.filter(original_start__gte=occ.original_start):
            moved_to = exc.original_start + shift
            if moved_to in new_starts:
                exc.gathering = new
                exc.original_start = moved_to
                exc.save()
            else:
                exc.delete()
        for r in gathering.rsvps.filter(occurrence_start__gte=occ.original_start):
            assert r.occurrence_start is not None  # the filter's
            moved_to = r.occurrence_start + shift
            if moved_to in new_starts:
                r.gathering = new
                r.occurrence_start = moved_to
                r.save()
            else:
                r.delete()
        for r in gathering.rsvps.filter(occurrence_start__isnull=True):
            Rsvp.objects.create(
                gathering=new, user_id=r.user_id, status=r.status, requested_at=r.requested_at
            )
        gathering.rrule = recurrence.rule_until_before(gathering.rrule, occ.original_start)
        gathering.sequence += 1
        gathering.series_end = _series_end(gathering)
        gathering.save(update_fields=["rrule", "sequence", "series_end"])
        if fields.duration != gathering.duration or sorted(new_starts) != rest:
            for member in _interested_members(new):
                member_notify(user=member, gathering=new, event="changed", original_start=None, start=None)
    return new


# --- RSVPs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsvpResult:
    """The answer as recorded: `status` is `waitlisted` when `going` found no seat."""

    gathering_id: int
    occurrence: str | None
    status: str
    waitlist_position: int | None


class _SeatBook:
    """Every answer of one gathering, in memory, to count seats per occurrence.

    Only used while the gathering's row is locked."""

    def __init__(self, gathering: Gathering) -> None:
        self.gathering = gathering
        self.rows = list(Rsvp.objects.filter(gathering=gathering))

    def answers(self, occ: Occurrence) -> dict[int, Rsvp]:
        return selectors.effective_rsvps(
            gathering=self.gathering, original_start=occ.original_start, rows=self.rows
        )

    def taken(self, occ: Occurrence, *, excluding: int | None = None) -> int:
        return sum(
            1
            for uid, r in self.answers(occ).items()
            if r.status == RsvpStatus.GOING and uid != excluding
        )

    def status_of(self, occ: Occurrence, user_id: int) -> str | None:
        r = self.answers(occ).get(user_id)
        return r.status if r else None

    def waitlist_position(self, occ: Occurrence, user_id: int) -> int | None:
        queue = self._waitlist(occ)
        ids = [r.user_id for r in queue]
        return ids.index(user_id) + 1 if user_id in ids else None

    def _waitlist(self, occ: Occurrence) -> list[Rsvp]:
        return sorted(
            (
                r
                for r in self.rows
                if r.occurrence_start is not None
                and r.occurrence_start.astimezone(UTC) == occ.original_start
                and r.status == RsvpStatus.WAITLISTED
            ),
            key=lambda r: (r.requested_at, r.pk),
        )

    def set_occurrence(self, occ: Occurrence, user_id: int, status: str, *, requested: bool) -> Rsvp:
        now = timezone.now()
        for r in self.rows:
            if r.user_id == user_id and r.occurrence_start is not None and r.occurrence_start.astimezone(UTC) == occ.original_start:
                r.status = status
                r.updated_at = now
                if requested:
                    r.requested_at = now
                r.save(update_fields=["status", "updated_at", "requested_at"])
                return r
        row = Rsvp.objects.create(
            gathering=self.gathering,
            user_id=user_id,
            occurrence_start=occ.original_start,
            status=status,
            requested_at=now,
            updated_at=now,
        )
        self.rows.append(row)
        return row

    def promote(self, occ: Occurrence) -> list[int]:
        """Give free seats of `occ` to the waitlist, in order, and tell each member promoted."""
        capacity = self.gathering.capacity
        promoted: list[int] = []
        for row in self._waitlist(occ):
            if capacity is not None and self.taken(occ) >= capacity:
                break
            row.status = RsvpStatus.GOING
            row.updated_at = timezone.now()
            row.save(update_fields=["status", "updated_at"])
            promoted.append(row.user_id)
            member_notify(
                user=User.objects.get(pk=row.user_id),
                gathering=self.gathering,
                event="promoted",
                original_start=occ.original_start,
                start=occ.start,
            )
        return promoted


def _upcoming(gathering: Gathering) -> list[Occurrence]:
    return selectors.gathering_occurrences(gathering=gathering, after=timezone.now())


def rsvp_set(
    *, user: User, gathering_id: int, status: str, original_start: datetime | None = None
) -> RsvpResult:
    """Answer going, maybe or not going, for one occurrence or (no `original_start`) the series.

    A series answer replaces the member's answers for the upcoming occurrences. With a
    capacity, `going` takes a seat where one is free and joins the waitlist elsewhere;
    leaving a seat promotes the next on the waitlist. Refused: a cancelled gathering
    or occurrence (`conflict`), a finished occurrence (`invalid`), an unknown status.
    """
    if status not in (RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.NOT_GOING):
        raise _invalid(_("Answer going, maybe or not going."), "status")
    selectors.gathering_get(user=user, gathering_id=gathering_id)
    with transaction.atomic():
        gathering = Gathering.objects.select_for_update().select_related("room").get(pk=gathering_id)
        if gathering.cancelled:
            raise HirfaError(ErrorCode.CONFLICT, _("This gathering is cancelled."))
        book = _SeatBook(gathering)
        if original_start is not None:
            occ = selectors.occurrence_get(gathering=gathering, original_start=original_start)
            if occ.cancelled:
                raise HirfaError(ErrorCode.CONFLICT, _("This occurrence is cancelled."))
            if occ.end <= timezone.now():
                raise _invalid(_("This occurrence is over."), "occurrence")
            before = book.status_of(occ, user.pk)
            final = status
            if status == RsvpStatus.GOING and before == RsvpStatus.WAITLISTED:
                final = RsvpStatus.WAITLISTED  # keeps his place in the queue
            elif (
                status == RsvpStatus.GOING
                and before != RsvpStatus.GOING
                and gathering.capacity is not None
                and book.taken(occ) >= gathering.capacity
            ):
                final = RsvpStatus.WAITLISTED
            book.set_occurrence(
                occ, user.pk, final, requested=final == RsvpStatus.WAITLISTED and before != RsvpStatus.WAITLISTED
            )
            if before == RsvpStatus.GOING and final != RsvpStatus.GOING:
                book.promote(occ)
            return RsvpResult(
                gathering_id=gathering.pk,
                occurrence=occ.key,
                status=final,
                waitlist_position=book.waitlist_position(occ, user.pk),
            )
        upcoming = _upcoming(gathering)
        before_by_occ = {occ.original_start: book.status_of(occ, user.pk) for occ in upcoming}
        now = timezone.now()
        Rsvp.objects.filter(
            gathering=gathering, user=user, occurrence_start__gte=now
        ).exclude(
            status=RsvpStatus.WAITLISTED if status == RsvpStatus.GOING else "-"
        ).delete()
        Rsvp.objects.update_or_create(
            gathering=gathering,
            user=user,
            occurrence_start=None,
            defaults={"status": status, "updated_at": now},
        )
        book = _SeatBook(gathering)
        waitlisted = 0
        for occ in upcoming:
            before = before_by_occ[occ.original_start]
            if status == RsvpStatus.GOING and gathering.capacity is not None and before != RsvpStatus.GOING:
                if before == RsvpStatus.WAITLISTED:
                    waitlisted += 1
                elif book.taken(occ, excluding=user.pk) >= gathering.capacity:
                    book.set_occurrence(occ, user.pk, RsvpStatus.WAITLISTED, requested=True)
                    waitlisted += 1
        for occ in upcoming:
            if before_by_occ[occ.original_start] == RsvpStatus.GOING and book.status_of(occ, user.pk) != RsvpStatus.GOING:
                book.promote(occ)
        return RsvpResult(
            gathering_id=gathering.pk,
            occurrence=None,
            status=status,
            waitlist_position=None,
        )


# --- personal feed tokens ---------------------------------------------------------------------


def feed_token_get(*, user: User) -> FeedToken:
    """`user`'s personal calendar token, created on first use."""
    return FeedToken.objects.get_or_create(user=user)[0]


def feed_token_revoke(*, user: User) -> FeedToken:
    """Revoke `user`'s personal calendar URL: the old token stops working, a new one is issued."""
    with transaction.atomic():
        FeedToken.objects.filter(user=user).delete()
        return FeedToken.objects.create(user=user)


# --- live meetings -----------------------------------------------------------------------


def _left_behind_meeting_end(*, gathering: Gathering, occurrence: Occurrence, now: datetime) -> None:
    """End the room's live meeting when it was opened for another occurrence that is over
    and nobody is in it (a Join nobody followed into the meeting leaves one behind).

    Signaling ends a meeting when its last participant leaves, never one nobody entered;
    without this, such a meeting would answer `conflict` to every later occurrence.
    A meeting someone is still in is left alone.
    """
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().filter(room_id=gathering.room_id, ended_at__isnull=True).first()
        if meeting is None:
            return
        link = OccurrenceMeeting.objects.select_related("gathering").filter(meeting=meeting).first()
        if link is None or (link.gathering_id == gathering.pk and link.occurrence_start == occurrence.original_start):
            return
        try:
            other_end = selectors.occurrence_get(gathering=link.gathering, original_start=link.occurrence_start).end
        except HirfaError:  # that occurrence no longer exists (the series was edited)
            other_end = now
        if other_end > now or Attendance.objects.filter(meeting=meeting, left_at__isnull=True).exists():
            return
        Meeting.objects.filter(pk=meeting.pk, ended_at__isnull=True).update(ended_at=timezone.now())


@dataclass(frozen=True)
class OpenedMeeting:
    """The live meeting a member was let into for one occurrence."""

    meeting_id: int
    room_id: int
    gathering_id: int
    occurrence: str
    #: He hosts it (a host of the gathering, a moderator of the room, an admin).
    host: bool


def occurrence_meeting_open(
    *, user: User, gathering_id: int, original_start: datetime, now: datetime | None = None
) -> OpenedMeeting:
    """Open the live meeting of one occurrence: the live meeting of the gathering's room,
    started if there is none, linked to the occurrence so that its attendance is the
    occurrence's (`OccurrenceMeeting`).

    Guarantees: only inside the join window (10 minutes before the start to the end:
    `invalid` otherwise, naming when it opens); only for those who may join
    (`selectors.occurrence_may_join`: `forbidden` otherwise); never for a cancelled
    occurrence or gathering (`conflict`); a gathering one may not see is `not_found`.
    Idempotent and safe under concurrency: while the meeting is live every call returns
    the same meeting. When the room's live meeting already serves another occurrence
    (two gatherings of one room overlapping), `conflict`.
    """
    now = now or timezone.now()
    gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    occ = selectors.occurrence_get(gathering=gathering, original_start=original_start)
    if occ.cancelled:
        raise HirfaError(ErrorCode.CONFLICT, _("This occurrence is cancelled."), occurrence=occ.key)
    if not selectors.occurrence_joinable(occurrence=occ, now=now):
        opens, _closes = selectors.occurrence_join_window(occurrence=occ)
        if now < opens:
            raise HirfaError(
                ErrorCode.INVALID,
                _("Join opens 10 minutes before the start."),
                occurrence=occ.key,
                opens=opens.isoformat(),
            )
        raise HirfaError(ErrorCode.INVALID, _("This occurrence is over."), occurrence=occ.key)
    if not selectors.occurrence_may_join(user=user, gathering=gathering, original_start=occ.original_start):
        raise HirfaError(
            ErrorCode.FORBIDDEN,
            _("This meeting is for the room's members and those going to the gathering."),
            occurrence=occ.key,
        )
    _left_behind_meeting_end(gathering=gathering, occurrence=occ, now=now)
    # The caller's right to start comes from the gathering, not from moderating the room.
    started = meeting_start(user=user, room_id=gathering.room_id, start_allowed=True)
    if started.meeting is None:  # ended between its start and this read: never expected
        raise HirfaError(ErrorCode.CONFLICT, _("The meeting could not be opened; try again."))
    link, _created = OccurrenceMeeting.objects.get_or_create(
        meeting_id=started.meeting,
        defaults={"gathering": gathering, "occurrence_start": occ.original_start, "opened_by": user},
    )
    if link.gathering_id != gathering.pk or link.occurrence_start != occ.original_start:
        raise HirfaError(
            ErrorCode.CONFLICT,
            _("Another gathering's meeting is live in this room; try again when it ends."),
            occurrence=occ.key,
        )
    return OpenedMeeting(
        meeting_id=started.meeting,
        room_id=gathering.room_id,
        gathering_id=gathering.pk,
        occurrence=occ.key,
        host=selectors.gathering_hosts_or_manages(user=user, gathering=gathering),
    )


# --- materials --------------------------------------------------------------------------

#: A gathering holds at most this many materials (photos and PDFs).
MAX_MATERIALS = 12
MATERIAL_PHOTO_MAX_BYTES = 8_000_000
MATERIAL_PHOTO_MAX_PIXELS = 40_000_000
MATERIAL_PHOTO_MAX_SIDE = 2048
MATERIAL_PDF_MAX_BYTES = 10_000_000
#: What a PDF may not hold: scripts, launched programs, embedded files, forms that submit.
_PDF_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFile|SubmitForm|ImportData|RichMedia)\b")


def _pdf_check(data: bytes) -> None:
    """`invalid` unless `data` is a PDF by its content (header in the first 1 KB, end-of-file
    marker in the last 1 KB) with nothing active in it."""
    if b"%PDF-" not in data[:1024] or b"%%EOF" not in data[-1024:]:
        raise HirfaError(ErrorCode.INVALID, _("This file is not a photo (JPEG, PNG, WebP) or a PDF."), field="file")
    if _PDF_ACTIVE.search(data):
        raise HirfaError(ErrorCode.INVALID, _("This PDF holds scripts or embedded files: export it again as a plain PDF."), field="file")


def _too_large(max_bytes: int) -> HirfaError:
    return HirfaError(
        ErrorCode.TOO_LONG,
        _("The file is too large: at most %(mb).0f MB.") % {"mb": max_bytes / 1_000_000},
        field="file",
    )


def material_add(*, user: User, gathering_id: int, upload: Upload, title: str = "") -> Material:
    """Attach a photo or a PDF to a gathering, for its hosts and the moderators of its room.

    The kind is told by the content, never by the name: a PDF (probed: `_pdf_check`, at
    most `MATERIAL_PDF_MAX_BYTES`) or an image re-encoded by `hub.images` (at most
    `MATERIAL_PHOTO_MAX_BYTES`). Raises `not_found` (a gathering he may not see),
    `forbidden` (no host), `invalid`, `too_long`, `limit_reached` (`MAX_MATERIALS`).
    """
    gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    if not selectors.gathering_hosts_or_manages(user=user, gathering=gathering):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the gathering's hosts may add materials."))
    title = title.strip()
    if len(title) > 160:
        raise _invalid(_("The title is too long."), "title")
    data = read_bounded(upload, MATERIAL_PDF_MAX_BYTES, too_large=_too_large)
    if data[:1024].find(b"%PDF-") >= 0:
        _pdf_check(data)
        kind, content_type, extension, body = MaterialKind.PDF, "application/pdf", "pdf", data
        image = None
    else:
        if len(data) > MATERIAL_PHOTO_MAX_BYTES:
            raise _too_large(MATERIAL_PHOTO_MAX_BYTES)
        image = validate_and_resize_image(
            data,
            max_bytes=MATERIAL_PHOTO_MAX_BYTES,
            max_pixels=MATERIAL_PHOTO_MAX_PIXELS,
            max_side=MATERIAL_PHOTO_MAX_SIDE,
        )
        kind, content_type, extension, body = MaterialKind.PHOTO, image.content_type, image.extension, image.data
    with transaction.atomic():
        locked = Gathering.objects.select_for_update().get(pk=gathering.pk)
        if Material.objects.filter(gathering=locked).count() >= MAX_MATERIALS:
            raise HirfaError(
                ErrorCode.LIMIT_REACHED, _("A gathering holds at most %(n)d materials.") % {"n": MAX_MATERIALS}
            )
        material = Material(
            gathering=locked, kind=kind, title=title, content_type=content_type, size=len(body), uploaded_by=user
        )
        name = f"{gathering.pk}/{secrets.token_urlsafe(12)}"
        material.file.save(f"{name}.{extension}", ContentFile(body), save=False)
        if image is not None:
            material.thumbnail.save(f"{name}-thumb.{extension}", ContentFile(image.thumbnail), save=False)
            material.thumbnail_width, material.thumbnail_height = image.thumbnail_width, image.thumbnail_height
        material.save()
    return material


def material_delete(*, user: User, material_id: int) -> None:
    """A host removes a material (and its files: the photo's thumbnail too). `not_found` for a
    material he may not see."""
    material = selectors.material_get(user=user, material_id=material_id)
    if not selectors.gathering_hosts_or_manages(user=user, gathering=material.gathering):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the gathering's hosts may remove materials."))
    storage = material.file.storage
    names = [n for n in (material.file.name, material.thumbnail.name) if n]
    material.delete()

    def delete_files() -> None:
        for name in names:
            storage.delete(name)

    transaction.on_commit(delete_files)
