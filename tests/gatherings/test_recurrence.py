"""Recurrence rules: checked, normalised, expanded in the gathering's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gatherings import recurrence
from hub.errors import ErrorCode, HirfaError

ALGIERS = "Africa/Algiers"


def starts(rule: str, start: datetime, tz: str = ALGIERS) -> list[datetime]:
    return recurrence.series_starts(
        rule=recurrence.rule_normalise(rule, start=start, tz_name=tz), start=start, tz_name=tz
    )


def test_weekly_in_algiers_stays_at_18_local_and_17_utc_all_year():
    first = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # Friday 18:00 Algiers
    found = starts("FREQ=WEEKLY;BYDAY=FR;COUNT=40", first)
    assert len(found) == 40
    assert {s.astimezone(ZoneInfo(ALGIERS)).hour for s in found} == {18}
    assert {s.hour for s in found} == {17}


def test_a_paris_series_keeps_its_wall_clock_across_the_dst_switch():
    first = datetime(2026, 3, 22, 17, 0, tzinfo=UTC)  # Sunday 18:00 Paris (winter)
    found = starts("FREQ=WEEKLY;COUNT=3", first, "Europe/Paris")
    assert [s.hour for s in found] == [17, 16, 16]
    assert {s.astimezone(ZoneInfo("Europe/Paris")).hour for s in found} == {18}


def test_first_friday_of_the_month_until_a_date():
    first = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    found = starts("RRULE:FREQ=MONTHLY;BYDAY=1FR;UNTIL=20260630", first)
    assert [s.date().isoformat() for s in found] == [
        "2026-01-02", "2026-02-06", "2026-03-06", "2026-04-03", "2026-05-01", "2026-06-05",
    ]


def test_until_is_normalised_to_utc():
    first = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    rule = recurrence.rule_normalise("freq=weekly;until=20260130", start=first, tz_name=ALGIERS)
    assert rule == "FREQ=WEEKLY;UNTIL=20260130T225959Z"


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY",  # never ends
        "FREQ=DAILY;COUNT=100000",  # too many
        "FREQ=DAILY;UNTIL=21000101",  # too many
        "FREQ=HOURLY;COUNT=10",  # several a day
        "FREQ=MINUTELY;COUNT=10",
        "FREQ=DAILY;BYHOUR=1,2,3;COUNT=10",
        "FREQ=WEEKLY;COUNT=3;UNTIL=20270101",
        "FREQ=FORTNIGHTLY;COUNT=3",
        "FREQ=WEEKLY;COUNT=three",
        "FREQ=WEEKLY;COUNT",
        "FREQ=WEEKLY;UNTIL=20200101",
        "FREQ=WEEKLY;BYDAY=XX;COUNT=2",
        "FREQ=WEEKLY;BYDAY=MO;COUNT=2",  # the start (a Friday) is not on the rule
    ],
)
def test_bad_rules_are_clear_invalid_errors(rule):
    with pytest.raises(HirfaError) as err:
        recurrence.rule_normalise(rule, start=datetime(2026, 1, 2, 17, 0, tzinfo=UTC), tz_name=ALGIERS)
    assert err.value.code == ErrorCode.INVALID
    assert err.value.details["field"] == "rrule"


def test_unknown_time_zone():
    with pytest.raises(HirfaError) as err:
        recurrence.zone("Mars/Olympus")
    assert err.value.code == ErrorCode.INVALID


def test_rule_until_before_ends_the_series_before_the_cut():
    first = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    rule = recurrence.rule_normalise("FREQ=WEEKLY;COUNT=10", start=first, tz_name=ALGIERS)
    all_starts = recurrence.series_starts(rule=rule, start=first, tz_name=ALGIERS)
    cut = recurrence.rule_until_before(rule, all_starts[4])
    assert recurrence.series_starts(rule=cut, start=first, tz_name=ALGIERS) == all_starts[:4]


def test_occurrence_keys_round_trip():
    moment = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    assert recurrence.occurrence_key(moment) == "20260102T170000Z"
    assert recurrence.parse_occurrence_key("20260102T170000Z") == moment
    with pytest.raises(HirfaError):
        recurrence.parse_occurrence_key("tomorrow")
