"""The worker inside the hub's process, for the embedded default.

Started lazily by the first HTTP request (a `request_started` receiver wired in
`apps.GatheringsConfig.ready`), in one daemon thread, when
``settings.HIRFA_EMBEDDED_WORKER`` is true (default: not in production). Never
during a pytest run: a thread polling the test database would outlive the test.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_started() -> bool:
    """Start the embedded worker once per process; True if it runs (now or already)."""
    global _thread
    if not getattr(settings, "HIRFA_EMBEDDED_WORKER", False) or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    with _lock:
        if _thread is not None and _thread.is_alive():
            return True
        from gatherings.worker import GatheringsWorker

        worker = GatheringsWorker()
        _thread = threading.Thread(target=worker.run, name="hirfa-embedded-worker", daemon=True)
        _thread.start()
        log.info("embedded gatherings worker started")
        return True


def on_request_started(sender: Any, **kwargs: Any) -> None:
    if _thread is None:
        ensure_started()
