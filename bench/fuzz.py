"""The long run of the protocol fuzzer (tests/protocol_fuzz.py): N seeded inputs through
the real hub consumer on PostgreSQL and Redis, as the suite's tests/hub/test_fuzz.py
does with a few thousand.

    .venv/bin/python bench/fuzz.py --inputs 100000 --json

prints ``inputs``, ``crashes``, ``leaks`` and ``undocumented_answers`` (all but the
first must be 0; the exit status is 1 otherwise), with the seed, the time taken and
how often each answer came. It runs the suite's test through pytest, so the database
is pytest-django's throw-away one, named after DATABASE_URL (set DATABASE_URL and
REDIS_URL as for `make test`).

``--shards N`` runs N such processes at once, each with its own seed, its own database
(DATABASE_URL's name with ``_fuzz<k>``) and its own Redis database (REDIS_URL's index
+ k), so that the same member ids in two shards never meet; the figures are summed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]


def shard_env(k: int) -> dict[str, str]:
    """Shard k's database and Redis database (shard 0 keeps the ones given)."""
    if k == 0:
        return {}
    env = {}
    database = os.environ.get("DATABASE_URL", "")
    if database:
        parts = urlsplit(database)
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"{parts.path}_fuzz{k}"))
    redis = os.environ.get("REDIS_URL", "")
    if redis:
        parts = urlsplit(redis)
        index = int(parts.path.strip("/") or 0)
        env["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{(index + k) % 16}"))
    return env


def combined(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' figures as one run's."""
    total: dict[str, Any] = {
        key: sum(r[key] for r in reports)
        for key in ("inputs", "crashes", "leaks", "undocumented_answers", "sequences", "sockets")
    }
    total["seconds"] = max(r["seconds"] for r in reports)
    total["seed"] = reports[0]["seed"] if len(reports) == 1 else [r["seed"] for r in reports]
    total["complete"] = all(r["complete"] for r in reports)
    answers: dict[str, int] = {}
    for r in reports:
        for key, n in r["answers"].items():
            answers[key] = answers.get(key, 0) + n
    total["answers"] = dict(sorted(answers.items()))
    total["problems"] = [p for r in reports for p in r["problems"]][:50]
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument(
        "--batch", type=int, default=8,
        help="sequences one socket serves before it is closed and checked for leaks (default 8)",
    )
    parser.add_argument("--shards", type=int, default=1, help="processes run at once, each its own seed and databases")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--report", help="also keep the figures in this file (written after every round)")
    args = parser.parse_args()
    shards = max(1, args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.report) if args.report else Path(tmp) / "fuzz.json"
        reports = [base if shards == 1 else base.with_name(f"{base.name}.{k}") for k in range(shards)]
        runs = []
        for k, report in enumerate(reports):
            env = dict(
                os.environ,
                **shard_env(k),
                HIRFA_FUZZ_INPUTS=str(args.inputs // shards + (1 if k < args.inputs % shards else 0)),
                HIRFA_FUZZ_SEED=str(args.seed + 1_000_003 * k),
                HIRFA_FUZZ_BATCH=str(args.batch),
                HIRFA_FUZZ_REPORT=str(report),
                HIRFA_FUZZ_TIMEOUT="0",
                HIRFA_FAST_PASSWORD_HASHER="1",
            )
            # Each shard's output goes to a file: with pipes read one after the other, a shard
            # whose pipe filled up while the first one ran stopped there and wrote nothing.
            log = (Path(tmp) / f"shard-{k}.log").open("w", encoding="utf-8")
            runs.append(subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/hub/test_fuzz.py::test_no_input_crashes_the_socket_or_leaks_its_state"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            ))
            log.close()
        for k, run in enumerate(runs):
            if run.wait() != 0:  # a shard that stopped early (its figures say how far it got)
                output = (Path(tmp) / f"shard-{k}.log").read_text(encoding="utf-8", errors="replace")
                sys.stderr.write(f"shard {k} exited with {run.returncode}:\n{output[-5000:]}\n")
        if not all(report.exists() for report in reports):
            return 2
        figures = combined([json.loads(r.read_text(encoding="utf-8")) for r in reports])
    if shards > 1 and args.report:
        Path(args.report).write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
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
