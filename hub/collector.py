"""The cyclic garbage collector of a hub process, set for crowds.

Every socket adds a few hundred objects the collector tracks (its consumer, parts, tasks,
futures, frames). With CPython's own settings, a young collection every 700 net
allocations and a full one whenever the objects promoted since the last reach a quarter
of the old ones, a hub whose 2,500 members came back at once after a restart ran 11 full
collections of 470,000-790,000 objects and 1,582 young ones: 8 s of its 22 s of CPU in
that storm (docs/performance.md, "2026-12-01 afternoon"). What the process's start made
(Django, the apps, the URL and protocol tables) is never garbage and was scanned by every
full collection.
"""

from __future__ import annotations

import gc

from django.conf import settings


def collector_set_for_crowds() -> None:
    """Leave what the process made so far out of every later collection (gc.freeze), and
    collect the young generation every ``HIRFA_GC_YOUNG_THRESHOLD`` net allocations, so
    that a crowd's short-lived objects die before they are scanned or promoted and a full
    collection comes that much later. 0 keeps Python's settings."""
    young = int(getattr(settings, "HIRFA_GC_YOUNG_THRESHOLD", 0))
    if young <= 0:
        return
    gc.collect()  # garbage of the start is freed, not frozen
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
