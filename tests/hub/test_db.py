"""hub.db: the ORM from the event loop, without a health-check round trip per call."""

from __future__ import annotations

import asyncio
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
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)  # one thread: every call shares its connection
    loop.set_default_executor(pool)
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
