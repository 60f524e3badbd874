"""REST endpoints of gatherings, occurrences, RSVPs and calendar feeds (mounted at ``/api/``).

These functions only translate: decode, call one service or selector, shape the
answer. Refusals are `HirfaError`s, turned into JSON by `hub.api`. Times are
ISO 8601 in UTC; occurrences are named by their key (original start,
``YYYYMMDDTHHMMSSZ``). The ``.ics`` feeds themselves are plain URLs (see
`gatherings.urls`), since calendar clients carry no session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import Field

from gatherings import recurrence, selectors, services
from gatherings.models import Gathering
from gatherings.selectors import Occurrence
from gatherings.views import meeting_url
from hub.auth import member_of
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from rooms.ratelimit import TokenBuckets

router = Router(tags=["gatherings"])


class ErrorBody(Schema):
    code: str
    message: str


ERRORS: dict[int, type[Schema]] = {
    400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody,
    429: ErrorBody,
}


class OccurrenceOut(Schema):
    gathering_id: int
    key: str
    original_start: datetime
    start: datetime
    end: datetime
    cancelled: bool
    moved: bool


class GatheringOut(Schema):
    id: int
    room_id: int
    room_title: str
    title: str
    agenda: str
    start: datetime
    tz: str
    duration_minutes: int
    language: str
    capacity: int | None
    visibility: str
    rrule: str
    cancelled: bool
    host_ids: list[int]
    can_manage: bool
    ics_url: str


class AgendaItemOut(Schema):
    gathering: GatheringOut
    occurrence: OccurrenceOut
    my_status: str | None


class GatheringIn(Schema):
    room_id: int
    title: str = Field(max_length=160)
    agenda: str = Field("", max_length=4000)
    start: datetime = Field(description="ISO 8601; without an offset it is read in `tz`")
    tz: str = recurrence.DEFAULT_TZ
    duration_minutes: int = Field(gt=0, le=12 * 60)
    language: str = ""
    capacity: int | None = Field(None, ge=1)
    visibility: Literal["members", "public"] = "members"
    rrule: str = Field("", max_length=300, description="RFC 5545 RRULE; must end (COUNT or UNTIL)")
    host_ids: list[int] | None = None


class GatheringPatch(Schema):
    title: str | None = Field(None, max_length=160)
    agenda: str | None = Field(None, max_length=4000)
    start: datetime | None = None
    tz: str | None = None
    duration_minutes: int | None = Field(None, gt=0, le=12 * 60)
    language: str | None = None
    capacity: int | None = Field(None, ge=1)
    visibility: Literal["members", "public"] | None = None
    rrule: str | None = Field(None, max_length=300)
    host_ids: list[int] | None = None


class MoveIn(Schema):
    start: datetime
    duration_minutes: int | None = Field(None, gt=0, le=12 * 60)


class RsvpIn(Schema):
    status: Literal["going", "maybe", "not_going"]
    occurrence: str | None = Field(None, description="an occurrence key; none for the whole series")


class RsvpOut(Schema):
    gathering_id: int
    occurrence: str | None
    status: str
    waitlist_position: int | None


class AttendeeOut(Schema):
    user_id: int
    name: str
    status: str
    requested_at: datetime


class PreviewIn(Schema):
    start: datetime
    tz: str = recurrence.DEFAULT_TZ
    rrule: str = ""
    duration_minutes: int = Field(60, gt=0, le=12 * 60)
    count: int = Field(5, ge=1, le=20)
    gathering_id: int | None = Field(
        None, description="the gathering being edited: its own start may be in the past"
    )


class PreviewOut(Schema):
    rrule: str
    total: int
    starts: list[datetime]


class FeedTokenOut(Schema):
    url: str


def gathering_out(gathering: Gathering, user: User | None) -> GatheringOut:
    return GatheringOut(
        id=gathering.pk,
        room_id=gathering.room_id,
        room_title=gathering.room.display_title(),
        title=gathering.title,
        agenda=gathering.agenda,
        start=gathering.start,
        tz=gathering.tz,
        duration_minutes=int(gathering.duration.total_seconds() // 60),
        language=gathering.language,
        capacity=gathering.capacity,
        visibility=gathering.visibility,
        rrule=gathering.rrule,
        cancelled=gathering.cancelled,
        host_ids=[h.pk for h in gathering.hosts.all()],
        can_manage=user is not None and selectors.gathering_can_manage(user=user, gathering=gathering),
        ics_url=reverse("gathering_ics", args=[gathering.pk]),
    )


def occurrence_out(occ: Occurrence) -> OccurrenceOut:
    return OccurrenceOut(**occ.__dict__)


def _window(after: datetime | None, before: datetime | None) -> tuple[datetime, datetime]:
    after = after or timezone.now()
    before = before or after + timedelta(days=62)
    if before - after > timedelta(days=400):
        before = after + timedelta(days=400)
    return after, before


@router.get("/gatherings", response={200: list[AgendaItemOut], **ERRORS}, summary="Agenda")
def gatherings_agenda(
    request: HttpRequest,
    after: datetime | None = None,
    before: datetime | None = None,
    room: int | None = None,
    wilaya: int | None = None,
    trade: int | None = None,
    mine: bool = False,
) -> list[AgendaItemOut]:
    """Occurrences I may see between `after` (default now) and `before` (default +62 days)."""
    user = member_of(request)
    after, before = _window(after, before)
    items = selectors.agenda(
        user=user, after=after, before=before, room_id=room, wilaya_id=wilaya, trade_id=trade, mine=mine
    )
    outs: dict[int, GatheringOut] = {}
    result = []
    for item in items:
        if item.gathering.pk not in outs:
            outs[item.gathering.pk] = gathering_out(item.gathering, user)
        result.append(
            AgendaItemOut(
                gathering=outs[item.gathering.pk],
                occurrence=occurrence_out(item.occurrence),
                my_status=item.my_status,
            )
        )
    return result


@router.post("/gatherings", response={201: GatheringOut, **ERRORS}, summary="Schedule a gathering")
def gathering_schedule(request: HttpRequest, body: GatheringIn) -> Status:
    user = member_of(request)
    data = body.dict()
    minutes = data.pop("duration_minutes")
    gathering = services.gathering_schedule(user=user, duration=timedelta(minutes=minutes), **data)
    return Status(201, gathering_out(gathering, user))


@router.get("/gatherings/{int:gathering_id}", response={200: GatheringOut, **ERRORS}, summary="One gathering")
def gathering_detail(request: HttpRequest, gathering_id: int) -> GatheringOut:
    user = member_of(request)
    return gathering_out(selectors.gathering_get(user=user, gathering_id=gathering_id), user)


@router.patch("/gatherings/{int:gathering_id}", response={200: GatheringOut, **ERRORS}, summary="Edit a gathering")
def gathering_update(request: HttpRequest, gathering_id: int, body: GatheringPatch) -> GatheringOut:
    user = member_of(request)
    changes = {k: v for k, v in body.dict(exclude_unset=True).items() if v is not None or k == "capacity"}
    host_ids = changes.pop("host_ids", None)
    if "duration_minutes" in changes:
        changes["duration"] = timedelta(minutes=changes.pop("duration_minutes"))
    gathering = services.gathering_update(user=user, gathering_id=gathering_id, host_ids=host_ids, **changes)
    return gathering_out(gathering, user)


@router.post("/gatherings/{int:gathering_id}/cancel", response={200: GatheringOut, **ERRORS}, summary="Cancel a gathering")
def gathering_cancel(request: HttpRequest, gathering_id: int) -> GatheringOut:
    user = member_of(request)
    return gathering_out(services.gathering_cancel(user=user, gathering_id=gathering_id), user)


@router.get(
    "/gatherings/{int:gathering_id}/occurrences",
    response={200: list[OccurrenceOut], **ERRORS},
    summary="Occurrences of a gathering",
)
def gathering_occurrences(
    request: HttpRequest,
    gathering_id: int,
    after: datetime | None = None,
    before: datetime | None = None,
    include_cancelled: bool = False,
) -> list[OccurrenceOut]:
    gathering = selectors.gathering_get(user=member_of(request), gathering_id=gathering_id)
    found = selectors.gathering_occurrences(
        gathering=gathering, after=after, before=before, include_cancelled=include_cancelled
    )
    return [occurrence_out(o) for o in found]


@router.post(
    "/gatherings/{int:gathering_id}/occurrences/{key}/cancel",
    response={200: OccurrenceOut, **ERRORS},
    summary="Cancel one occurrence",
)
def occurrence_cancel(request: HttpRequest, gathering_id: int, key: str) -> OccurrenceOut:
    occ = services.occurrence_cancel(
        user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
    )
    return occurrence_out(occ)


@router.post(
    "/gatherings/{int:gathering_id}/occurrences/{key}/move",
    response={200: OccurrenceOut, **ERRORS},
    summary="Move one occurrence",
)
def occurrence_move(request: HttpRequest, gathering_id: int, key: str, body: MoveIn) -> OccurrenceOut:
    occ = services.occurrence_move(
        user=member_of(request),
        gathering_id=gathering_id,
        original_start=recurrence.parse_occurrence_key(key),
        new_start=body.start,
        new_duration=timedelta(minutes=body.duration_minutes) if body.duration_minutes else None,
    )
    return occurrence_out(occ)


@router.post(
    "/gatherings/{int:gathering_id}/occurrences/{key}/split",
    response={201: GatheringOut, **ERRORS},
    summary="Change this occurrence and the following ones",
)
def gathering_split(request: HttpRequest, gathering_id: int, key: str, body: GatheringPatch) -> Status:
    user = member_of(request)
    changes = {k: v for k, v in body.dict(exclude_unset=True).items() if v is not None}
    if "duration_minutes" in changes:
        changes["duration"] = timedelta(minutes=changes.pop("duration_minutes"))
    new = services.gathering_split(
        user=user, gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key), **changes
    )
    return Status(201, gathering_out(new, user))


@router.put("/gatherings/{int:gathering_id}/rsvp", response={200: RsvpOut, **ERRORS}, summary="My answer")
def rsvp_set(request: HttpRequest, gathering_id: int, body: RsvpIn) -> RsvpOut:
    result = services.rsvp_set(
        user=member_of(request),
        gathering_id=gathering_id,
        status=body.status,
        original_start=recurrence.parse_occurrence_key(body.occurrence) if body.occurrence else None,
    )
    return RsvpOut(**result.__dict__)


@router.get(
    "/gatherings/{int:gathering_id}/occurrences/{key}/attendees",
    response={200: list[AttendeeOut], **ERRORS},
    summary="Answers for one occurrence (hosts and moderators)",
)
def occurrence_attendees(request: HttpRequest, gathering_id: int, key: str) -> list[AttendeeOut]:
    rows = selectors.occurrence_attendees(
        user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
    )
    return [AttendeeOut(**r.__dict__) for r in rows]


class JoinOut(Schema):
    meeting_id: int
    room_id: int
    gathering_id: int
    occurrence: str
    host: bool
    #: The web page of the meeting (the room's page until the client has a meeting page).
    url: str


@router.post(
    "/gatherings/{int:gathering_id}/occurrences/{key}/join",
    response={200: JoinOut, **ERRORS},
    summary="Open the live meeting of one occurrence",
)
def occurrence_join(request: HttpRequest, gathering_id: int, key: str) -> JoinOut:
    """From 10 minutes before the start to the end, for the room's members, the hosts and
    moderators, and those going: the room's live meeting (started if needed), linked to
    the occurrence. Then join it on the websocket (`meeting_join`)."""
    opened = services.occurrence_meeting_open(
        user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
    )
    return JoinOut(**opened.__dict__, url=meeting_url(room_id=opened.room_id))


class AttendanceRowOut(Schema):
    user_id: int
    name: str
    answer: str | None
    first_joined: datetime
    last_left: datetime | None
    minutes: int
    sessions: int


class NoShowOut(Schema):
    user_id: int
    name: str


class AttendanceOut(Schema):
    gathering_id: int
    occurrence: OccurrenceOut
    over: bool
    meetings: int
    started_at: datetime | None
    ended_at: datetime | None
    minutes: int
    going: int
    attendees: list[AttendanceRowOut]
    no_shows: list[NoShowOut]


def _minutes(value: timedelta) -> int:
    return int((value.total_seconds() + 30) // 60)


@router.get(
    "/gatherings/{int:gathering_id}/occurrences/{key}/attendance",
    response={200: AttendanceOut, **ERRORS},
    summary="Attendance of one occurrence (hosts and moderators)",
)
def occurrence_attendance(request: HttpRequest, gathering_id: int, key: str) -> AttendanceOut:
    summary = selectors.occurrence_attendance(
        user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
    )
    return AttendanceOut(
        gathering_id=summary.gathering_id,
        occurrence=occurrence_out(summary.occurrence),
        over=summary.over,
        meetings=summary.meetings,
        started_at=summary.started_at,
        ended_at=summary.ended_at,
        minutes=_minutes(summary.duration),
        going=summary.going,
        attendees=[
            AttendanceRowOut(
                user_id=r.user_id,
                name=r.name,
                answer=r.answer,
                first_joined=r.first_joined,
                last_left=r.last_left,
                minutes=_minutes(r.duration),
                sessions=r.sessions,
            )
            for r in summary.attendees
        ],
        no_shows=[NoShowOut(user_id=n.user_id, name=n.name) for n in summary.no_shows],
    )


# The form asks for a preview as the organiser types: a burst, then one every two seconds.
preview_buckets = TokenBuckets(burst=10, per_second=0.5)


@router.post("/gatherings/preview", response={200: PreviewOut, **ERRORS}, summary="Preview a recurrence")
def recurrence_preview(request: HttpRequest, body: PreviewIn) -> PreviewOut:
    """The next occurrences a rule would give, checked as scheduling would check it.

    With `gathering_id` (a gathering the caller may see), keeping that gathering's own
    start is allowed even when it is past, as editing a running series allows it.
    Rate limited per member (`rate_limited`, 429, with Retry-After)."""
    wait = preview_buckets.take(member_of(request).pk)
    if wait:
        raise HirfaError(ErrorCode.RATE_LIMITED, _("Too many previews; wait a moment."), retry_after=wait)
    now = timezone.now()
    if body.gathering_id is not None:
        current = selectors.gathering_get(user=member_of(request), gathering_id=body.gathering_id)
        start = body.start
        if timezone.is_naive(start):
            start = start.replace(tzinfo=recurrence.zone(body.tz))
        if start.astimezone(UTC) == current.start:
            now = min(now, current.start - timedelta(seconds=1))
    fields = services.gathering_check(
        title="preview",
        start=body.start,
        tz=body.tz,
        duration=timedelta(minutes=body.duration_minutes),
        rrule=body.rrule,
        now=now,
    )
    starts = recurrence.series_starts(rule=fields.rrule, start=fields.start, tz_name=fields.tz)
    return PreviewOut(rrule=fields.rrule, total=len(starts), starts=[s.astimezone(UTC) for s in starts[: body.count]])


class PresenterOut(Schema):
    username: str
    name: str


class PresentersOut(Schema):
    members: list[PresenterOut]


# The presenters' picker asks as the organiser types: a burst, then two a second.
presenter_buckets = TokenBuckets(burst=20, per_second=2)


@router.get("/gatherings/presenters", response={200: PresentersOut, **ERRORS}, summary="Members to present a masterclass")
def presenters_search(request: HttpRequest, q: str = Query("", max_length=60)) -> PresentersOut:
    """Members whose user name starts with `q` or whose name holds it (at most 8; nothing
    under two characters), for the gathering form's presenters picker. Rate limited per
    member (`rate_limited`, 429, with Retry-After)."""
    wait = presenter_buckets.take(member_of(request).pk)
    if wait:
        raise HirfaError(ErrorCode.RATE_LIMITED, _("Too many searches; wait a moment."), retry_after=wait)
    found = selectors.presenter_candidates(query=q)
    return PresentersOut(members=[PresenterOut(username=c.username, name=c.name) for c in found])


@router.get("/gatherings/feed", response={200: FeedTokenOut, **ERRORS}, summary="My personal calendar URL")
def feed_url(request: HttpRequest) -> FeedTokenOut:
    token = services.feed_token_get(user=member_of(request)).token
    return FeedTokenOut(url=request.build_absolute_uri(reverse("gatherings_personal_ics", args=[token])))


@router.post("/gatherings/feed/revoke", response={200: FeedTokenOut, **ERRORS}, summary="Revoke my calendar URL")
def feed_revoke(request: HttpRequest) -> FeedTokenOut:
    token = services.feed_token_revoke(user=member_of(request)).token
    return FeedTokenOut(url=request.build_absolute_uri(reverse("gatherings_personal_ics", args=[token])))
