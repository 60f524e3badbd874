"""Reads of gatherings, occurrences and RSVPs.

Every read of one gathering goes through `gathering_get`, which answers a missing
gathering and one the user may not see with the same `not_found`.

Who sees what: admins everything; everyone else the public gatherings, the
gatherings of the rooms he follows, and those he hosts or moderates — never in a
room he is banned from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from gatherings import recurrence
from gatherings.models import (
    FeedToken,
    Gathering,
    Material,
    OccurrenceException,
    OccurrenceMeeting,
    Rsvp,
    RsvpStatus,
    Visibility,
)
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from rooms.models import Membership, Message, RoomKind
from rooms.selectors import room_access, user_moderates
from signaling.models import Attendance, Meeting, Recording, RecordingState

NOT_FOUND_MESSAGE = "No such gathering."
GATHERING_ROOM_KINDS = (RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION)
JOIN_OPENS_BEFORE = timedelta(minutes=10)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence. `key` (its original start in UTC) identifies it for ever."""

    gathering_id: int
    key: str
    original_start: datetime
    start: datetime
    end: datetime
    cancelled: bool
    moved: bool

    def local_start(self, tz_name: str) -> datetime:
        return self.start.astimezone(recurrence.zone(tz_name))


# --- occurrences -----------------------------------------------------------------


def gathering_occurrences(
    *,
    gathering: Gathering,
    after: datetime | None = None,
    before: datetime | None = None,
    include_cancelled: bool = False,
    exceptions: Iterable[OccurrenceException] | None = None,
) -> list[Occurrence]:
    """The occurrences of `gathering` whose time span meets [after, before), ordered by start.

    Exceptions apply: a moved occurrence is where it was moved to, a cancelled one is
    left out unless `include_cancelled`. A cancelled gathering has only cancelled ones.
    """
    if exceptions is None:
        exceptions = gathering.exceptions.all()
    by_start = {e.original_start.astimezone(UTC): e for e in exceptions}
    found: list[Occurrence] = []
    for original in recurrence.series_starts(
        rule=gathering.rrule, start=gathering.start, tz_name=gathering.tz
    ):
        exc = by_start.get(original)
        start = exc.new_start.astimezone(UTC) if exc and exc.new_start else original
        duration = exc.new_duration if exc and exc.new_duration else gathering.duration
        cancelled = gathering.cancelled or bool(exc and exc.cancelled)
        if cancelled and not include_cancelled:
            continue
        end = start + duration
        if after is not None and end <= after:
            continue
        if before is not None and start >= before:
            continue
        found.append(
            Occurrence(
                gathering_id=gathering.pk,
                key=recurrence.occurrence_key(original),
                original_start=original,
                start=start,
                end=end,
                cancelled=cancelled,
                moved=bool(exc and exc.new_start and exc.new_start != original),
            )
        )
    found.sort(key=lambda o: o.start)
    return found


def occurrence_get(*, gathering: Gathering, original_start: datetime) -> Occurrence:
    """The occurrence of `gathering` that originally started at `original_start` (cancelled or not)."""
    original_start = original_start.astimezone(UTC)
    for occ in gathering_occurrences(gathering=gathering, include_cancelled=True):
        if occ.original_start == original_start:
            return occ
    raise HirfaError(
        ErrorCode.NOT_FOUND,
        _("No such occurrence."),
        occurrence=recurrence.occurrence_key(original_start),
    )


def occurrence_join_window(*, occurrence: Occurrence) -> tuple[datetime, datetime]:
    """When "Join" is open for `occurrence`: from 10 minutes before its start to its end.

    The seam for live meetings (issue 3): a view shows "Join" inside this window
    and asks the signaling app to open the meeting of the gathering's room.
    """
    return occurrence.start - JOIN_OPENS_BEFORE, occurrence.end


def occurrence_joinable(*, occurrence: Occurrence, now: datetime | None = None) -> bool:
    opens, closes = occurrence_join_window(occurrence=occurrence)
    now = now or timezone.now()
    return not occurrence.cancelled and opens <= now < closes


