"""What a drained hub does once its reactor stopped (hub.shutdown.finish_exit): it ends now,
whatever its worker threads are doing."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import SyncToAsync

from hub import db, shutdown


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """os._exit recorded instead of done; asgiref's executor a fresh one the test may shut down."""
    calls: list[int] = []
    # Threads other tests left behind are not this test's business.
    before = set(threading.enumerate())
    busy = shutdown._busy_threads
    monkeypatch.setattr(shutdown, "_busy_threads", lambda: [t for t in busy() if t not in before])
    monkeypatch.setattr(shutdown.os, "_exit", calls.append)
    monkeypatch.setattr(shutdown.logging, "shutdown", lambda: None)
    monkeypatch.setattr(SyncToAsync, "single_thread_executor", ThreadPoolExecutor(max_workers=1))
    monkeypatch.setattr(db, "_pool", ThreadPoolExecutor(max_workers=2, thread_name_prefix="hirfa-db"))
    return calls


def test_idle_worker_threads_do_not_hold_the_exit(exits: list[int]) -> None:
    loop = asyncio.new_event_loop()
    try:
        # Each executor a database call may run in has a thread waiting for work.
        loop.run_until_complete(loop.run_in_executor(None, lambda: None))
        SyncToAsync.single_thread_executor.submit(lambda: None).result()
        pool = db.db_pool_started()
        assert pool is not None
        pool.submit(lambda: None).result()  # db_call's pool (hub.db)
        shutdown.finish_exit(loop, timeout=5)
        assert exits == []
        assert shutdown._busy_threads() == []
    finally:
        loop.close()


def test_a_call_still_waiting_is_logged_and_the_process_exits_anyway(
    exits: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    # A database call waiting for a pooled connection that will not come back in time.
    release = threading.Event()
    waiting = threading.Thread(target=release.wait, name="db-call-waiting", daemon=False)
    waiting.start()
    try:
        with caplog.at_level(logging.WARNING, logger="hub.shutdown"):
            shutdown.finish_exit(None, timeout=0.2)
        assert exits == [0]
        assert "db-call-waiting still busy" in caplog.text
        assert ", in wait\n" in caplog.text  # its stack is in the log
    finally:
        release.set()
        waiting.join()
