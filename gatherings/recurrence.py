"""Recurrence rules (RFC 5545 RRULE) checked, normalised and expanded.

Pure functions, no database. Expansion happens in the gathering's own time zone,
so "every Friday at 18:00 Africa/Algiers" stays 18:00 in Algiers whatever the
viewer's offset; the results are aware datetimes in UTC.

Guarantees of `rule_normalise`: the start is the rule's first occurrence, the rule ends (COUNT or UNTIL), yields at most
`MAX_OCCURRENCES` occurrences and at most one a day (no sub-daily frequency, no
BYHOUR/BYMINUTE/BYSECOND), and UNTIL is written in UTC (``...Z``) as RFC 5545
requires when DTSTART has a time zone.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil import rrule as dateutil_rrule
from dateutil.rrule import rrulestr
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError

MAX_OCCURRENCES = 500
DEFAULT_TZ = "Africa/Algiers"
# A series ends within this span of its first occurrence.
HORIZON = timedelta(days=731)
HORIZON_TEXT_YEARS = 2
# dateutil walks the calendar one FREQ period per step (a day, a week, a month, a year).
_PERIOD_DAYS = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 28, "YEARLY": 365}
# The step is counted where dateutil asks for a period's days: `_iterinfo.<f>dayset`. A
# private name, so it is checked here at import and the budget has its own test
# (tests/gatherings/test_recurrence_bounds.py fails if a dateutil release renames it).
_DAYSET_METHODS = ("ydayset", "mdayset", "wdayset", "ddayset")
if not all(hasattr(dateutil_rrule._iterinfo, name) for name in _DAYSET_METHODS):
    raise ImportError("dateutil's rrule no longer walks periods through _iterinfo.*dayset")

_FREQS = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
_ALLOWED_PARTS = {
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYSETPOS",
    "BYWEEKNO",
    "BYYEARDAY",
    "WKST",
}


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or an `invalid` error naming it."""
    try:
        if name not in _zone_names():
            raise KeyError(name)
        return ZoneInfo(name)
    except (KeyError, ValueError, ZoneInfoNotFoundError):
        raise HirfaError(
            ErrorCode.INVALID, _("Unknown time zone: %(tz)s") % {"tz": name}, field="tz"
        ) from None


_names_cache: set[str] = set()


def _zone_names() -> set[str]:
    if not _names_cache:
        _names_cache.update(available_timezones())
    return _names_cache


def _invalid(message: str) -> HirfaError:
    return HirfaError(ErrorCode.INVALID, message, field="rrule")


def _parse_until(value: str, tz: ZoneInfo) -> datetime:
    """UNTIL as UTC: a date means the end of that day, a floating time is the gathering's."""
    value = value.strip().upper()
    try:
        if len(value) == 8:
            day = datetime.strptime(value, "%Y%m%d").date()
            return datetime.combine(day, time(23, 59, 59), tz).astimezone(UTC)
        if value.endswith("Z"):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz).astimezone(UTC)
    except ValueError:
        raise _invalid(_("UNTIL must be a date (YYYYMMDD) or a time (YYYYMMDDTHHMMSSZ).")) from None


