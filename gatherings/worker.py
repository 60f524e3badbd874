"""The gatherings' worker: runs the jobs of Django's tasks framework (database backend)
and, every `sweep_seconds`, enqueues the reminder sweep.

`run_worker()` is the body of ``hirfa worker`` (production: one or more processes);
`embedded.py` runs the same loop in a thread of the hub in the embedded default.
Several workers at once are safe: jobs are claimed with ``SELECT ... FOR UPDATE SKIP
LOCKED`` by django-tasks-db, and each reminder is claimed once in the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0


def sweep_enqueue_if_idle() -> bool:
    """Enqueue the reminder sweep unless one is already waiting; True if enqueued."""
    from gatherings.tasks import reminders_sweep

    waiting = DBTaskResult.objects.ready().filter(task_path=reminders_sweep.module_path)
    if waiting.exists():
        return False
    reminders_sweep.enqueue()
    return True


def prune_finished(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete finished job rows older than `older_than` (the sweep makes many)."""
    cutoff = timezone.now() - older_than
    deleted, _ = DBTaskResult.objects.filter(finished_at__lt=cutoff).delete()
    return deleted


class GatheringsWorker:
    """One job runner plus one sweep ticker; `stop()` ends both within one interval."""

    def __init__(self, *, interval: float = 1.0, sweep_seconds: float = SWEEP_SECONDS, worker_id: str | None = None) -> None:
        self.sweep_seconds = sweep_seconds
        self._stop = threading.Event()
        self.runner = Worker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=(worker_id or f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")[:64],
            excluded_queue_names=[],
        )
        self._ticker: threading.Thread | None = None

    def _tick(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            try:
                close_old_connections()
                sweep_enqueue_if_idle()
                if time.monotonic() - last_prune > 3600:
                    # Every sweep leaves a finished job row; keep a week of them.
                    prune_finished()
                    last_prune = time.monotonic()
            except Exception:
                log.exception("could not enqueue the reminder sweep")
            finally:
                close_old_connections()
            self._stop.wait(self.sweep_seconds)

    def run(self) -> None:
        """Run until `stop()`; blocks the calling thread."""
        self._ticker = threading.Thread(target=self._tick, name="hirfa-gatherings-ticker", daemon=True)
        self._ticker.start()
        try:
            self.runner.run()
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self.runner.running = False


def run_worker(*, sweep_seconds: float = SWEEP_SECONDS, interval: float = 1.0) -> int:
    """Entry point of ``hirfa worker``: Django must be set up; stops on SIGINT/SIGTERM."""
    worker = GatheringsWorker(interval=interval, sweep_seconds=sweep_seconds)
    worker.runner.configure_signals()
    log.info("gatherings worker started (sweep every %.0f s)", sweep_seconds)
    try:
        worker.run()
    except SystemExit:
        worker.stop()
    return 0
