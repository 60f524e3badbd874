"""hub.db: the ORM from the event loop, without a health-check round trip per call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from hub import db

pytestmark = pytest.mark.django_db(transaction=True)


def _one_query() -> int:
    from hub.models import User

    return User.objects.count()


async def test_a_connection_that_just_answered_is_not_health_checked_again(monkeypatch: Any) -> None:
    # Persistent connections with health checks, as in production.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connections.settings["default"], "CONN_HEALTH_CHECKS", True)
    checks: list[int] = []
    wrapper = type(connections["default"])
    original = wrapper.is_usable

    def counting(self: Any) -> bool:
        checks.append(1)
        return bool(original(self))

    monkeypatch.setattr(wrapper, "is_usable", counting)
    pool = ThreadPoolExecutor(max_workers=1)  # one thread: every call shares its connection
    monkeypatch.setattr(db, "_pool", pool)
    query = db.db_call(_one_query)
    try:
        for _ in range(20):
            await query()
        assert checks == []  # Django would have sent SELECT 1 before 19 of them

        monkeypatch.setattr(db, "HEALTHY_FOR_SECONDS", 0.0)
        for _ in range(3):
            await query()
        assert len(checks) == 3  # a connection idle longer than the window is checked as Django does
    finally:
        await db.db_call(connections.close_all)()
        pool.shutdown(wait=True)


async def test_calls_run_in_the_process_pool_of_hirfa_db_threads(monkeypatch: Any) -> None:
    import threading

    monkeypatch.setattr(db, "_pool", None)
    monkeypatch.setenv("HIRFA_DB_THREADS", "3")
    names = {await db.db_call(lambda: threading.current_thread().name)() for _ in range(3)}
    assert all(name.startswith("hirfa-db") for name in names)
    assert db.db_pool()._max_workers == 3
    await db.db_call(connections.close_all)()
    db.db_pool().shutdown(wait=True)
