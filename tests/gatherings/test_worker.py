"""The job worker (`hirfa worker` body, hub/jobs.py) running the reminder sweep, and the
embedded thread's switch."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from gatherings import services
from gatherings.reminders import reminders_sweep
from hub import jobs
from hub.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_sweeps_sends_and_stops(schedule, amina):
    g = schedule(start=datetime.now(UTC) + timedelta(minutes=10))
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    w = jobs.JobWorker(interval=0.05, tick_seconds=0.05, worker_id="test-worker")

    def run():
        try:
            w.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # a safety net, not an assertion on speed
        while not Notification.objects.filter(user=amina, kind="reminder").exists():
            assert time.monotonic() < deadline, "the worker never sent the reminder"
            time.sleep(0.05)
    finally:
        w.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert Notification.objects.filter(user=amina, kind="reminder").count() == 1


def test_the_reminder_sweep_is_a_periodic_job_of_gatherings():
    assert reminders_sweep in jobs.periodic_jobs()


def test_the_embedded_worker_is_off_in_the_test_settings(settings):
    assert settings.HIRFA_EMBEDDED_WORKER is False
    assert jobs.embedded_start() is False
    assert jobs._embedded_thread is None


def test_sweep_is_enqueued_once_while_one_waits():
    assert jobs.enqueue_if_idle(reminders_sweep) is True
    assert jobs.enqueue_if_idle(reminders_sweep) is False
