"""bench/meeting_adapt.py's ``assembly`` case runs at a tiny size (no figure is checked: a bench)."""

from __future__ import annotations

import pytest

from bench import meeting_adapt

pytestmark = pytest.mark.timeout(120)


def test_the_assembly_case_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIRFA_BENCH_PORT_BASE", "43500")
    row = meeting_adapt.assembly(participants=3, cameras=1)
    assert row["case"] == "assembly" and row["join_to_first_frame_ms"] is not None, row
    assert isinstance(row["renegotiations_per_silent_join"], float | int), row
    assert row["renegotiations_last_silent_join"] >= 0, row
    assert row["renegotiations_per_silent_join"] == 0, "with slots a silent join renegotiates nobody else"
