"""Reminders: exactly once per member, occurrence and offset, with two workers and a restart."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connections
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from gatherings import reminders, selectors, services
from gatherings.models import ReminderSent
from hub.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


def _in_threads(*calls):
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []
    results: list[object] = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def _worker(name: str) -> Worker:
    return Worker(
        queue_names=["default"], interval=0, batch=True, backend_name="default",
        startup_delay=False, max_tasks=None, worker_id=name, excluded_queue_names=[],
    )


def _reminders(user):
    return list(Notification.objects.filter(user=user, kind="reminder"))


def test_each_reminder_goes_out_once_with_two_sweeps_at_once(schedule, amina, lina, yacine):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    g = schedule(start=start, rrule="FREQ=DAILY;COUNT=3")
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    services.rsvp_set(user=lina, gathering_id=g.pk, status="maybe")
    first = selectors.gathering_occurrences(gathering=g)[0]

    before = first.start - timedelta(hours=25)
    assert _in_threads(lambda: reminders.reminders_send_due(now=before)) == [0]

    at_24h = first.start - timedelta(hours=23)
    results = _in_threads(
        lambda: reminders.reminders_send_due(now=at_24h),
        lambda: reminders.reminders_send_due(now=at_24h),
    )
    assert sum(results) == 1
    (note,) = _reminders(amina)
    assert note.data["minutes_before"] == 24 * 60 and note.data["occurrence"] == first.key
    assert _reminders(lina) == []  # "maybe" gets no reminder
    # A later sweep, e.g. after a restart, sends nothing more for that offset.
    assert reminders.reminders_send_due(now=at_24h + timedelta(minutes=5)) == 0

    at_15m = first.start - timedelta(minutes=10)
    results = _in_threads(
        lambda: reminders.reminders_send_due(now=at_15m),
        lambda: reminders.reminders_send_due(now=at_15m),
    )
    assert sum(results) == 1
    assert sorted(n.data["minutes_before"] for n in _reminders(amina)) == [15, 24 * 60]
    # Once the first has started, the next day's occurrence gets its own 24-hour reminder.
    assert reminders.reminders_send_due(now=first.start + timedelta(minutes=1)) == 1
    second = selectors.gathering_occurrences(gathering=g)[1]
    assert _reminders(amina)[0].data["occurrence"] == second.key
    assert ReminderSent.objects.count() == 3


def test_two_real_workers_and_a_restart_send_each_reminder_and_email_once(schedule, amina, lina, karim):
    # Both offsets are already reached: only the most recent (15 min) is due.
    soon = datetime.now(UTC) + timedelta(minutes=10)
    g = schedule(start=soon, capacity=None)
    for user in (amina, lina):
        services.rsvp_set(user=user, gathering_id=g.pk, status="going")
    mail.outbox.clear()
    for _ in range(3):
        reminders.reminders_sweep.enqueue()
    _in_threads(lambda: _worker("w1").run(), lambda: _worker("w2").run())
    assert [n.data["minutes_before"] for n in _reminders(amina)] == [15]
    assert [n.data["minutes_before"] for n in _reminders(lina)] == [15]
    assert sorted(m.to[0] for m in mail.outbox) == ["amina@example.org", "lina@example.org"]
    assert all(m.subject.startswith(("Reminder", "Rappel", "تذكير")) for m in mail.outbox)

    # "Restart": new workers, new sweeps, the same database.
    for _ in range(2):
        reminders.reminders_sweep.enqueue()
    _in_threads(lambda: _worker("w3").run(), lambda: _worker("w4").run())
    assert len(_reminders(amina)) == len(_reminders(lina)) == 1
    assert len(mail.outbox) == 2
    assert not DBTaskResult.objects.exclude(status="SUCCESSFUL").exists()


def test_a_crash_between_claim_and_send_rolls_back_the_claim(schedule, amina, monkeypatch):
    soon = datetime.now(UTC) + timedelta(minutes=10)
    g = schedule(start=soon)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")

    def boom(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(reminders, "member_notify", boom)
    with pytest.raises(RuntimeError):
        reminders.reminders_send_due()
    assert not ReminderSent.objects.exists()
    monkeypatch.undo()
    assert reminders.reminders_send_due() == 1
    assert reminders.reminders_send_due() == 0


def test_reminder_offsets_are_configurable(settings, schedule, amina):
    settings.HIRFA_GATHERING_REMINDER_MINUTES = [60]
    start = datetime.now(UTC) + timedelta(minutes=90)
    g = schedule(start=start)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    assert reminders.reminders_send_due() == 0
    assert reminders.reminders_send_due(now=start - timedelta(minutes=59)) == 1
    assert _reminders(amina)[0].data["minutes_before"] == 60


def test_cancellation_notifies_those_going(schedule, amina, karim):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=2")
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    mail.outbox.clear()
    services.gathering_cancel(user=karim, gathering_id=g.pk)
    (note,) = Notification.objects.filter(user=amina, kind="gathering")
    assert note.data["event"] == "cancelled"
    _worker("w").run()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["amina@example.org"]
    assert reminders.reminders_send_due(now=g.start - timedelta(minutes=5)) == 0