# --- visibility --------------------------------------------------------------------


def gatherings_visible(*, user: User) -> QuerySet[Gathering]:
    """Every gathering `user` may see (see the module docstring)."""
    qs = Gathering.objects.select_related("room", "room__trade", "room__wilaya")
    if user.is_superuser or user.is_staff:
        return qs
    banned_rooms = Membership.objects.filter(user=user, banned=True).values("room_id")
    followed = Membership.objects.filter(user=user, active=True, banned=False).values("room_id")
    return (
        qs.filter(
            Q(visibility=Visibility.PUBLIC)
            | Q(room_id__in=followed)
            | Q(hosts=user)
            | Q(created_by=user)
        )
        .exclude(room_id__in=banned_rooms)
        .distinct()
    )


def public_upcoming(*, days: int = 30, limit: int = 4) -> list[tuple[Gathering, Occurrence]]:
    """The next occurrences of public gatherings (for visitors without an account), soonest first."""
    now = timezone.now()
    before = now + timedelta(days=days)
    found: list[tuple[Gathering, Occurrence]] = []
    for gathering in (
        Gathering.objects.filter(visibility=Visibility.PUBLIC, cancelled=False, series_end__gt=now,
                                 start__lt=before)
        .select_related("room", "room__trade", "room__wilaya").prefetch_related("exceptions")[:50]
    ):
        for occurrence in gathering_occurrences(gathering=gathering, after=now, before=before)[:limit]:
            found.append((gathering, occurrence))
    found.sort(key=lambda pair: pair[1].start)
    return found[:limit]


def gathering_visible_to(*, user: User, gathering: Gathering) -> bool:
    if user.is_superuser or user.is_staff:
        return True
    membership = Membership.objects.filter(room_id=gathering.room_id, user=user).first()
    if membership is not None and membership.banned:
        return False
    if gathering.visibility == Visibility.PUBLIC:
        return True
    if membership is not None and membership.active:
        return True
    if gathering.created_by_id == user.pk or gathering.hosts.filter(pk=user.pk).exists():
        return True
    return user_moderates(user=user, room=gathering.room, membership=membership)


def gathering_get(*, user: User | None, gathering_id: int) -> Gathering:
    """The gathering if `user` may see it (anonymous: public ones only); else `not_found`."""
    gathering = (
        Gathering.objects.select_related("room", "room__trade", "room__wilaya")
        .filter(pk=gathering_id)
        .first()
    )
    if gathering is not None:
        if user is None or not user.is_authenticated:
            if gathering.visibility == Visibility.PUBLIC:
                return gathering
        elif gathering_visible_to(user=user, gathering=gathering):
            return gathering
    raise HirfaError(ErrorCode.NOT_FOUND, NOT_FOUND_MESSAGE, gathering=gathering_id)


def gathering_can_manage(*, user: User, gathering: Gathering) -> bool:
    """Moderators of the gathering's trade or wilaya (and admins) edit and cancel it."""
    if not user.is_authenticated:
        return False
    membership = Membership.objects.filter(room_id=gathering.room_id, user=user).first()
    return user_moderates(user=user, room=gathering.room, membership=membership)


# --- agenda ------------------------------------------------------------------------


@dataclass(frozen=True)
class AgendaItem:
    gathering: Gathering
    occurrence: Occurrence
    my_status: str | None
    #: Join is open now and `user` may enter the occurrence's meeting.
    can_join: bool = False


