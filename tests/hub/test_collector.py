"""The hub process's garbage collector, set for crowds (hub/collector.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import gc, hub.asgi; print(gc.get_threshold()[0], gc.get_freeze_count())"


def _hub_collector(**env: str) -> tuple[int, int]:
    """The young threshold and the frozen objects of a process that loaded the hub's ASGI app."""
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", **env}
    environ.pop("DATABASE_URL", None)  # the embedded default: nothing to connect to
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    return int(out[-2]), int(out[-1])


def test_a_hub_process_freezes_its_start_and_collects_young_objects_less_often() -> None:
    """A restarted hub spent 8 s of its 22 s of CPU collecting while its crowd came back."""
    young, frozen = _hub_collector()
    assert young == 10_000
    assert frozen > 10_000, "what the start made (Django, the apps) is out of the scans"


def test_the_collector_keeps_python_s_settings_when_asked() -> None:
    young, frozen = _hub_collector(HIRFA_GC_YOUNG_THRESHOLD="0")
    assert (young, frozen) == (700, 0)


def test_the_pytest_process_keeps_python_s_collector() -> None:
    """It imported hub.asgi when it collected the tests: the rest of the suite would run frozen."""
    import gc

    import hub.asgi  # noqa: F401

    assert gc.get_threshold()[0] == 700 and gc.get_freeze_count() == 0
