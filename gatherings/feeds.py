"""iCalendar (RFC 5545) feeds: one gathering, a room's gatherings, a member's own.

A series is exported as one VEVENT with DTSTART in its own zone (TZID, with the
VTIMEZONE), its RRULE, an EXDATE per cancelled occurrence, and one more VEVENT
per moved occurrence (same UID, RECURRENCE-ID = the original start). A cancelled
gathering is exported with STATUS:CANCELLED so calendars drop it. Expanding the
feed gives the occurrences `selectors.gathering_occurrences` gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from icalendar import Calendar, Component, Event, vRecur

from gatherings import recurrence, selectors
from gatherings.models import Gathering

PRODID = "-//Hirfa//Gatherings//EN"
KEEP_FINISHED = timedelta(days=90)


def _event_base(gathering: Gathering, *, url: str) -> Event:
    event = Event()
    event.add("uid", gathering.uid)
    event.add("dtstamp", gathering.updated_at.astimezone(UTC))
    event.add("sequence", gathering.sequence)
    event.add("summary", gathering.title)
    if gathering.agenda:
        event.add("description", gathering.agenda)
    if url:
        event.add("url", url)
    event.add("location", str(gathering.room))
    return event


def gathering_events(gathering: Gathering, *, url: str = "") -> list[Event]:
    """The VEVENTs of one gathering: the series, then one per moved occurrence."""
    tz = recurrence.zone(gathering.tz)
    master = _event_base(gathering, url=url)
    master.add("dtstart", gathering.start.astimezone(tz))
    master.add("duration", gathering.duration)
    if gathering.rrule:
        master.add("rrule", vRecur.from_ical(gathering.rrule))
    if gathering.cancelled:
        master.add("status", "CANCELLED")
    events = [master]
    occurrences = selectors.gathering_occurrences(gathering=gathering, include_cancelled=True)
    exdates = [o.original_start.astimezone(tz) for o in occurrences if o.cancelled and not gathering.cancelled]
    if exdates:
        master.add("exdate", exdates)
    for occ in occurrences:
        if occ.cancelled or not (occ.moved or occ.end - occ.start != gathering.duration):
            continue
        override = _event_base(gathering, url=url)
        override.add("recurrence-id", occ.original_start.astimezone(tz))
        override.add("dtstart", occ.start.astimezone(tz))
        override.add("duration", occ.end - occ.start)
        events.append(override)
    return events


def calendar_of(gatherings: Iterable[Gathering], *, name: str, url_of=None) -> bytes:
    """One VCALENDAR holding every gathering given, with the VTIMEZONEs it needs."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    for g in gatherings:
        for event in gathering_events(g, url=url_of(g) if url_of else ""):
            cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()


def recent(qs) -> list[Gathering]:
    """Gatherings not finished more than 90 days ago, in start order."""
    return list(
        qs.filter(series_end__gt=timezone.now() - KEEP_FINISHED)
        .select_related("room", "room__trade", "room__wilaya")
        .prefetch_related("exceptions")
        .order_by("start", "pk")
    )


def expand_feed(data: bytes, *, until: datetime | None = None) -> dict[str, list[tuple[datetime, datetime]]]:
    """Expand a feed as a calendar client would (dateutil on the parsed RRULE, EXDATE and
    RECURRENCE-ID overrides): for each UID, its (start, end) pairs in UTC, in order.

    Used by the tests to prove the feed says what the hub says; kept here so the
    docs can point at one reference reading.
    """
    from dateutil.rrule import rrulestr

    cal = Calendar.from_ical(data)
    masters: dict[str, Component] = {}
    overrides: dict[str, dict[datetime, Component]] = {}
    for event in cal.walk("VEVENT"):
        uid = str(event["uid"])
        if "recurrence-id" in event:
            rid = event.decoded("recurrence-id").astimezone(UTC)
            overrides.setdefault(uid, {})[rid] = event
        else:
            masters[uid] = event
    result: dict[str, list[tuple[datetime, datetime]]] = {}
    for uid, master in masters.items():
        if str(master.get("status", "")).upper() == "CANCELLED":
            result[uid] = []
            continue
        dtstart = master.decoded("dtstart")
        duration = master.decoded("duration")
        if "rrule" in master:
            encoded = master["rrule"].to_ical()
            rule = encoded.decode() if isinstance(encoded, bytes) else encoded
            starts = [s.astimezone(UTC) for s in rrulestr(rule, dtstart=dtstart)]
        else:
            starts = [dtstart.astimezone(UTC)]
        excluded: set[datetime] = set()
        exdates = master.get("exdate", [])
        for group in exdates if isinstance(exdates, list) else [exdates]:
            excluded.update(d.dt.astimezone(UTC) for d in group.dts)
        pairs = []
        for start in starts:
            if start in excluded:
                continue
            moved = overrides.get(uid, {}).get(start)
            if moved is not None:
                new_start = moved.decoded("dtstart").astimezone(UTC)
                pairs.append((new_start, new_start + moved.decoded("duration")))
            else:
                pairs.append((start, start + duration))
        pairs.sort()
        if until is not None:
            pairs = [p for p in pairs if p[0] < until]
        result[uid] = pairs
    return result