def agenda(
    *,
    user: User,
    after: datetime,
    before: datetime,
    room_id: int | None = None,
    wilaya_id: int | None = None,
    trade_id: int | None = None,
    mine: bool = False,
) -> list[AgendaItem]:
    """The occurrences `user` may see in [after, before), ordered by start, with his answer.

    `mine` keeps those he is going to, may go to, is waitlisted for, or hosts.
    """
    qs = gatherings_visible(user=user).filter(series_end__gt=after, start__lt=before + timedelta(days=1))
    if room_id is not None:
        qs = qs.filter(room_id=room_id)
    if wilaya_id is not None:
        qs = qs.filter(room__wilaya_id=wilaya_id)
    if trade_id is not None:
        qs = qs.filter(room__trade_id=trade_id)
    gatherings = list(qs.prefetch_related("exceptions"))
    answers = _answers_by_gathering(user=user, gathering_ids=[g.pk for g in gatherings])
    hosted = set(
        Gathering.hosts.through.objects.filter(
            user_id=user.pk, gathering_id__in=[g.pk for g in gatherings]
        ).values_list("gathering_id", flat=True)
    )
    items: list[AgendaItem] = []
    now = timezone.now()
    for g in gatherings:
        series, per_occurrence = answers.get(g.pk, (None, {}))
        for occ in gathering_occurrences(
            gathering=g, after=after, before=before, exceptions=g.exceptions.all()
        ):
            status = per_occurrence.get(occ.original_start, series)
            if mine and g.pk not in hosted and status not in (
                RsvpStatus.GOING,
                RsvpStatus.MAYBE,
                RsvpStatus.WAITLISTED,
            ):
                continue
            can_join = occurrence_joinable(occurrence=occ, now=now) and occurrence_may_join(
                user=user, gathering=g, original_start=occ.original_start
            )
            items.append(AgendaItem(gathering=g, occurrence=occ, my_status=status, can_join=can_join))
    # Some moves may fall before `after`-filtered starts; order once at the end.
    items.sort(key=lambda i: (i.occurrence.start, i.gathering.pk))
    return items


def _answers_by_gathering(
    *, user: User, gathering_ids: list[int]
) -> dict[int, tuple[str | None, dict[datetime, str]]]:
    result: dict[int, tuple[str | None, dict[datetime, str]]] = {}
    for r in Rsvp.objects.filter(user=user, gathering_id__in=gathering_ids):
        series, per = result.get(r.gathering_id, (None, {}))
        if r.occurrence_start is None:
            series = r.status
        else:
            per[r.occurrence_start.astimezone(UTC)] = r.status
        result[r.gathering_id] = (series, per)
    return result


# --- RSVPs ---------------------------------------------------------------------------


def effective_rsvps(
    *, gathering: Gathering, original_start: datetime, rows: Iterable[Rsvp] | None = None
) -> dict[int, Rsvp]:
    """Each member's answer for one occurrence: his answer for it, else his series answer."""
    original_start = original_start.astimezone(UTC)
    if rows is None:
        rows = Rsvp.objects.filter(gathering=gathering).filter(
            Q(occurrence_start__isnull=True) | Q(occurrence_start=original_start)
        )
    series: dict[int, Rsvp] = {}
    specific: dict[int, Rsvp] = {}
    for r in rows:
        if r.occurrence_start is None:
            series[r.user_id] = r
        elif r.occurrence_start.astimezone(UTC) == original_start:
            specific[r.user_id] = r
    series.update(specific)
    return series


@dataclass(frozen=True)
class AttendeeRow:
    user_id: int
    name: str
    status: str
    requested_at: datetime


def occurrence_attendees(*, user: User, gathering_id: int, original_start: datetime) -> list[AttendeeRow]:
    """The answers for one occurrence, for its hosts and moderators: going first, then the
    waitlist in order, then maybe and not going. Others get `forbidden`."""
    gathering = gathering_get(user=user, gathering_id=gathering_id)
    is_host = gathering.hosts.filter(pk=user.pk).exists()
    if not is_host and not gathering_can_manage(user=user, gathering=gathering):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the hosts see the list of answers."))
    occurrence_get(gathering=gathering, original_start=original_start)
    answers = effective_rsvps(gathering=gathering, original_start=original_start)
    users = {u.pk: u for u in User.objects.filter(pk__in=answers).select_related("profile")}
    order = {RsvpStatus.GOING: 0, RsvpStatus.WAITLISTED: 1, RsvpStatus.MAYBE: 2, RsvpStatus.NOT_GOING: 3}
    rows = [
        AttendeeRow(
            user_id=uid,
            name=users[uid].display_name,
            status=r.status,
            requested_at=r.requested_at,
        )
        for uid, r in answers.items()
    ]
    rows.sort(key=lambda a: (order.get(RsvpStatus(a.status), 9), a.requested_at, a.user_id))
    return rows


