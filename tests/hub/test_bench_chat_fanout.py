"""bench/chat_fanout.py: how one step's repeats make the step (the ceiling and the hub alike)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.chat_fanout import Series, _median_run, _order, senders_for


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


# --- the rates each server runs (`Series`) and the order of the two servers (`_order`) ---


def _step(offered: int, sustained: bool, closed: dict[str, int] | None = None) -> dict[str, Any]:
    return {"offered_deliveries_per_s": offered, "sustained": sustained, "closed": closed or {}}


def _walk(series: Series, holds: Callable[[int], bool]) -> list[int]:
    rates = []
    while (rate := series.next_rate()) is not None:
        rates.append(rate)
        series.record(_step(rate, holds(rate)))
        assert len(rates) < 50
    return rates


def test_the_ladder_ends_after_two_failures_in_a_row_then_narrows_between_held_and_failed() -> None:
    series = Series([10_000, 20_000, 30_000, 40_000, 50_000, 65_000], refine=3, max_offered=1e9)
    rates = _walk(series, lambda r: r <= 36_000)
    # 40,000 and 50,000 failed; then the geometric middle of 30,000-40,000 and so on.
    assert rates[:5] == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert rates[5:] == [34_600, 37_200, 35_900]
    assert series.phases() == ["ladder"] * 5 + ["refine"] * 3


def test_one_failure_below_the_knee_does_not_end_the_ladder_and_the_bracket_is_above_it() -> None:
    series = Series([10_000, 20_000, 30_000, 40_000, 50_000, 65_000], refine=1, max_offered=1e9)
    rates = _walk(series, lambda r: r != 20_000 and r <= 45_000)
    assert rates == [10_000, 20_000, 30_000, 40_000, 50_000, 65_000, 44_700]


def test_no_narrowing_without_a_failed_rate_or_a_held_one() -> None:
    # The senders' limit ends the ladder before anything failed.
    series = Series([10_000, 20_000, 30_000], refine=3, max_offered=25_000)
    assert _walk(series, lambda r: True) == [10_000, 20_000]
    series = Series([10_000, 20_000, 30_000], refine=3, max_offered=1e9)
    assert _walk(series, lambda r: False) == [10_000, 20_000]


def test_a_closed_socket_ends_the_series_at_once() -> None:
    series = Series([10_000, 20_000, 30_000], refine=3, max_offered=1e9)
    assert series.next_rate() == 10_000
    series.record(_step(10_000, True))
    series.record(_step(20_000, False, closed={"4010": 2}))
    assert series.next_rate() is None


def test_the_two_servers_take_turns_going_first() -> None:
    firsts = [_order(["hub", "ceiling"], round_no, rep)[0] for round_no in range(2) for rep in range(3)]
    assert firsts == ["hub", "ceiling", "hub", "ceiling", "hub", "ceiling"]
    assert _order(["hub"], 1, 0) == ["hub"]


def test_a_ladder_stopped_by_the_senders_limit_is_flagged_as_a_bound() -> None:
    # At 100 members 40 senders offer at most 60,000/s: a server holding every step up to
    # there has no knee found, and a ratio over it is an upper bound.
    series = Series([10_000, 20_000, 30_000], refine=3, max_offered=25_000)
    _walk(series, lambda r: True)
    assert series.at_senders_limit
    series = Series([10_000, 20_000, 30_000], refine=3, max_offered=1e9)
    _walk(series, lambda r: r < 25_000)
    assert not series.at_senders_limit


def test_enough_senders_for_the_highest_step() -> None:
    # 15 messages/s each: 160,000 deliveries/s to 100 members needs 107 senders.
    assert senders_for(members=100, steps=[2_500, 160_000], asked=40) == 107
    assert senders_for(members=1_000, steps=[2_500, 160_000], asked=40) == 40
