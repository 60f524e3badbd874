"""bench/chat_fanout.py: how one step's repeats make the step (the ceiling and the hub alike)."""

from __future__ import annotations

from typing import Any

from bench.chat_fanout import _median_run


def _run(delivered: int, sustained: bool, lost: int = 0, closed: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "deliveries_per_s": delivered,
        "p99_ms": 50.0 if sustained else 300.0,
        "sustained": sustained,
        "lost": lost,
        "closed_4010_unreceived": 0,
        "closed": closed or {},
    }


def test_a_step_holds_when_most_repeats_do_with_the_median_sustained_figures() -> None:
    # A repeat that delivered more but missed p99 does not stand for the step.
    step = _median_run([_run(39_000, True), _run(45_000, False), _run(40_000, True)])
    assert step["sustained"]
    assert step["deliveries_per_s"] == 39_000
    assert step["repeats_deliveries_per_s"] == [39_000, 45_000, 40_000]


def test_one_lucky_repeat_does_not_make_a_step() -> None:
    step = _median_run([_run(80_000, True), _run(79_000, False), _run(78_000, False)])
    assert not step["sustained"]
    assert step["deliveries_per_s"] == 79_000


def test_losses_and_closes_of_every_repeat_count() -> None:
    step = _median_run([_run(40_000, True), _run(40_000, True, lost=3, closed={"4010": 1}), _run(41_000, True)])
    assert step["lost"] == 3
    assert step["closed"] == {"4010": 1}
