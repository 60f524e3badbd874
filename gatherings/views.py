"""Web pages and calendar feeds of gatherings. Views only translate: they read the
request, call one service or selector, and render; refusals are `HirfaError`s shown
to the user (or answered 404 for what he may not see).

Times are shown in the viewer's zone: the browser's (cookie ``hirfa_tz``, set by
``gatherings.js``), else the hub's (Africa/Algiers).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from gatherings import feeds, recurrence, selectors, services
from gatherings.models import Gathering, RsvpStatus, Visibility
from hub.auth import member_of, viewer_of
from hub.csv_export import csv_download
from hub.errors import ErrorCode, HirfaError
from hub.models import User, Wilaya
from hub.protected_files import protected_file_response, ranged_file_response
from hub.selectors import trades_sorted
from rooms.models import Room
from rooms.selectors import room_access
from signaling.models import RecordingState, recording_directory
from signaling.replay import AUDIO_FILE, VIDEO_FILE
from signaling.services import recording_delete

TZ_COOKIE = "hirfa_tz"


def viewer_zone(request: HttpRequest) -> ZoneInfo:
    name = request.COOKIES.get(TZ_COOKIE, "")
    try:
        return recurrence.zone(name) if name else ZoneInfo(settings.TIME_ZONE)
    except HirfaError:
        return ZoneInfo(settings.TIME_ZONE)


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    tz = viewer_zone(request)
    with timezone.override(tz):
        return render(request, template, {**context, "viewer_tz": tz.key}, status=status)


# --- agenda ------------------------------------------------------------------------------


@login_required
@require_GET
def agenda(request: HttpRequest) -> HttpResponse:
    """The agenda: a list of the coming weeks grouped by day, or a month grid; all, mine,
    by wilaya or by trade. Days are the viewer's days (his zone, see `viewer_zone`)."""
    user = member_of(request)
    tz = viewer_zone(request)
    view = "month" if request.GET.get("view") == "month" else "list"
    mine = request.GET.get("scope") == "mine"
    wilaya_id = _int(request.GET.get("wilaya"))
    trade_id = _int(request.GET.get("trade"))
    today = timezone.now().astimezone(tz).date()
    month = _month(request.GET.get("month"), today)
    if view == "month":
        last = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        after = datetime.combine(month, datetime.min.time(), tz).astimezone(UTC)
        before = datetime.combine(last, datetime.min.time(), tz).astimezone(UTC)
    else:
        after = timezone.now()
        before = after + timedelta(days=62)
    items = selectors.agenda(
        user=user, after=after, before=before, wilaya_id=wilaya_id, trade_id=trade_id, mine=mine
    )
    by_day: dict[date, list[selectors.AgendaItem]] = {}
    for item in items:
        by_day.setdefault(item.occurrence.start.astimezone(tz).date(), []).append(item)
    weeks: list[list[dict[str, Any]]] = []
    if view == "month":
        first_weekday = 5 if request.LANGUAGE_CODE == "ar" else 0  # Saturday in Arabic (CLDR ar-DZ)
        for week in calendar.Calendar(firstweekday=first_weekday).monthdatescalendar(month.year, month.month):
            weeks.append(
                [
                    {"day": d, "in_month": d.month == month.month, "today": d == today, "items": by_day.get(d, [])}
                    for d in week
                ]
            )
    filters = {
        k: v
        for k, v in (("scope", "mine" if mine else ""), ("wilaya", wilaya_id or ""), ("trade", trade_id or ""))
        if v
    }
    return _render(
        request,
        "gatherings/agenda.html",
        {
            "items": items,
            "days": sorted(by_day.items()),
            "view": view,
            "mine": mine,
            "weeks": weeks,
            "weekdays": [cell["day"] for cell in weeks[0]] if weeks else [],
            "month": month,
            "today": today,
            "prev_month": (month - timedelta(days=1)).strftime("%Y-%m"),
            "next_month": (month + timedelta(days=32)).replace(day=1).strftime("%Y-%m"),
            "filters": urlencode(filters),
            "wilayas": Wilaya.objects.all(),
            "trades": trades_sorted(),
            "wilaya_id": wilaya_id,
            "trade_id": trade_id,
            "schedulable_rooms": _schedulable_rooms(user),
            "feed_url": request.build_absolute_uri(
                reverse("gatherings_personal_ics", args=[services.feed_token_get(user=user).token])
            ),
        },
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _month(value: str | None, today: date) -> date:
    try:
        year, month = (int(x) for x in (value or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return today.replace(day=1)


def _schedulable_rooms(user: User) -> list[Room]:
    """The guild and region rooms `user` follows and moderates (the form's choices)."""
    rooms = Room.objects.filter(
        kind__in=selectors.GATHERING_ROOM_KINDS, memberships__user=user, memberships__active=True
    ).select_related("trade", "wilaya")
    if user.is_staff or user.is_superuser:
        rooms = Room.objects.filter(kind__in=selectors.GATHERING_ROOM_KINDS).select_related("trade", "wilaya")
    found = []
    for room in rooms[:500]:
        try:
            if room_access(user=user, room_id=room.pk).can_moderate:
                found.append(room)
        except HirfaError:
            continue
    return found


# --- one gathering -------------------------------------------------------------------------


@login_required
@require_GET
def gathering_detail(request: HttpRequest, gathering_id: int) -> HttpResponse:
    user = member_of(request)
    try:
        gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    except HirfaError:
        raise Http404(_("No such gathering.")) from None
    upcoming = selectors.gathering_occurrences(gathering=gathering, after=timezone.now(), include_cancelled=True)[:12]
    rows = []
    for occ in upcoming:
        rows.append(
            {
                "occ": occ,
                "status": selectors.my_rsvp(user=user, gathering=gathering, original_start=occ.original_start),
                "joinable": selectors.occurrence_joinable(occurrence=occ),
                "can_join": selectors.occurrence_joinable(occurrence=occ)
                and selectors.occurrence_may_join(user=user, gathering=gathering, original_start=occ.original_start),
                "splittable": bool(gathering.rrule) and occ.original_start != gathering.start,
            }
        )
    hosting = selectors.gathering_hosts_or_manages(user=user, gathering=gathering)
    past: list[selectors.Occurrence] = []
    if hosting:
        now = timezone.now()
        ended = [o for o in selectors.gathering_occurrences(gathering=gathering, before=now) if o.end <= now]
        past = ended[-PAST_SHOWN:][::-1]
    return _render(
        request,
        "gatherings/detail.html",
        {
            "gathering": gathering,
            "rows": rows,
            "past": past,
            "hosting": hosting,
            "series_status": selectors.my_rsvp(user=user, gathering=gathering, original_start=None),
            "can_manage": selectors.gathering_can_manage(user=user, gathering=gathering),
            "is_host": gathering.hosts.filter(pk=user.pk).exists(),
            "materials": selectors.gathering_materials(gathering=gathering),
            "presenters": list(gathering.presenters.select_related("profile").order_by("pk")) if gathering.masterclass else [],
            "statuses": [(RsvpStatus.GOING, _("Going")), (RsvpStatus.MAYBE, _("Maybe")), (RsvpStatus.NOT_GOING, _("Not going"))],
            "ics_url": request.build_absolute_uri(reverse("gathering_ics", args=[gathering.pk])),
            "replays": selectors.gathering_replays(user=user, gathering=gathering),
        },
    )


@login_required
@require_POST
def rsvp(request: HttpRequest, gathering_id: int) -> HttpResponse:
    key = request.POST.get("occurrence") or None
    try:
        result = services.rsvp_set(
            user=member_of(request),
            gathering_id=gathering_id,
            status=request.POST.get("status", ""),
            original_start=recurrence.parse_occurrence_key(key) if key else None,
        )
        if result.status == RsvpStatus.WAITLISTED:
            messages.info(request, _("No seat is free: you are number %(n)d on the waitlist.") % {"n": result.waitlist_position or 0})
        else:
            messages.success(request, _("Your answer is saved."))
    except HirfaError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    return redirect("gathering_detail", gathering_id=gathering_id)


@login_required
@require_POST
def gathering_cancel(request: HttpRequest, gathering_id: int) -> HttpResponse:
    key = request.POST.get("occurrence") or None
    try:
        if key:
            services.occurrence_cancel(
                user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
            )
            messages.success(request, _("The occurrence is cancelled; those going are told."))
        else:
            services.gathering_cancel(user=member_of(request), gathering_id=gathering_id)
            messages.success(request, _("The gathering is cancelled; those going are told."))
    except HirfaError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    return redirect("gathering_detail", gathering_id=gathering_id)


@login_required
@require_GET
def attendees_csv(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """The answers for one occurrence as CSV, for its hosts and moderators."""
    try:
        rows = selectors.occurrence_attendees(
            user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
        )
    except HirfaError as exc:
        if exc.code == ErrorCode.FORBIDDEN:
            return HttpResponse(exc.message, status=403)
        raise Http404(exc.message) from None
    response, writer = csv_download(f"gathering-{gathering_id}-{key}.csv")
    writer.writerow([_("name"), _("answer"), _("answered at (UTC)")])
    for row in rows:
        writer.writerow([row.name, row.status, row.requested_at.astimezone(UTC).isoformat()])
    return response


# --- the moderators' forms ----------------------------------------------------------------------

LOCAL_INPUT = "%Y-%m-%dT%H:%M"
# Service errors name service fields; these are their names in the forms.
FORM_FIELD = {"duration": "duration_minutes", "room": "room"}


def _local_input(value: datetime, tz_name: str) -> str:
    """`value` as the wall-clock text of a datetime-local input in zone `tz_name`."""
    return value.astimezone(recurrence.zone(tz_name)).strftime(LOCAL_INPUT)


def _wall_clock(value: datetime) -> datetime:
    """The naive wall-clock time the moderator typed.

    Django reads a form's datetime in the active zone; the moderator meant the
    gathering's zone, which the services apply to a naive value."""
    return timezone.make_naive(value) if timezone.is_aware(value) else value


def _minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def _form_error(form: forms.Form, exc: HirfaError) -> None:
    """Show a service refusal beside the field it names (or above the form)."""
    field = str(exc.details.get("field", ""))
    field = FORM_FIELD.get(field, field)
    form.add_error(field if field in form.fields else None, exc.message)


class GatheringFieldsForm(forms.Form):
    """The fields of a gathering a moderator sets (all but its room)."""

    title = forms.CharField(label=gettext_lazy("Title"), max_length=160, widget=forms.TextInput(attrs={"dir": "auto"}))
    agenda = forms.CharField(
        label=gettext_lazy("Agenda"), widget=forms.Textarea(attrs={"rows": 4, "dir": "auto"}), required=False, max_length=4000
    )
    start = forms.DateTimeField(
        label=gettext_lazy("Start (in the gathering's time zone)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
        input_formats=[LOCAL_INPUT],
    )
    tz = forms.CharField(
        label=gettext_lazy("Time zone"), initial=recurrence.DEFAULT_TZ, max_length=64, widget=forms.TextInput(attrs={"dir": "ltr"})
    )
    duration_minutes = forms.IntegerField(label=gettext_lazy("Duration (minutes)"), min_value=1, max_value=720, initial=90)
    language = forms.ChoiceField(
        label=gettext_lazy("Language"),
        required=False,
        choices=[("", "—"), ("ar", gettext_lazy("Arabic")), ("fr", gettext_lazy("French")), ("en", gettext_lazy("English")), ("ber", gettext_lazy("Tamazight"))],
    )
    capacity = forms.IntegerField(label=gettext_lazy("Capacity (empty: no limit)"), min_value=1, required=False)
    visibility = forms.ChoiceField(label=gettext_lazy("Visible to"), choices=Visibility.choices)
    rrule = forms.CharField(
        label=gettext_lazy("Recurrence rule (RFC 5545)"),
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"data-rrule": "1", "dir": "ltr"}),
    )
    masterclass = forms.BooleanField(
        label=gettext_lazy("Masterclass: the presenters speak, the others listen and raise a hand to ask"),
        required=False,
    )
    presenters = forms.CharField(
        label=gettext_lazy("Presenters of the masterclass (one or two user names, separated by commas)"),
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"dir": "ltr", "autocomplete": "off"}),
    )

    def clean_presenters(self) -> list[int]:
        names = list(dict.fromkeys(n.strip() for n in self.cleaned_data["presenters"].split(",") if n.strip()))
        ids = dict(User.objects.filter(username__in=names, is_active=True).values_list("username", "pk"))
        unknown = [n for n in names if n not in ids]
        if unknown:
            raise forms.ValidationError(_("Unknown presenter: %(names)s") % {"names": ", ".join(unknown)})
        return [ids[n] for n in names]

    def service_fields(self) -> dict[str, Any]:
        """The cleaned values as the services take them (start: naive, in `tz`)."""
        data = self.cleaned_data
        return {
            "title": data["title"],
            "agenda": data["agenda"],
            "start": _wall_clock(data["start"]),
            "tz": data["tz"],
            "duration": timedelta(minutes=data["duration_minutes"]),
            "language": data["language"] or "",
            "capacity": data["capacity"],
            "visibility": data["visibility"],
            "rrule": data["rrule"],
            "masterclass": data["masterclass"],
            "presenter_ids": data["presenters"],
        }

    @staticmethod
    def initial_of(gathering: Gathering, *, start: datetime | None = None, rrule: str | None = None) -> dict[str, Any]:
        """The form's initial values for `gathering` (optionally another start and rule)."""
        return {
            "title": gathering.title,
            "agenda": gathering.agenda,
            "start": _local_input(start or gathering.start, gathering.tz),
            "tz": gathering.tz,
            "duration_minutes": _minutes(gathering.duration),
            "language": gathering.language,
            "capacity": gathering.capacity,
            "visibility": gathering.visibility,
            "rrule": gathering.rrule if rrule is None else rrule,
            "masterclass": gathering.masterclass,
            "presenters": ", ".join(gathering.presenters.order_by("username").values_list("username", flat=True)),
        }


class GatheringForm(GatheringFieldsForm):
    """Scheduling: the fields and the room, among those the moderator moderates."""

    room = forms.TypedChoiceField(label=gettext_lazy("Room"), coerce=int)
    field_order = ["room"]

    def offer_rooms(self, rooms: list[Room]) -> None:
        field = self.fields["room"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(r.pk, r.display_title()) for r in rooms]


class MoveForm(forms.Form):
    """Moving one occurrence: its new start (in the gathering's zone) and duration."""

    start = forms.DateTimeField(
        label=gettext_lazy("New start (in the gathering's time zone)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
        input_formats=[LOCAL_INPUT],
    )
    duration_minutes = forms.IntegerField(label=gettext_lazy("Duration (minutes)"), min_value=1, max_value=720)


@login_required
def gathering_new(request: HttpRequest) -> HttpResponse:
    """The moderators' form. The recurrence picker (gatherings.js) fills `rrule` and shows
    the next occurrences from ``POST /api/gatherings/preview`` before saving."""
    user = member_of(request)
    rooms = _schedulable_rooms(user)
    if not rooms:
        return _denied(request, _("Only the moderators of a trade or a wilaya schedule gatherings."))
    form = GatheringForm(request.POST or None, initial={"room": request.GET.get("room")})
    form.offer_rooms(rooms)
    if request.method == "POST" and form.is_valid():
        try:
            gathering = services.gathering_schedule(user=user, room_id=form.cleaned_data["room"], **form.service_fields())
        except HirfaError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("The gathering is scheduled."))
            return redirect("gathering_detail", gathering_id=gathering.pk)
    return _render(
        request,
        "gatherings/form.html",
        {"form": form, "heading": _("Schedule a gathering"), "submit": _("Schedule"), "picker": True},
    )


def _denied(request: HttpRequest, message: str) -> HttpResponse:
    return _render(request, "gatherings/denied.html", {"message": message}, status=403)


class _NotManager(Exception):
    """The user sees the gathering but does not moderate it (answered 403 by `_managers_only`)."""


def _managers_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in users only; a `_NotManager` raised by the view becomes the 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except _NotManager as exc:
            return _denied(request, str(exc))

    return login_required(wrapper)


def _managed(request: HttpRequest, gathering_id: int) -> Gathering:
    """The gathering if the user may manage it; 404 if he may not see it (or it does not
    exist), `_NotManager` (403) if he sees it but does not moderate it."""
    user = member_of(request)
    try:
        gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    except HirfaError:
        raise Http404(_("No such gathering.")) from None
    if not selectors.gathering_can_manage(user=user, gathering=gathering):
        raise _NotManager(_("Only the moderators of this trade or wilaya may do that."))
    return gathering


def _occurrence(gathering: Gathering, key: str) -> selectors.Occurrence:
    try:
        return selectors.occurrence_get(gathering=gathering, original_start=recurrence.parse_occurrence_key(key))
    except HirfaError:
        raise Http404(_("No such occurrence.")) from None


def _still_open(request: HttpRequest, gathering: Gathering, occ: selectors.Occurrence | None = None) -> bool:
    """False (with a message saying why) when the gathering or occurrence can no longer change."""
    if gathering.cancelled:
        messages.error(request, _("This gathering is cancelled."))
        return False
    if occ is not None and occ.cancelled:
        messages.error(request, _("This occurrence is cancelled."))
        return False
    if occ is not None and occ.start <= timezone.now():
        messages.error(request, _("This occurrence has already started."))
        return False
    return True


@_managers_only
def gathering_edit(request: HttpRequest, gathering_id: int) -> HttpResponse:
    """Edit the whole series (moderators). Answers for occurrences that no longer exist
    are dropped and those going are told of a change of time (`services.gathering_update`)."""
    gathering = _managed(request, gathering_id)
    if not _still_open(request, gathering):
        return redirect("gathering_detail", gathering_id=gathering.pk)
    form = GatheringFieldsForm(request.POST or None, initial=GatheringFieldsForm.initial_of(gathering))
    if request.method == "POST" and form.is_valid():
        try:
            services.gathering_update(user=member_of(request), gathering_id=gathering.pk, **form.service_fields())
        except HirfaError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("The gathering is saved."))
            return redirect("gathering_detail", gathering_id=gathering.pk)
    return _render(
        request,
        "gatherings/form.html",
        {
            "form": form,
            "gathering": gathering,
            "heading": _("Edit the gathering"),
            "intro": _("Changes apply to every occurrence; members going are told if the time changes."),
            "submit": _("Save"),
            "picker": True,
        },
    )