def rule_normalise(text: str, *, start: datetime, tz_name: str) -> str:
    """The rule in canonical form ("" for a one-off), or an `invalid` error that says why.

    `start` is the first occurrence (aware). The rule is expanded once to count it.
    """
    text = (text or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        return ""
    tz = zone(tz_name)
    parts: dict[str, str] = {}
    for chunk in text.split(";"):
        if not chunk.strip():
            continue
        key, sep, value = chunk.partition("=")
        key = key.strip().upper()
        if not sep or not value.strip():
            raise _invalid(_("Malformed recurrence rule part: %(part)s") % {"part": chunk})
        if key not in _ALLOWED_PARTS:
            raise _invalid(
                _("Recurrence rules may not use %(part)s (at most one occurrence a day).")
                % {"part": key}
            )
        if key in parts:
            raise _invalid(_("%(part)s appears twice in the recurrence rule.") % {"part": key})
        parts[key] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq not in _FREQS:
        raise _invalid(_("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY."))
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise _invalid(_("A recurrence must end: give COUNT or UNTIL."))
    if "COUNT" in parts and "UNTIL" in parts:
        raise _invalid(_("Give COUNT or UNTIL, not both."))
    if "COUNT" in parts and (
        not parts["COUNT"].isdigit() or not 1 <= int(parts["COUNT"]) <= MAX_OCCURRENCES
    ):
        raise _invalid(_("COUNT must be between 1 and %(max)d.") % {"max": MAX_OCCURRENCES})
    if "INTERVAL" in parts and (not parts["INTERVAL"].isdigit() or int(parts["INTERVAL"]) < 1):
        raise _invalid(_("INTERVAL must be a positive whole number."))
    if "UNTIL" in parts:
        until = _parse_until(parts["UNTIL"], tz)
        if until < start:
            raise _invalid(_("UNTIL is before the first occurrence."))
        if until > start + HORIZON:
            raise _beyond_horizon()
        parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%SZ")
    order = ["FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYWEEKNO", "BYYEARDAY",
             "BYMONTHDAY", "BYDAY", "BYSETPOS", "WKST"]
    canonical = ";".join(f"{k}={parts[k]}" for k in order if k in parts)
    try:
        starts, ended = _expand(canonical, start, tz)
    except (ValueError, TypeError) as exc:
        raise _invalid(_("The recurrence rule is not valid: %(error)s") % {"error": exc}) from None
    if len(starts) > MAX_OCCURRENCES:
        raise _invalid(
            _("The recurrence yields more than %(max)d occurrences.") % {"max": MAX_OCCURRENCES}
        )
    if not ended:
        raise _beyond_horizon()
    if not starts:
        raise _invalid(_("The recurrence yields no occurrence."))
    if starts[0] != start.astimezone(UTC):
        # RFC 5545 counts DTSTART as an occurrence even off the rule, most expanders
        # (dateutil included) do not: refusing the mismatch keeps every reader in step.
        raise _invalid(_("The start must be one of the recurrence's occurrences."))
    return canonical


def _beyond_horizon() -> HirfaError:
    return _invalid(
        _("A recurring gathering must end within %(years)d years of its first occurrence.")
        % {"years": HORIZON_TEXT_YEARS}
    )


class StepBudgetExceeded(Exception):
    """dateutil walked more calendar periods than the horizon holds."""


def _step_budget(rule: str) -> int:
    """How many FREQ periods dateutil may walk for `rule`: those inside the horizon, and 2 more."""
    parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
    interval = int(parts.get("INTERVAL", "1"))
    return HORIZON.days // (_PERIOD_DAYS[parts["FREQ"]] * interval) + 2


@contextlib.contextmanager
def _step_limit(budget: int) -> Iterator[None]:
    """Raise `StepBudgetExceeded` inside dateutil once it asks for more than `budget` periods.

    dateutil's expansion loop yields only matching days, so nothing outside it can stop
    a rule that never matches; a trace function on this thread counts its period steps
    (function calls only: it returns None, so no line is traced).
    """
    steps = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal steps
        if frame.f_code.co_name in _DAYSET_METHODS:  # type: ignore[attr-defined]
            steps += 1
            if steps > budget:
                raise StepBudgetExceeded(f"more than {budget} calendar periods")

    previous = sys.gettrace()
    sys.settrace(count)
    try:
        yield
    finally:
        sys.settrace(previous)


def _expand(rule: str, start: datetime, tz: ZoneInfo) -> tuple[list[datetime], bool]:
    """The starts of `rule` inside the horizon (at most MAX_OCCURRENCES + 1), and whether it ended there."""
    end = start.astimezone(UTC) + HORIZON
    found: list[datetime] = []
    try:
        with _step_limit(_step_budget(rule)):
            for value in _raw_starts(rule, start, tz):
                if value > end:
                    return found, False
                found.append(value)
                if len(found) > MAX_OCCURRENCES:
                    return found, False
    except StepBudgetExceeded:
        return found, False
    return found, True


def _raw_starts(rule: str, start: datetime, tz: ZoneInfo) -> Iterator[datetime]:
    dtstart = start.astimezone(tz)
    for value in rrulestr(rule, dtstart=dtstart):
        # Combine wall-clock time and zone again: the offset follows the date (DST).
        yield datetime.combine(value.date(), value.timetz().replace(tzinfo=None), tz).astimezone(UTC)


def series_starts(*, rule: str, start: datetime, tz_name: str) -> list[datetime]:
    """Every start of the series in UTC, first one included, in order (at most MAX_OCCURRENCES,
    none beyond `HORIZON`).

    A one-off (empty rule) has the single start `start`. `rule_normalise` made sure
    that `start` is the rule's first occurrence, so RFC 5545 readers and dateutil agree.
    """
    return list(_series_starts(rule, start.astimezone(UTC), tz_name))


# A full series is 500 datetimes (~30 kB): 512 of them bound the cache near 15 MB.
@functools.lru_cache(maxsize=512)
def _series_starts(rule: str, start: datetime, tz_name: str) -> tuple[datetime, ...]:
    # Every read of a series (pages, feeds, reminders) comes here: expanded once per process.
    if not rule:
        return (start,)
    starts, _ended = _expand(rule, start, zone(tz_name))
    # A series stored before the horizon existed is read up to the horizon, never refused.
    return tuple(starts[:MAX_OCCURRENCES])


def rule_until_before(rule: str, cut: datetime) -> str:
    """`rule` ending strictly before `cut` (UNTIL one second earlier, COUNT dropped)."""
    parts = [p for p in rule.split(";") if p and not p.startswith(("COUNT=", "UNTIL="))]
    until = (cut.astimezone(UTC) - timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    parts.insert(1, f"UNTIL={until}")
    return ";".join(parts)


def rule_with_count(rule: str, count: int) -> str:
    """`rule` ending after `count` occurrences."""
    parts = [p for p in rule.split(";") if p and not p.startswith(("COUNT=", "UNTIL="))]
    parts.insert(1, f"COUNT={count}")
    return ";".join(parts)


def occurrence_key(original_start: datetime) -> str:
    """The stable identifier of an occurrence: its original start in UTC, RFC 5545 style."""
    return original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_occurrence_key(key: str) -> datetime:
    """The original start named by `occurrence_key`, or an `invalid` error."""
    try:
        return datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise HirfaError(
            ErrorCode.INVALID, _("Not an occurrence identifier: %(key)s") % {"key": key}
        ) from None

