"""CSV exports that a spreadsheet opens as data, never as formulas.

A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is read by
spreadsheet programs as a formula (`=HYPERLINK(...)`, `@SUM(...)`, DDE); a member's
name is chosen by the member, so every text cell that begins so is prefixed with an
apostrophe, which the programs show as text. Numbers stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def csv_cell(value: object) -> object:
    """`value` as a cell no spreadsheet evaluates."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeCsvWriter:
    """`csv.writer` whose rows go through `csv_cell`."""

    def __init__(self, out: _Writable) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([csv_cell(v) for v in row])


def csv_download(filename: str) -> tuple[HttpResponse, SafeCsvWriter]:
    """A CSV attachment named `filename` that spreadsheet programs read as UTF-8 (a byte
    order mark first, so Arabic names show), and the writer of its rows."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")
    return response, SafeCsvWriter(response)