@_managers_only
def occurrence_move(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """Move one occurrence (moderators); answers stay with it and members are told."""
    gathering = _managed(request, gathering_id)
    occ = _occurrence(gathering, key)
    if not _still_open(request, gathering, occ):
        return redirect("gathering_detail", gathering_id=gathering.pk)
    form = MoveForm(
        request.POST or None,
        initial={"start": _local_input(occ.start, gathering.tz), "duration_minutes": _minutes(occ.end - occ.start)},
    )
    if request.method == "POST" and form.is_valid():
        duration = timedelta(minutes=form.cleaned_data["duration_minutes"])
        try:
            services.occurrence_move(
                user=member_of(request),
                gathering_id=gathering.pk,
                original_start=occ.original_start,
                new_start=_wall_clock(form.cleaned_data["start"]),
                new_duration=None if duration == gathering.duration else duration,
            )
        except HirfaError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("The occurrence is moved; those going are told."))
            return redirect("gathering_detail", gathering_id=gathering.pk)
    return _render(
        request,
        "gatherings/form.html",
        {
            "form": form,
            "gathering": gathering,
            "occ": occ,
            "heading": _("Move one occurrence"),
            "intro": _("Only this occurrence moves; answers stay with it and members are told."),
            "submit": _("Move"),
        },
    )