def my_rsvp(*, user: User, gathering: Gathering, original_start: datetime | None) -> str | None:
    """`user`'s answer for one occurrence (or for the series when `original_start` is None)."""
    if original_start is None:
        row = Rsvp.objects.filter(gathering=gathering, user=user, occurrence_start__isnull=True).first()
        return row.status if row else None
    found = effective_rsvps(gathering=gathering, original_start=original_start).get(user.pk)
    return found.status if found else None


# --- feeds -----------------------------------------------------------------------------


def feed_owner(*, token: str) -> User:
    """The member whose personal feed `token` opens; `not_found` for a revoked or unknown one."""
    row = FeedToken.objects.select_related("user").filter(token=token).first() if token else None
    if row is None or not row.user.is_active:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such calendar."))
    return row.user


def gatherings_of_member(*, user: User) -> QuerySet[Gathering]:
    """The gatherings in `user`'s personal feed: those he answered going, maybe or
    waitlisted to (any occurrence or the series) and those he hosts, if he still sees them."""
    answered = Rsvp.objects.filter(
        user=user, status__in=[RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.WAITLISTED]
    ).values("gathering_id")
    return gatherings_visible(user=user).filter(Q(pk__in=answered) | Q(hosts=user)).distinct()


# --- live meetings ---------------------------------------------------------------------
#
# A gathering opens the live meeting of its room (`services.occurrence_meeting_open`) and
# links it to the occurrence (`OccurrenceMeeting`). Signaling keeps its own rules for
# who reads the room; the two hooks below narrow them for a gathering's meeting:
# `meeting_join_check` (who may enter) and `meeting_hosted_by_gathering` (who hosts).


def gathering_is_host(*, user: User, gathering: Gathering) -> bool:
    """Whether `user` is one of the gathering's hosts."""
    return bool(user.is_authenticated) and gathering.hosts.filter(pk=user.pk).exists()


def gathering_hosts_or_manages(*, user: User, gathering: Gathering) -> bool:
    """The gathering's hosts and the moderators of its room (and admins)."""
    return gathering_is_host(user=user, gathering=gathering) or gathering_can_manage(
        user=user, gathering=gathering
    )


def occurrence_may_join(*, user: User, gathering: Gathering, original_start: datetime) -> bool:
    """Whether `user` may enter the live meeting of one occurrence.

    Yes for admins, the room's active members, the gathering's hosts, the room's
    moderators, and whoever's answer for that occurrence (or the series) is `going`.
    Never for someone banned from the room or an inactive account. A `maybe` or a
    place on the waitlist is not enough for someone outside the room.
    """
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser or user.is_staff:
        return True
    membership = Membership.objects.filter(room_id=gathering.room_id, user=user).first()
    if membership is not None and membership.banned:
        return False
    if membership is not None and membership.active:
        return True
    if gathering_is_host(user=user, gathering=gathering):
        return True
    if user_moderates(user=user, room=gathering.room, membership=membership):
        return True
    original_start = original_start.astimezone(UTC)
    rows = Rsvp.objects.filter(gathering=gathering, user=user).filter(
        Q(occurrence_start__isnull=True) | Q(occurrence_start=original_start)
    )
    answer = effective_rsvps(gathering=gathering, original_start=original_start, rows=rows).get(user.pk)
    return answer is not None and answer.status == RsvpStatus.GOING


