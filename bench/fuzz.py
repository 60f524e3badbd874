"""The long run of the protocol fuzzer (tests/protocol_fuzz.py): N seeded inputs through
the real hub consumer on PostgreSQL and Redis, as the suite's tests/hub/test_fuzz.py
does with a few thousand.

    .venv/bin/python bench/fuzz.py --inputs 100000 --json

prints ``inputs``, ``crashes``, ``leaks`` and ``undocumented_answers`` (all but the
first must be 0; the exit status is 1 otherwise), with the seed, the time taken and
how often each answer came. It runs the suite's test through pytest, so the database
is pytest-django's throw-away one, named after DATABASE_URL (set DATABASE_URL and
REDIS_URL as for `make test`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument(
        "--batch", type=int, default=8,
        help="sequences one socket serves before it is closed and checked for leaks (default 8)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--report", help="also keep the figures in this file (written after every round)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(args.report) if args.report else Path(tmp) / "fuzz.json"
        env = dict(
            os.environ,
            HIRFA_FUZZ_INPUTS=str(args.inputs),
            HIRFA_FUZZ_SEED=str(args.seed),
            HIRFA_FUZZ_BATCH=str(args.batch),
            HIRFA_FUZZ_REPORT=str(report),
            HIRFA_FUZZ_TIMEOUT="0",
            HIRFA_FAST_PASSWORD_HASHER="1",
        )
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/hub/test_fuzz.py::test_no_input_crashes_the_socket_or_leaks_its_state"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        if not report.exists():
            sys.stderr.write(run.stdout[-5000:] + run.stderr[-5000:])
            return 2
        figures = json.loads(report.read_text(encoding="utf-8"))
    summary = {k: figures[k] for k in ("inputs", "crashes", "leaks", "undocumented_answers", "sequences", "sockets", "seconds", "seed", "complete")}
    if args.json:
        print(json.dumps({**summary, "answers": figures["answers"], "problems": figures["problems"]}, ensure_ascii=False, indent=1))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
        for problem in figures["problems"]:
            print(f"  {problem}")
    bad = figures["crashes"] or figures["leaks"] or figures["undocumented_answers"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