@_managers_only
def occurrence_cancel(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """Cancel one occurrence after a confirmation page (moderators); those going are told."""
    gathering = _managed(request, gathering_id)
    occ = _occurrence(gathering, key)
    if not _still_open(request, gathering, occ):
        return redirect("gathering_detail", gathering_id=gathering.pk)
    if request.method == "POST":
        try:
            services.occurrence_cancel(user=member_of(request), gathering_id=gathering.pk, original_start=occ.original_start)
        except HirfaError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("The occurrence is cancelled; those going are told."))
        return redirect("gathering_detail", gathering_id=gathering.pk)
    going = sum(
        1
        for r in selectors.effective_rsvps(gathering=gathering, original_start=occ.original_start).values()
        if r.status in (RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.WAITLISTED)
    )
    return _render(request, "gatherings/cancel_occurrence.html", {"gathering": gathering, "occ": occ, "going": going})


@_managers_only
def gathering_split(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """Change "this occurrence and the following ones" (moderators): the series ends before
    it and a new gathering, shown after saving, carries the rest with the changes."""
    gathering = _managed(request, gathering_id)
    occ = _occurrence(gathering, key)
    if not _still_open(request, gathering, occ):
        return redirect("gathering_detail", gathering_id=gathering.pk)
    starts = recurrence.series_starts(rule=gathering.rrule, start=gathering.start, tz_name=gathering.tz)
    if not gathering.rrule or starts[0] == occ.original_start:
        return redirect("gathering_edit", gathering_id=gathering.pk)
    rest = [s for s in starts if s >= occ.original_start]
    rule = recurrence.rule_with_count(gathering.rrule, len(rest)) if "COUNT=" in gathering.rrule else gathering.rrule
    form = GatheringFieldsForm(
        request.POST or None, initial=GatheringFieldsForm.initial_of(gathering, start=occ.original_start, rrule=rule)
    )
    if request.method == "POST" and form.is_valid():
        try:
            new = services.gathering_split(
                user=member_of(request), gathering_id=gathering.pk, original_start=occ.original_start, **form.service_fields()
            )
        except HirfaError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("This occurrence and the following ones are changed."))
            return redirect("gathering_detail", gathering_id=new.pk)
    return _render(
        request,
        "gatherings/form.html",
        {
            "form": form,
            "gathering": gathering,
            "occ": occ,
            "heading": _("Change this occurrence and the following ones"),
            "intro": _("Earlier occurrences stay as they are; from this one on, the series follows the values below."),
            "submit": _("Save from this occurrence on"),
            "picker": True,
        },
    )


