"""How long the hub takes to refuse (or accept) a recurrence rule, hostile rules included.

    .venv/bin/python bench/recurrence.py              # the bounded expansion, each rule timed
    .venv/bin/python bench/recurrence.py --json
    .venv/bin/python bench/recurrence.py --baseline   # also dateutil unbounded (main before
                                                      # the fix), side by side: ~10-20 s

Each rule goes through `gatherings.recurrence.rule_normalise`, as the preview and
scheduling do; the median and the worst of `--repeat` runs are printed in milliseconds
(target: every refusal under 50 ms). `--baseline` times what the expansion did before
the horizon and the step budget: dateutil's own iteration of the same rule, unbounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

RULES = {
    # name: (rule, first occurrence in UTC)
    "sparse_daily_until_9999": ("FREQ=DAILY;UNTIL=99991231;BYMONTH=2;BYMONTHDAY=30", datetime(2027, 1, 4, 17, tzinfo=UTC)),
    "sparse_daily_until_2028": ("FREQ=DAILY;UNTIL=20281231;BYMONTH=2;BYMONTHDAY=30", datetime(2027, 1, 4, 17, tzinfo=UTC)),
    "sparse_weekly_count": ("FREQ=WEEKLY;COUNT=10;BYMONTH=4;BYMONTHDAY=31", datetime(2027, 1, 4, 17, tzinfo=UTC)),
    "leap_day_count_500": ("FREQ=YEARLY;COUNT=500", datetime(2028, 2, 29, 17, tzinfo=UTC)),
    "daily_count_500": ("FREQ=DAILY;COUNT=500", datetime(2027, 1, 4, 17, tzinfo=UTC)),
    "weekly_two_years": ("FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20281231", datetime(2027, 1, 4, 17, tzinfo=UTC)),
}


def time_bounded(rule: str, start: datetime, repeat: int) -> dict[str, object]:
    from gatherings import recurrence
    from hub.errors import HirfaError

    times = []
    outcome = ""
    for _ in range(repeat):
        began = time.perf_counter()
        try:
            recurrence.rule_normalise(rule, start=start, tz_name="Africa/Algiers")
            outcome = "accepted"
        except HirfaError as exc:
            outcome = f"refused: {exc.message}"
        times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2), "outcome": outcome}


def time_unbounded(rule: str, start: datetime) -> float:
    """dateutil's own iteration of `rule`, as the hub ran it before the bounds (ms)."""
    import re
    from zoneinfo import ZoneInfo

    from dateutil.rrule import rrulestr

    rule = re.sub(r"UNTIL=(\d{8})\b", r"UNTIL=\1T235959Z", rule)  # RFC 5545: UTC with a zoned start
    began = time.perf_counter()
    for _ in zip(range(501), rrulestr(rule, dtstart=start.astimezone(ZoneInfo("Africa/Algiers")))):
        pass
    return round((time.perf_counter() - began) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--baseline", action="store_true", help="also time dateutil unbounded")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    from django.utils import translation

    from gatherings import recurrence

    translation.activate("en")

    recurrence.zone("Africa/Algiers")  # the zone list is read once per process, not per rule
    results: dict[str, dict[str, object]] = {}
    for name, (rule, start) in RULES.items():
        results[name] = {"rule": rule, **time_bounded(rule, start, args.repeat)}
        if args.baseline:
            results[name]["unbounded_ms"] = time_unbounded(rule, start)
    worst = max(float(r["max_ms"]) for r in results.values())  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"rules": results, "worst_ms": worst}, indent=2))
    else:
        for name, r in results.items():
            base = f"  unbounded {r['unbounded_ms']:>9} ms" if "unbounded_ms" in r else ""
            print(f"{name:26} median {r['median_ms']:>7} ms  max {r['max_ms']:>7} ms{base}  {r['outcome']}")
        print(f"worst: {worst} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