def meeting_occurrence(*, meeting_id: int) -> OccurrenceMeeting | None:
    """The occurrence a meeting was opened for, or None for a meeting of the room alone."""
    return (
        OccurrenceMeeting.objects.select_related("gathering", "gathering__room")
        .filter(meeting_id=meeting_id)
        .first()
    )


def meeting_hosted_by_gathering(*, user: User, meeting: Meeting) -> bool:
    """Whether `user` hosts `meeting` because he hosts the gathering it was opened for.

    A join rule of signaling (`gatherings.hooks`, asked by `meeting_is_host`): the gathering's hosts are the
    meeting's hosts (the room's moderators already are). False for a meeting opened
    for no gathering.
    """
    gathering_id = (
        OccurrenceMeeting.objects.filter(meeting_id=meeting.pk).values_list("gathering_id", flat=True).first()
    )
    if gathering_id is None or not user.is_authenticated:
        return False
    return Gathering.hosts.through.objects.filter(gathering_id=gathering_id, user_id=user.pk).exists()


def meeting_stage(*, user: User, meeting: Meeting) -> Literal["presenter", "listener"] | None:
    """`user`'s part in `meeting` when it was opened for a masterclass: ``presenter`` for
    one of its presenters, ``listener`` for everyone else (hosts included: the meeting
    lets its hosts speak anyway); None for a meeting of any other gathering or of none.

    A join rule of signaling (`gatherings.hooks`, asked by `meeting_join_ticket`).
    """
    row = (
        OccurrenceMeeting.objects.filter(meeting_id=meeting.pk, gathering__masterclass=True)
        .values_list("gathering_id", flat=True)
        .first()
    )
    if row is None:
        return None
    presents = Gathering.presenters.through.objects.filter(gathering_id=row, user_id=user.pk).exists()
    return "presenter" if presents else "listener"


def meeting_join_check(*, user: User, meeting: Meeting) -> None:
    """Raises `forbidden` when `meeting` was opened for an occurrence that `user` may not
    join (`occurrence_may_join`); does nothing for a meeting opened for no gathering.

    A join rule of signaling (`gatherings.hooks`, asked by `meeting_join_ticket` after
    its room check): a guild
    or region room is readable by everyone signed in, but its gathering's meeting is for
    the room's members, the hosts and moderators, and those going.
    """
    link = meeting_occurrence(meeting_id=meeting.pk)
    if link is None:
        return
    if not occurrence_may_join(user=user, gathering=link.gathering, original_start=link.occurrence_start):
        raise HirfaError(
            ErrorCode.FORBIDDEN,
            _("This meeting is for the room's members and those going to the gathering."),
            gathering=link.gathering_id,
        )


@dataclass(frozen=True)
class AttendanceRow:
    """One member's presence in an occurrence's meeting(s)."""

    user_id: int
    name: str
    #: His answer for the occurrence (None: he did not answer).
    answer: str | None
    first_joined: datetime
    #: None while he is still in the meeting.
    last_left: datetime | None
    #: Time present (overlapping stays counted once).
    duration: timedelta
    #: How many times he entered.
    sessions: int


@dataclass(frozen=True)
class NoShow:
    user_id: int
    name: str


@dataclass(frozen=True)
class AttendanceSummary:
    """Who came to one occurrence, for how long, and who said he was going but did not come.

    Counted from the `signaling.models.Attendance` rows of the meetings opened for the
    occurrence, each stay clipped to start no earlier than the opening of Join (10
    minutes before the start); a stay still open counts until `now`. `duration` is how
    long a meeting of the occurrence was live (overlaps counted once), clipped alike.
    """

    gathering_id: int
    occurrence: Occurrence
    #: The occurrence has ended.
    over: bool
    meetings: int
    started_at: datetime | None
    ended_at: datetime | None
    duration: timedelta
    attendees: list[AttendanceRow]
    no_shows: list[NoShow]
    going: int


