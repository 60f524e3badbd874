"""The last seat, taken by two members at once: exactly one gets it (PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from gatherings import selectors, services
from tests.conftest import skip_or_fail

pytestmark = pytest.mark.django_db(transaction=True)


def _concurrently(*calls):
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_members_take_the_last_seat_at_once(schedule, amina, lina, yacine, monkeypatch):
    if connection.vendor != "postgresql":
        skip_or_fail("row locks need PostgreSQL; SQLite serialises every writer anyway")
    gathering = schedule(capacity=2, visibility="public")
    occ = selectors.gathering_occurrences(gathering=gathering)[0]
    services.rsvp_set(user=yacine, gathering_id=gathering.pk, status="going", original_start=occ.original_start)

    # Widen the window between counting the seats and taking one, so that an
    # unlocked implementation would let both members through.
    original_taken = services._SeatBook.taken

    def slow_taken(self, *args, **kwargs):
        found = original_taken(self, *args, **kwargs)
        time.sleep(0.2)
        return found

    monkeypatch.setattr(services._SeatBook, "taken", slow_taken)
    results = _concurrently(
        lambda: services.rsvp_set(user=amina, gathering_id=gathering.pk, status="going", original_start=occ.original_start),
        lambda: services.rsvp_set(user=lina, gathering_id=gathering.pk, status="going", original_start=occ.original_start),
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.status for r in results) == ["going", "waitlisted"]
    answers = selectors.effective_rsvps(gathering=gathering, original_start=occ.original_start)
    assert sum(1 for r in answers.values() if r.status == "going") == 2


def test_two_members_join_at_once_and_get_one_meeting(schedule, amina, lina, monkeypatch):
    """Both start the room's meeting at the same moment: one meeting, linked once."""
    if connection.vendor != "postgresql":
        skip_or_fail("concurrent transactions need PostgreSQL; SQLite serialises every writer anyway")
    from gatherings.models import OccurrenceMeeting
    from signaling import services as signaling_services
    from signaling.models import Meeting

    gathering = schedule()
    occ = selectors.gathering_occurrences(gathering=gathering)[0]
    # Widen the window between "is a meeting live?" and creating one.
    original_live = signaling_services.live_meeting

    def slow_live(**kwargs):
        found = original_live(**kwargs)
        time.sleep(0.2)
        return found

    monkeypatch.setattr(signaling_services, "live_meeting", slow_live)

    def join(user):
        return lambda: services.occurrence_meeting_open(
            user=user, gathering_id=gathering.pk, original_start=occ.original_start, now=occ.start
        )

    results = _concurrently(join(amina), join(lina))
    assert all(not isinstance(r, Exception) for r in results), results
    assert results[0].meeting_id == results[1].meeting_id
    assert Meeting.objects.count() == 1 and OccurrenceMeeting.objects.count() == 1
