from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

import pytest

from tests import factories

IN_CI = os.environ.get("CI") == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a check that cannot run here, but never under CI=true: there it must run."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


#: How long the tasks an async test left behind have to end once cancelled, before the test
#: fails naming them (pytest-asyncio's runner would wait for them without end, until
#: pytest-timeout killed the run with nothing but idle threads in its dump).
TASKS_END_SECONDS = 10.0


def tasks_left_report(tasks: set[asyncio.Task[object]]) -> str:
    """Each task's name and where it waits: every coroutine it is in, innermost last
    (``Task.print_stack`` shows only the outermost), then the future it awaits. A task still
    waiting with a cancel requested caught the cancel, or something it awaited dropped it."""
    out = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        frames: list[tuple[FrameType, int]] = []
        awaited: object = task.get_coro()
        while hasattr(awaited, "cr_frame") or hasattr(awaited, "gi_frame"):
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                frames.append((frame, frame.f_lineno))
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        waiter = getattr(task, "_fut_waiter", None) or awaited  # the future itself, not its iterator
        stack = "".join(traceback.StackSummary.extract(frames).format())
        out.append(
            f"--- task {task.get_name()!r} (cancel requested {task.cancelling()} time(s)):\n"
            f"{stack}    awaiting {waiter!r}\n"
        )
    return "".join(out)


def end_tasks_left(loop: asyncio.AbstractEventLoop, *, seconds: float = TASKS_END_SECONDS) -> set[asyncio.Task[object]]:
    """Cancel the tasks still on ``loop`` (not running) once, as asyncio.Runner does when it
    closes, and wait up to ``seconds`` for them to end; the tasks that did not."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()

    async def ended() -> set[asyncio.Task[object]]:
        if not tasks:
            return set()
        _done, pending = await asyncio.wait(tasks, timeout=seconds)
        return pending

    return loop.run_until_complete(ended())


def let_go(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[object]]) -> None:
    """Cancel ``tasks`` again (one that dropped a cancel ends now) and forget those that
    still do not end, so that the runner's close does not wait for them forever."""
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
    for task in tasks:
        if not task.done():
            asyncio.tasks._unregister_task(task)


@pytest.fixture
def _function_scoped_runner(_function_scoped_runner: asyncio.Runner) -> Iterator[asyncio.Runner]:
    """pytest-asyncio's runner of a test's loop (its fixture, overridden by name), whose close
    waits without a bound for the tasks a test left: here those that do not end within
    TASKS_END_SECONDS of their cancel fail the test with their names and stacks (instead of
    hanging it until pytest-timeout), and are let go so that the runner can close its loop."""
    yield _function_scoped_runner
    loop = _function_scoped_runner.get_loop()
    if loop.is_closed():
        return  # closed by the test: pytest-asyncio warns of it
    stuck = end_tasks_left(loop)
    if not stuck:
        return
    report = tasks_left_report(stuck)
    let_go(loop, stuck)
    pytest.fail(
        f"{len(stuck)} task(s) of the test's loop did not end within {TASKS_END_SECONDS:.0f} s "
        f"of being cancelled:\n{report}",
        pytrace=False,
    )


@pytest.fixture(scope="session", autouse=True)
def _artifacts_folder() -> None:
    """test-artifacts/ (logs, screenshots) exists whichever test runs first or alone."""
    from tests.servers import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def production_static(tmp_path_factory: pytest.TempPathFactory):
    """The static files collected once per run as production does (tests.servers.
    collect_production_static): every test that serves them reads this one folder, none
    writes to it (collecting them costs a minute of CPU each time). The two xdist workers
    share it: the first to need it collects, under a lock, while the other waits."""
    import fcntl

    from tests.servers import collect_production_static

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    root = base / "production-static"
    with open(base / "production-static.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "staticfiles.json").exists():
            collecting = base / "production-static.partial"
            collect_production_static(collecting)
            collecting.rename(root)
    return root


@pytest.fixture
def redis_url() -> str:
    """The Redis server the tests may use (REDIS_URL, or the local default if it answers)."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        skip_or_fail(f"no Redis answers at {url}: {exc}")
    return url


@pytest.fixture(autouse=True)
def _reset_rate_limits():
    from gatherings.api import preview_buckets
    from rooms.services import send_buckets

    send_buckets.reset()
    preview_buckets.reset()
    yield
    send_buckets.reset()
    preview_buckets.reset()


@pytest.fixture(autouse=True)
def _no_loop_connection_kept():
    """The event loops' own database connections (hub.db.loop_connection) end with the test:
    its loop is gone, and an open one would keep the test database from being dropped."""
    yield
    from hub.db import loop_connections_discard

    loop_connections_discard()


@pytest.fixture(autouse=True)
def _no_socket_slots_or_throttle_counts_held():
    """Each test starts with no member holding a socket slot, no address or account counted
    by a throttle and nobody online: ids and 127.0.0.1 are reused from test to test (and from
    run to run on one Redis), and what an earlier test left would count against this one (a
    test server stopped before its sockets' presence was removed leaves it for 90 s)."""
    from django.conf import settings
    from django.core.cache import cache

    from hub import limits

    limits.local_slots_clear()
    if not settings.REDIS_URL:
        cache.clear()  # the in-process cache the throttles count in
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    try:
        for pattern in ("hirfa:sockets:*", "*hirfa:throttle:*", "hirfa:presence:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass  # no Redis here: the tests that need it say so themselves
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _roomy_account_throttles(settings):
    """The suite signs up and resets passwords from one address, far more than a person would;
    the throttles' own tests (tests/hub/test_throttle.py) set the real limits back."""
    settings.HIRFA_SIGNUPS_PER_IP_HOUR = 100_000
    settings.HIRFA_RESETS_PER_IP_HOUR = 100_000
    settings.HIRFA_RESET_MAILS_PER_ACCOUNT_HOUR = 100_000


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, and at the end no stray session that would stop its removal.

    Sockets run their database calls in pool threads, each with its own
    connection; the last of them may still be open when the run ends.
    """
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


# The places and the cast (tests/factories.py says who each person is). A folder may give
# the places other values (the registry's tests take the reference wilayas), never the cast.


@pytest.fixture
def poterie(db):
    return factories.pottery()


@pytest.fixture
def tissage(db):
    return factories.weaving()


@pytest.fixture
def tlemcen(db):
    return factories.tlemcen()


@pytest.fixture
def oran(db):
    return factories.oran()


@pytest.fixture
def alger(db):
    return factories.alger()


@pytest.fixture
def amina(poterie, tlemcen):
    return factories.amina(pottery_=poterie, tlemcen_=tlemcen)


@pytest.fixture
def yacine(poterie, oran):
    return factories.yacine(pottery_=poterie, oran_=oran)


@pytest.fixture
def karim(poterie, tlemcen):
    return factories.karim(pottery_=poterie, tlemcen_=tlemcen)


@pytest.fixture
def nadia(poterie):
    return factories.nadia(pottery_=poterie)


@pytest.fixture
def omar(oran):
    return factories.omar(oran_=oran)


@pytest.fixture
def sofia(tissage, alger):
    return factories.sofia(weaving_=tissage, alger_=alger)


@pytest.fixture
def lina(tissage, tlemcen):
    return factories.lina(weaving_=tissage, tlemcen_=tlemcen)


@pytest.fixture
def walid(db):
    return factories.walid()


@pytest.fixture
def leila(db):
    return factories.leila()
