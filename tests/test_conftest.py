"""The suite's guard at the end of each async test (tests/conftest.py): a task the test left
that does not end when cancelled fails the test with its name and where it waits, and is let
go, instead of holding the loop's close until pytest-timeout."""

from __future__ import annotations

import asyncio

from tests.conftest import end_tasks_left, let_go, tasks_left_report


async def _waits_forever() -> None:
    await asyncio.get_running_loop().create_future()


async def _drops_a_cancel(ready: asyncio.Future[None]) -> None:
    try:
        await ready
    except asyncio.CancelledError:
        pass  # as Python 3.11's wait_for does when the cancel meets a finished write
    await _waits_forever()


async def _ignores_every_cancel() -> None:
    while True:
        try:
            await _waits_forever()
        except asyncio.CancelledError:
            pass


def test_a_task_that_does_not_end_when_cancelled_is_named_with_where_it_waits() -> None:
    loop = asyncio.new_event_loop()
    try:
        dropping = loop.create_task(_drops_a_cancel(loop.create_future()), name="dropping")
        polite = loop.create_task(asyncio.sleep(3600), name="polite")
        loop.run_until_complete(asyncio.sleep(0))
        stuck = end_tasks_left(loop, seconds=0.2)
        assert stuck == {dropping}
        assert polite.cancelled()
        report = tasks_left_report(stuck)
        assert "--- task 'dropping' (cancel requested 1 time(s)):" in report
        # Every coroutine it is in, innermost last, and the future it awaits.
        assert report.index("in _drops_a_cancel") < report.index("in _waits_forever")
        assert "awaiting <Future pending" in report
        let_go(loop, stuck)
        assert dropping.cancelled(), "a second cancel ends a task that dropped one"
    finally:
        loop.close()


def test_a_task_that_ignores_every_cancel_is_let_go_so_the_loop_can_close() -> None:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # "Task was destroyed but it is pending"
    try:
        stubborn = loop.create_task(_ignores_every_cancel(), name="stubborn")
        loop.run_until_complete(asyncio.sleep(0))
        stuck = end_tasks_left(loop, seconds=0.2)
        assert stuck == {stubborn}
        let_go(loop, stuck)
        assert not stubborn.done()
        assert asyncio.all_tasks(loop) == set(), "asyncio.Runner's close would wait for it forever"
    finally:
        loop.close()
