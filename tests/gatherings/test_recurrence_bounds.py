"""Bounded recurrence: a horizon, a step budget, one expansion per stored series, a rate-limited preview.

Speed is measured by `bench/recurrence.py`, not here: these tests show what stops an
expansion, not how long it takes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatherings import recurrence, selectors
from gatherings.models import Gathering
from hub.errors import ErrorCode, HirfaError
from tests.gatherings.test_api import body, client_for, post  # noqa: F401  (fixture)

SPARSE = "FREQ=DAILY;UNTIL=99991231;BYMONTH=2;BYMONTHDAY=30"


@pytest.fixture(autouse=True)
def in_english():
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def budget_hits(monkeypatch):
    """Every time the step budget stopped dateutil."""
    hits: list[str] = []

    class Recorded(recurrence.StepBudgetExceeded):
        def __init__(self, message: str) -> None:
            hits.append(message)
            super().__init__(message)

    monkeypatch.setattr(recurrence, "StepBudgetExceeded", Recorded)
    return hits


def refused(rule: str, start: datetime) -> HirfaError:
    with pytest.raises(HirfaError) as caught:
        recurrence.rule_normalise(rule, start=start, tz_name="Africa/Algiers")
    assert caught.value.code == ErrorCode.INVALID
    return caught.value


def test_a_rule_that_never_matches_is_stopped_by_the_step_budget(budget_hits):
    start = datetime(2027, 1, 4, 17, 0, tzinfo=UTC)
    # The horizon: UNTIL in the year 9999 is refused before any expansion.
    assert "within 2 years" in refused(SPARSE, start).message
    assert budget_hits == []
    # Inside the horizon, the rule still never yields: the budget stops the walk.
    error = refused("FREQ=DAILY;UNTIL=20281231;BYMONTH=2;BYMONTHDAY=30", start)
    assert "within 2 years" in error.message
    assert budget_hits == ["more than 733 calendar periods"]


def test_the_step_budget_is_the_periods_inside_the_horizon(budget_hits):
    start = datetime(2027, 1, 4, 17, 0, tzinfo=UTC)
    tz = recurrence.zone("Africa/Algiers")
    for rule, budget in [
        ("FREQ=DAILY;COUNT=5;BYMONTH=2;BYMONTHDAY=30", 733),
        ("FREQ=WEEKLY;INTERVAL=2;COUNT=5;BYMONTH=2;BYMONTHDAY=30", 54),
        ("FREQ=MONTHLY;COUNT=5;BYMONTH=2;BYMONTHDAY=30", 28),
        ("FREQ=YEARLY;COUNT=5;BYMONTH=2;BYMONTHDAY=30", 4),
    ]:
        assert recurrence._step_budget(rule) == budget
        assert recurrence._expand(rule, start, tz) == ([], False)
    assert budget_hits == [f"more than {b} calendar periods" for b in (733, 54, 28, 4)]


def test_count_500_on_29_february_is_refused():
    # 500 years of leap days: dateutil would walk 2,000 years for it.
    error = refused("FREQ=YEARLY;COUNT=500", datetime(2028, 2, 29, 17, 0, tzinfo=UTC))
    assert "within 2 years" in error.message


def test_series_inside_the_horizon_are_accepted_whole():
    start = datetime(2027, 1, 1, 17, 0, tzinfo=UTC)  # a Friday
    weekly = recurrence.rule_normalise("FREQ=WEEKLY;COUNT=100", start=start, tz_name="Africa/Algiers")
    starts = recurrence.series_starts(rule=weekly, start=start, tz_name="Africa/Algiers")
    assert len(starts) == 100 and starts[-1] == start + timedelta(weeks=99)
    daily = recurrence.rule_normalise("FREQ=DAILY;COUNT=500", start=start, tz_name="Africa/Algiers")
    assert len(recurrence.series_starts(rule=daily, start=start, tz_name="Africa/Algiers")) == 500
    assert "within 2 years" in refused("FREQ=WEEKLY;COUNT=110", start).message
    assert "within 2 years" in refused("FREQ=MONTHLY;UNTIL=20300101", start).message


@pytest.mark.django_db
def test_a_stored_series_is_read_up_to_the_horizon_and_expanded_once(schedule, monkeypatch):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=4")
    # A series stored before the horizon existed: 500 leap days.
    leap = datetime(2028, 2, 29, 17, 0, tzinfo=UTC)
    Gathering.objects.filter(pk=g.pk).update(rrule="FREQ=YEARLY;COUNT=500", start=leap)
    g.refresh_from_db()
    recurrence._series_starts.cache_clear()
    expansions = []
    real = recurrence._expand
    monkeypatch.setattr(recurrence, "_expand", lambda *a: expansions.append(a) or real(*a))
    for _read in range(3):  # a page, a feed, a reminder: one expansion
        occurrences = selectors.gathering_occurrences(gathering=g)
        assert [o.start for o in occurrences] == [leap]
    assert len(expansions) == 1

    from gatherings import feeds

    assert b"FREQ=YEARLY" in feeds.calendar_of([g], name="x")
    assert len(expansions) == 1


@pytest.mark.django_db
def test_the_preview_is_rate_limited_per_member(karim, amina, body):  # noqa: F811
    mine = client_for(karim)
    rule = {"start": body["start"], "rrule": "FREQ=WEEKLY;COUNT=4", "count": 2}
    answers = [post(mine, "/api/gatherings/preview", rule).status_code for _ in range(12)]
    assert answers[:10] == [200] * 10
    refused_answer = post(mine, "/api/gatherings/preview", rule)
    assert refused_answer.status_code == 429
    assert refused_answer.json()["code"] == "rate_limited"
    assert int(refused_answer["Retry-After"]) >= 1
    # Another member has his own bucket.
    assert post(client_for(amina), "/api/gatherings/preview", rule).status_code == 200


@pytest.mark.django_db
def test_the_sparse_preview_answers_invalid(karim, body):  # noqa: F811
    r = post(client_for(karim), "/api/gatherings/preview", {"start": body["start"], "rrule": SPARSE})
    assert r.status_code == 400 or r.status_code == 422
    assert r.json()["code"] == "invalid" and "2" in r.json()["message"]
