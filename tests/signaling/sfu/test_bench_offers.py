"""bench/assembly.py's ``offers`` figure runs at tiny sizes: an SFU with slots in this process,
aiortc peers answering. No figure is checked for its value (a bench); that the machinery measured
is, and that a slot subscriber's offer does not grow with the meeting."""

from __future__ import annotations

import os

import pytest

from bench import assembly
from tests.parallel import worker_port

pytestmark = pytest.mark.timeout(120)


def test_offer_loop_time_is_measured_and_the_offer_keeps_its_size() -> None:
    base = worker_port(int(os.environ.get("HIRFA_BENCH_PORT_BASE", "43500")))
    rows = assembly.measure_offers([2, 5], probes=1, audio_slots=1, video_slots=2, cameras=1, port_base=base)

    assert [r["participants"] for r in rows] == [2, 5]
    for row in rows:
        assert row["offers"] == 2, "each probe: his join's offer and his camera's renegotiation"
        assert row["offer_loop_ms"]["p50"] > 0 and row["answer_loop_ms"]["p50"] > 0, row
        assert row["offer_longest_step_ms"]["p50"] <= row["offer_loop_ms"]["p50"], row
    # 1 + 2 subscribe slots, his mic, then his camera: the same m-lines at 2 and 5 participants
    assert rows[0]["mlines"] == rows[1]["mlines"] == [4, 5], rows