def _union_length(spans: list[tuple[datetime, datetime]]) -> timedelta:
    total = timedelta(0)
    current: tuple[datetime, datetime] | None = None
    for a, b in sorted(spans):
        if current is None or a > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (a, b)
        else:
            current = (current[0], max(current[1], b))
    if current is not None:
        total += current[1] - current[0]
    return total


def occurrence_attendance(
    *, user: User, gathering_id: int, original_start: datetime, now: datetime | None = None
) -> AttendanceSummary:
    """The attendance summary of one occurrence (see `AttendanceSummary`), for the gathering's
    hosts and the room's moderators; others who see the gathering get `forbidden`, the rest
    `not_found`."""
    now = now or timezone.now()
    gathering = gathering_get(user=user, gathering_id=gathering_id)
    if not gathering_hosts_or_manages(user=user, gathering=gathering):
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the hosts see the attendance."))
    occ = occurrence_get(gathering=gathering, original_start=original_start)
    opens, _closes = occurrence_join_window(occurrence=occ)
    meetings = {
        link.meeting_id: link.meeting
        for link in OccurrenceMeeting.objects.select_related("meeting").filter(
            gathering=gathering, occurrence_start=occ.original_start
        )
    }
    meeting_spans: list[tuple[datetime, datetime]] = []
    for m in meetings.values():
        a, b = max(m.started_at, opens), min(m.ended_at or now, now)
        if b > a:
            meeting_spans.append((a, b))
    stays: dict[int, list[tuple[datetime, datetime, bool]]] = {}
    users: dict[int, User] = {}
    for row in (
        Attendance.objects.filter(meeting_id__in=list(meetings))
        .select_related("user", "user__profile")
        .order_by("joined_at", "id")
    ):
        meeting = meetings[row.meeting_id]
        still_in = row.left_at is None and meeting.ended_at is None
        end = row.left_at or meeting.ended_at or now
        a, b = max(row.joined_at, opens), min(end, now)
        if b < a:
            continue
        users[row.user_id] = row.user
        stays.setdefault(row.user_id, []).append((a, b, still_in))
    answers = effective_rsvps(gathering=gathering, original_start=occ.original_start)
    attendees = [
        AttendanceRow(
            user_id=uid,
            name=users[uid].display_name,
            answer=answers[uid].status if uid in answers else None,
            first_joined=min(a for a, _b, _s in spans),
            last_left=None if any(s for _a, _b, s in spans) else max(b for _a, b, _s in spans),
            duration=_union_length([(a, b) for a, b, _s in spans]),
            sessions=len(spans),
        )
        for uid, spans in stays.items()
    ]
    attendees.sort(key=lambda r: (r.first_joined, r.user_id))
    going = [uid for uid, r in answers.items() if r.status == RsvpStatus.GOING]
    absent = {u.pk: u for u in User.objects.filter(pk__in=[u for u in going if u not in stays]).select_related("profile")}
    no_shows = sorted(
        (NoShow(user_id=uid, name=u.display_name) for uid, u in absent.items()), key=lambda n: (n.name, n.user_id)
    )
    return AttendanceSummary(
        gathering_id=gathering.pk,
        occurrence=occ,
        over=now >= occ.end,
        meetings=len(meeting_spans),
        started_at=min((a for a, _b in meeting_spans), default=None),
        ended_at=None
        if any(m.ended_at is None for m in meetings.values())
        else max((b for _a, b in meeting_spans), default=None),
        duration=_union_length(meeting_spans),
        attendees=attendees,
        no_shows=no_shows,
        going=len(going),
    )


# --- replays --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A recording of one of the gathering's occurrences, as a member sees it."""

    recording: Recording
    gathering: Gathering
    occurrence_start: datetime
    #: He hosts the gathering (or moderates its room): sees unfinished builds, may delete.
    hosting: bool


@dataclass(frozen=True)
class ReplayChatLine:
    at: float
    author: str
    text: str


