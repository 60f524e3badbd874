"""Calendar feeds: parsed by `icalendar`, expanded with dateutil, equal to the hub's view."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from icalendar import Calendar

from gatherings import feeds, selectors, services
from gatherings.models import Gathering
from hub.errors import HirfaError


def hub_pairs(gathering):
    return [(o.start, o.end) for o in selectors.gathering_occurrences(gathering=gathering)]


@pytest.fixture
def busy_series(schedule, karim, amina):
    """A weekly series with one occurrence cancelled, one moved and one lengthened."""
    g = schedule(rrule="FREQ=WEEKLY;BYDAY=FR;COUNT=8", agenda="Tour de main, émaillage")
    o = selectors.gathering_occurrences(gathering=g)
    services.occurrence_cancel(user=karim, gathering_id=g.pk, original_start=o[2].original_start)
    services.occurrence_move(
        user=karim, gathering_id=g.pk, original_start=o[4].original_start,
        new_start=o[4].original_start + timedelta(days=1, hours=-3),
    )
    services.occurrence_move(
        user=karim, gathering_id=g.pk, original_start=o[5].original_start,
        new_start=o[5].original_start, new_duration=timedelta(hours=3),
    )
    return Gathering.objects.get(pk=g.pk)


def test_one_gathering_feed_expands_to_the_hubs_occurrences(busy_series):
    data = feeds.calendar_of([busy_series], name="x")
    cal = Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 3  # the series and two overrides
    master = next(e for e in events if "recurrence-id" not in e)
    assert master["rrule"].to_ical() == b"FREQ=WEEKLY;COUNT=8;BYDAY=FR"
    assert str(master["dtstart"].params["TZID"]) == "Africa/Algiers"
    assert list(cal.walk("VTIMEZONE"))
    expanded = feeds.expand_feed(data)
    assert expanded[busy_series.uid] == hub_pairs(busy_series)
    assert len(expanded[busy_series.uid]) == 7


def test_until_rules_and_paris_dst_survive_the_round_trip(schedule, karim):
    from datetime import datetime

    year = datetime.now(UTC).year + 1
    g = schedule(start=datetime(year, 3, 1, 17, 0, tzinfo=UTC), tz="Europe/Paris",
                 rrule=f"FREQ=WEEKLY;UNTIL={year}0501")
    data = feeds.calendar_of([g], name="x")
    assert feeds.expand_feed(data)[g.uid] == hub_pairs(g)
    assert {s.hour for s, _ in hub_pairs(g)} == {17, 16}


def test_cancelled_gathering_is_exported_as_cancelled(schedule, karim):
    g = schedule(rrule="FREQ=DAILY;COUNT=3")
    services.gathering_cancel(user=karim, gathering_id=g.pk)
    g.refresh_from_db()
    data = feeds.calendar_of([g], name="x")
    assert b"STATUS:CANCELLED" in data
    assert feeds.expand_feed(data)[g.uid] == hub_pairs(g) == []


def test_split_series_round_trip(busy_series, karim):
    o = selectors.gathering_occurrences(gathering=busy_series, include_cancelled=True)
    later = services.gathering_split(
        user=karim, gathering_id=busy_series.pk, original_start=o[3].original_start,
        start=o[3].original_start + timedelta(hours=1),
    )
    busy_series.refresh_from_db()
    data = feeds.calendar_of([busy_series, later], name="x")
    expanded = feeds.expand_feed(data)
    assert expanded[busy_series.uid] == hub_pairs(busy_series)
    assert expanded[later.uid] == hub_pairs(later)


def test_personal_feed_token_and_revocation(schedule, amina, karim):
    g = schedule()
    schedule(title="Other")
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    token = services.feed_token_get(user=amina).token
    owner = selectors.feed_owner(token=token)
    assert owner == amina
    assert [x.pk for x in selectors.gatherings_of_member(user=owner)] == [g.pk]
    services.feed_token_revoke(user=amina)
    with pytest.raises(HirfaError):
        selectors.feed_owner(token=token)
    assert selectors.feed_owner(token=services.feed_token_get(user=amina).token) == amina