@login_required
@require_POST
def feed_revoke(request: HttpRequest) -> HttpResponse:
    services.feed_token_revoke(user=member_of(request))
    messages.success(request, _("Your old calendar link no longer works; here is the new one."))
    return redirect(reverse("gatherings_agenda") + "?scope=mine")


# --- live meetings and attendance -------------------------------------------------------------

PAST_SHOWN = 5


def meeting_url(*, room_id: int) -> str:
    """Where a member goes to be in a live meeting: the meeting page of its room."""
    return reverse("meeting", kwargs={"room_id": room_id})


@login_required
@require_POST
def occurrence_join(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """Join the live meeting of one occurrence (started if needed), then go to it.
    Refusals (too early, over, not a member nor going) come back as a message."""
    try:
        opened = services.occurrence_meeting_open(
            user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
        )
    except HirfaError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
        return redirect("gathering_detail", gathering_id=gathering_id)
    return redirect(meeting_url(room_id=opened.room_id))


def _attendance(request: HttpRequest, gathering_id: int, key: str) -> selectors.AttendanceSummary:
    """The summary, or the error page: 404 for what the user may not see, `_NotManager` (403)
    for a member who is no host."""
    try:
        return selectors.occurrence_attendance(
            user=member_of(request), gathering_id=gathering_id, original_start=recurrence.parse_occurrence_key(key)
        )
    except HirfaError as exc:
        if exc.code == ErrorCode.FORBIDDEN:
            raise _NotManager(exc.message) from None
        raise Http404(exc.message) from None


@_managers_only
@require_GET
def occurrence_attendance(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """Hosts' summary of one occurrence: who came, for how long, and who said he was going
    but did not come."""
    summary = _attendance(request, gathering_id, key)
    gathering = Gathering.objects.select_related("room").get(pk=gathering_id)
    return _render(
        request,
        "gatherings/attendance.html",
        {"gathering": gathering, "summary": summary, "occ": summary.occurrence},
    )


@_managers_only
@require_GET
def occurrence_attendance_csv(request: HttpRequest, gathering_id: int, key: str) -> HttpResponse:
    """The attendance summary as CSV: one line per attendee, then one per no-show."""
    summary = _attendance(request, gathering_id, key)
    response, writer = csv_download(f"attendance-{gathering_id}-{key}.csv")
    writer.writerow([_("name"), _("answer"), _("present"), _("first joined (UTC)"), _("last left (UTC)"), _("minutes"), _("times joined")])
    for row in summary.attendees:
        writer.writerow(
            [
                row.name,
                row.answer or "",
                _("yes"),
                row.first_joined.astimezone(UTC).isoformat(),
                row.last_left.astimezone(UTC).isoformat() if row.last_left else "",
                _minutes_rounded(row.duration),
                row.sessions,
            ]
        )
    for absent in summary.no_shows:
        writer.writerow([absent.name, RsvpStatus.GOING.value, _("no"), "", "", 0, 0])
    writer.writerow([])
    writer.writerow([_("meeting duration (minutes)"), _minutes_rounded(summary.duration)])
    return response


def _minutes_rounded(value: timedelta) -> int:
    return int((value.total_seconds() + 30) // 60)


# --- calendar feeds ---------------------------------------------------------------------------


def _ics(data: bytes, name: str) -> HttpResponse:
    response = HttpResponse(data, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{name}.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


def _url_of(request: HttpRequest):
    return lambda g: request.build_absolute_uri(reverse("gathering_detail", args=[g.pk]))


@require_GET
def gathering_ics(request: HttpRequest, gathering_id: int) -> HttpResponseBase:
    """One gathering; a public one needs no session."""
    try:
        gathering = selectors.gathering_get(user=viewer_of(request), gathering_id=gathering_id)
    except HirfaError:
        raise Http404(_("No such gathering.")) from None
    gathering = Gathering.objects.prefetch_related("exceptions").get(pk=gathering.pk)
    return _ics(feeds.calendar_of([gathering], name=gathering.title, url_of=_url_of(request)), f"gathering-{gathering.pk}")


@require_GET
def room_ics(request: HttpRequest, room_id: int) -> HttpResponseBase:
    """A room's gatherings the requester may see (without a session: the public ones)."""
    user = viewer_of(request)
    if user is not None:
        try:
            room = room_access(user=user, room_id=room_id).room
        except HirfaError:
            raise Http404(_("No such room.")) from None
        qs = selectors.gatherings_visible(user=user).filter(room=room)
    else:
        found = Room.objects.filter(pk=room_id, kind__in=selectors.GATHERING_ROOM_KINDS).first()
        if found is None:
            raise Http404(_("No such room."))
        room = found
        qs = Gathering.objects.filter(room=room, visibility=Visibility.PUBLIC)
    return _ics(feeds.calendar_of(feeds.recent(qs), name=room.display_title(), url_of=_url_of(request)), f"room-{room.pk}")


@require_GET
def personal_ics(request: HttpRequest, token: str) -> HttpResponseBase:
    """A member's own gatherings, behind the secret of his (revocable) URL."""
    try:
        owner = selectors.feed_owner(token=token)
    except HirfaError:
        raise Http404(_("No such calendar.")) from None
    qs = selectors.gatherings_of_member(user=owner)
    return _ics(feeds.calendar_of(feeds.recent(qs), name=_("My gatherings · Hirfa"), url_of=_url_of(request)), "hirfa")


# --- replays ----------------------------------------------------------------------------------


def _replay(request: HttpRequest, gathering_id: int, recording_id: int) -> selectors.Replay:
    try:
        return selectors.replay_get(user=member_of(request), gathering_id=gathering_id, recording_id=recording_id)
    except HirfaError:
        raise Http404(_("No such recording.")) from None


def _vtt_time(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{round((seconds - whole) * 1000) % 1000:03d}"


@login_required
@require_GET
def replay_page(request: HttpRequest, gathering_id: int, recording_id: int) -> HttpResponse:
    """The replay of one occurrence: the video (or its audio alone), its chapters and the
    chat of the meeting alongside."""
    replay = _replay(request, gathering_id, recording_id)
    recording = replay.recording
    return _render(
        request,
        "gatherings/replay.html",
        {
            "gathering": replay.gathering,
            "replay": replay,
            "recording": recording,
            "ready": recording.state == RecordingState.READY,
            "markers": list(recording.markers.all()),
            "chat": selectors.replay_chat(user=member_of(request), replay=replay),
            "minutes": math.ceil((recording.duration or 0) / 60),
            "audio_kbps": 24,
            "audio_mb": round(recording.audio_bytes / 1e6, 1),
            "video_mb": round(recording.video_bytes / 1e6, 1),
        },
    )


REPLAY_FILES = {"video.webm": (VIDEO_FILE, "video/webm"), "audio.ogg": (AUDIO_FILE, "audio/ogg")}


@login_required
@require_GET
def replay_file(request: HttpRequest, gathering_id: int, recording_id: int, name: str) -> HttpResponseBase:
    """The replay's video or audio file, checked on every request, with range requests."""
    replay = _replay(request, gathering_id, recording_id)
    if name not in REPLAY_FILES or replay.recording.state != RecordingState.READY:
        raise Http404(_("No such recording."))
    filename, content_type = REPLAY_FILES[name]
    try:
        return ranged_file_response(
            request,
            path=recording_directory(recording_id) / filename,
            root=settings.PRIVATE_MEDIA_ROOT,
            internal_prefix=settings.HIRFA_ACCEL_PRIVATE_PREFIX,
            content_type=content_type,
        )
    except (FileNotFoundError, ValueError):
        raise Http404(_("No such recording.")) from None


@login_required
@require_GET
def replay_chapters(request: HttpRequest, gathering_id: int, recording_id: int) -> HttpResponse:
    """The hosts' markers as WebVTT chapters (the `<track kind="chapters">` of the player)."""
    replay = _replay(request, gathering_id, recording_id)
    markers = list(replay.recording.markers.all())
    end = replay.recording.duration or (markers[-1].at + 1 if markers else 0)
    lines = ["WEBVTT", ""]
    for index, marker in enumerate(markers):
        until = markers[index + 1].at if index + 1 < len(markers) else end
        if until <= marker.at:
            continue
        lines += [f"{_vtt_time(marker.at)} --> {_vtt_time(until)}", marker.label.replace("-->", "→"), ""]
    response = HttpResponse("\n".join(lines), content_type="text/vtt; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def replay_delete(request: HttpRequest, gathering_id: int, recording_id: int) -> HttpResponse:
    """A host deletes the replay (and every file of the recording)."""
    replay = _replay(request, gathering_id, recording_id)
    try:
        recording_delete(user=member_of(request), recording_id=replay.recording.pk)
    except HirfaError as exc:
        messages.error(request, exc.message)
        return redirect("gathering_replay", gathering_id=gathering_id, recording_id=recording_id)
    messages.success(request, _("The recording was deleted."))
    return redirect("gathering_detail", gathering_id=gathering_id)


@_managers_only
@require_POST
def material_upload(request: HttpRequest, gathering_id: int) -> HttpResponse:
    """A host attaches a photo or a PDF to the gathering (`services.material_add`)."""
    user = member_of(request)
    try:
        gathering = selectors.gathering_get(user=user, gathering_id=gathering_id)
    except HirfaError:
        raise Http404(_("No such gathering.")) from None
    if not selectors.gathering_hosts_or_manages(user=user, gathering=gathering):
        raise _NotManager(_("Only the gathering's hosts may add materials."))
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose a photo or a PDF."))
    else:
        try:
            services.material_add(
                user=user, gathering_id=gathering.pk, upload=upload, title=request.POST.get("title", "")
            )
        except HirfaError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("The material is added."))
    return redirect(reverse("gathering_detail", args=[gathering.pk]) + "#materials")


@login_required
@require_GET
def material_file(
    request: HttpRequest, gathering_id: int, material_id: int, thumbnail: bool = False
) -> HttpResponseBase:
    """A material (or a photo's thumbnail: the photo itself when it has none), for whoever may
    see its gathering (checked on every request)."""
    try:
        material = selectors.material_get(user=member_of(request), material_id=material_id)
    except HirfaError:
        raise Http404(_("No such material.")) from None
    if material.gathering_id != gathering_id or (thumbnail and material.kind != "photo"):
        raise Http404(_("No such material."))
    response = protected_file_response(
        material.thumbnail if thumbnail and material.thumbnail else material.file,
        internal_prefix=settings.HIRFA_ACCEL_PRIVATE_PREFIX,
        content_type=material.content_type,
        cache_control="private, no-store",
    )
    if material.kind == "pdf":
        response["Content-Disposition"] = "attachment"
    return response


@_managers_only
@require_POST
def material_remove(request: HttpRequest, gathering_id: int, material_id: int) -> HttpResponse:
    """A host removes a material and its file (`services.material_delete`)."""
    user = member_of(request)
    try:
        material = selectors.material_get(user=user, material_id=material_id)
    except HirfaError:
        raise Http404(_("No such material.")) from None
    if material.gathering_id != gathering_id:
        raise Http404(_("No such material."))
    if not selectors.gathering_hosts_or_manages(user=user, gathering=material.gathering):
        raise _NotManager(_("Only the gathering's hosts may remove materials."))
    services.material_delete(user=user, material_id=material.pk)
    messages.success(request, _("The material is removed."))
    return redirect(reverse("gathering_detail", args=[gathering_id]) + "#materials")