def _replays(gathering: Gathering) -> QuerySet[Recording]:
    return Recording.objects.filter(meeting__gathering_occurrence__gathering=gathering).select_related(
        "meeting__gathering_occurrence"
    )


def gathering_replays(*, user: User, gathering: Gathering) -> list[Replay]:
    """The recordings of the gathering's occurrences, newest first, for a member who sees
    the gathering (the caller got it from `gathering_get`): ready ones; hosts also see
    those being built or that failed."""
    hosting = gathering_hosts_or_manages(user=user, gathering=gathering)
    rows = _replays(gathering).filter(stopped_at__isnull=False).order_by("-started_at")
    if not hosting:
        rows = rows.filter(state=RecordingState.READY)
    return [
        Replay(
            recording=r,
            gathering=gathering,
            occurrence_start=r.meeting.gathering_occurrence.occurrence_start,
            hosting=hosting,
        )
        for r in rows[:50]
    ]


def replay_get(*, user: User, gathering_id: int, recording_id: int) -> Replay:
    """One replay for a member who may see the gathering; `not_found` for anything else
    (another gathering's recording, one not built yet for a non-host, one he may not see)."""
    gathering = gathering_get(user=user, gathering_id=gathering_id)
    for replay in gathering_replays(user=user, gathering=gathering):
        if replay.recording.pk == recording_id:
            return replay
    raise HirfaError(ErrorCode.NOT_FOUND, _("No such recording."))


REPLAY_CHAT_MAX = 2000


def replay_chat(*, user: User, replay: Replay) -> list[ReplayChatLine]:
    """The messages of the meeting's room while it was recorded, with their moment in the
    replay; none for a member who may not read the room (a public gathering's replay)."""
    recording = replay.recording
    try:
        room_access(user=user, room_id=replay.gathering.room_id)
    except HirfaError:
        return []
    rows = (
        Message.objects.filter(
            room_id=replay.gathering.room_id,
            created_at__gte=recording.started_at,
            created_at__lte=recording.stopped_at or timezone.now(),
            deleted_at__isnull=True,
        )
        .select_related("author", "author__profile")
        .order_by("seq")[:REPLAY_CHAT_MAX]
    )
    return [
        ReplayChatLine(
            at=round((m.created_at - recording.started_at).total_seconds(), 1),
            author=m.author.display_name if m.author else _("Former member"),
            text=m.text,
        )
        for m in rows
    ]


def gathering_materials(*, gathering: Gathering) -> list[Material]:
    """The gathering's materials, oldest first (no access check: callers checked the gathering)."""
    return list(Material.objects.filter(gathering=gathering).order_by("created_at", "id"))


def material_get(*, user: User, material_id: int) -> Material:
    """The material if `user` may see its gathering; `not_found` otherwise (the same answer)."""
    material = Material.objects.filter(pk=material_id).first()
    if material is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such material."))
    try:
        material.gathering = gathering_get(user=user, gathering_id=material.gathering_id)
    except HirfaError:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such material.")) from None
    return material


@dataclass(frozen=True)
class PresenterCandidate:
    """A member offered by the presenters' picker: his user name (what the form takes) and name."""

    username: str
    name: str


#: What the picker answers at most, and the shortest query it searches for.
PRESENTER_MATCHES = 8
PRESENTER_QUERY_MIN = 2


def presenter_candidates(*, query: str, limit: int = PRESENTER_MATCHES) -> list[PresenterCandidate]:
    """Active members whose user name starts with ``query`` or whose name holds it (case
    folded), by user name, at most ``limit``; nothing for a query under two characters.

    What a member sees of another in any room (his name and user name): no more.
    """
    query = query.strip()
    if len(query) < PRESENTER_QUERY_MIN:
        return []
    users = (
        User.objects.filter(is_active=True)
        .filter(Q(username__istartswith=query) | Q(profile__display_name__icontains=query))
        .select_related("profile")
        .order_by("username")[:limit]
    )
    return [PresenterCandidate(username=u.username, name=u.display_name) for u in users]
