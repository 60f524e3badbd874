"""The worker loop (`hirfa worker` body) and the embedded thread's guard."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from gatherings import embedded, services, worker
from hub.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_sweeps_sends_and_stops(schedule, amina):
    g = schedule(start=datetime.now(UTC) + timedelta(minutes=10))
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    w = worker.GatheringsWorker(interval=0.05, sweep_seconds=0.05, worker_id="test-worker")

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


def test_the_embedded_worker_never_starts_under_pytest(settings):
    settings.HIRFA_EMBEDDED_WORKER = True
    assert embedded.ensure_started() is False
    assert embedded._thread is None


def test_sweep_is_enqueued_once_while_one_waits():
    assert worker.sweep_enqueue_if_idle() is True
    assert worker.sweep_enqueue_if_idle() is False
