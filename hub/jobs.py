"""Background jobs: the runner of Django's tasks framework (database backend) and the
periodic jobs the apps register.

An app that needs a job enqueued every so often registers it in its
`AppConfig.ready()` with `periodic_register` (gatherings: the reminder sweep). The
runner executes queued jobs and, every `tick_seconds`, enqueues each periodic job
that is due and not already waiting.

`run_worker()` is the body of ``hirfa worker`` (production: one or more processes);
`embedded_start()` runs the same loop in a thread of the hub's process in the embedded
default (``settings.HIRFA_EMBEDDED_WORKER``), started by the first request. Several
workers at once are safe: jobs are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``
by django-tasks-db, and what a job does once is claimed in the database by the job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_tasks.base import Task
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
#: Finished job rows are kept this long (periodic jobs leave one per run).
KEEP_FINISHED = timedelta(days=7)


_periodic: dict[str, Task[[], Any]] = {}


def periodic_register(task: Task[[], Any]) -> None:
    """Have the worker enqueue `task` (no arguments) at every tick, unless a run of it
    already waits. Idempotent per task."""
    _periodic[task.module_path] = task


def periodic_jobs() -> tuple[Task[[], Any], ...]:
    return tuple(_periodic.values())


def enqueue_if_idle(task: Task[[], Any]) -> bool:
    """Enqueue `task` unless a run of it is already waiting; True if enqueued."""
    if DBTaskResult.objects.ready().filter(task_path=task.module_path).exists():
        return False
    task.enqueue()
    return True


def prune_finished(*, older_than: timedelta = KEEP_FINISHED) -> int:
    """Delete finished job rows older than `older_than`; answers how many."""
    deleted, _rows = DBTaskResult.objects.filter(finished_at__lt=timezone.now() - older_than).delete()
    return deleted


class JobWorker:
    """One job runner plus one ticker for the periodic jobs; `stop()` ends both within
    one interval."""

    def __init__(
        self, *, interval: float = 1.0, tick_seconds: float = TICK_SECONDS, worker_id: str | None = None
    ) -> None:
        self.tick_seconds = tick_seconds
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

    def tick(self) -> None:
        """Enqueue each periodic job, unless a run of it already waits."""
        for task in periodic_jobs():
            enqueue_if_idle(task)

    def _tick_loop(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            try:
                close_old_connections()
                self.tick()
                if time.monotonic() - last_prune > 3600:
                    prune_finished()
                    last_prune = time.monotonic()
            except Exception:
                log.exception("could not enqueue the periodic jobs")
            finally:
                close_old_connections()
            self._stop.wait(self.tick_seconds)

    def run(self) -> None:
        """Run until `stop()`; blocks the calling thread."""
        self._ticker = threading.Thread(target=self._tick_loop, name="hirfa-jobs-ticker", daemon=True)
        self._ticker.start()
        try:
            self.runner.run()
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self.runner.running = False


def job_metric_rows() -> list[tuple[str, str, dict[str, str], float]]:
    """The job queue as Prometheus gauges, read from the database at scrape time."""
    from django_tasks.base import TaskResultStatus

    hour_ago = timezone.now() - timedelta(hours=1)
    try:
        queued = DBTaskResult.objects.ready().count()
        failed = DBTaskResult.objects.filter(
            status=TaskResultStatus.FAILED, finished_at__gte=hour_ago
        ).count()
        done = DBTaskResult.objects.filter(
            status=TaskResultStatus.SUCCESSFUL, finished_at__gte=hour_ago
        ).count()
    finally:
        close_old_connections()
    return [
        ("hirfa_jobs_queued", "Jobs waiting to run (all workers)", {}, queued),
        ("hirfa_jobs_failed_last_hour", "Jobs that failed in the last hour (all workers)", {}, failed),
        ("hirfa_jobs_succeeded_last_hour", "Jobs that succeeded in the last hour (all workers)", {}, done),
    ]


def run_worker(
    *, tick_seconds: float = TICK_SECONDS, interval: float = 1.0, ops_port: int | None = None
) -> int:
    """Entry point of ``hirfa worker``: Django must be set up; stops on SIGINT/SIGTERM.

    With `ops_port`, serves ``/healthz``, ``/readyz`` and ``/metrics`` (queue depth,
    failures) on it (hub/ops_server.py).
    """
    from hub import metrics
    from hub.ops_server import ops_start

    worker = JobWorker(interval=interval, tick_seconds=tick_seconds)
    worker.runner.configure_signals()
    metrics.collector_register("jobs", metrics.FunctionCollector(job_metric_rows))
    ops = ops_start(ops_port)
    log.info("job worker started (periodic jobs every %.0f s)", tick_seconds)
    try:
        worker.run()
    except SystemExit:
        worker.stop()
    finally:
        if ops is not None:
            ops.stop()
    return 0


# --- the embedded default: the worker in a thread of the hub ---------------------------

_embedded_lock = threading.Lock()
_embedded_thread: threading.Thread | None = None


def embedded_start() -> bool:
    """Start the embedded worker once per process when ``settings.HIRFA_EMBEDDED_WORKER``
    is on (default: not in production, and never in the test settings); True if it runs."""
    global _embedded_thread
    if not settings.HIRFA_EMBEDDED_WORKER:
        return False
    with _embedded_lock:
        if _embedded_thread is not None and _embedded_thread.is_alive():
            return True
        worker = JobWorker()
        _embedded_thread = threading.Thread(target=worker.run, name="hirfa-embedded-worker", daemon=True)
        _embedded_thread.start()
        log.info("embedded job worker started")
        return True


def on_request_started(sender: Any, **kwargs: Any) -> None:
    """`request_started` receiver (wired in `HubConfig.ready`): the first request starts it."""
    if _embedded_thread is None:
        embedded_start()
