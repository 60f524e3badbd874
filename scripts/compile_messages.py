#!/usr/bin/env python3
"""Compile every translation catalogue (hub/locale/*/LC_MESSAGES/*.po) into its
.mo file with polib, so no GNU gettext is needed (`make messages`).

Before writing, each catalogue is checked like `msgfmt --check-format`: a
translation must use the same %(name)s placeholders as its source string.
Exit status 1 (and nothing written for that catalogue) when a check fails.

    python scripts/compile_messages.py           # (re)build the .mo files
    python scripts/compile_messages.py --check   # only check, and that each .mo is up to date
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "hub" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Every .po file under `locale_dir`, in a stable order."""
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def problems(po: polib.POFile) -> list[str]:
    """Placeholder mismatches between each source string and its translations."""
    found = []
    for entry in po:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        expected = set(PLACEHOLDER.findall(entry.msgid))
        if entry.msgid_plural:
            expected |= set(PLACEHOLDER.findall(entry.msgid_plural))
            translations = [t for t in entry.msgstr_plural.values() if t]
        else:
            translations = [entry.msgstr] if entry.msgstr else []
        for text in translations:
            extra = set(PLACEHOLDER.findall(text)) - expected
            if extra:
                found.append(f"{entry.msgid!r}: unknown placeholder(s) {sorted(extra)} in {text!r}")
            if not entry.msgid_plural and set(PLACEHOLDER.findall(text)) != expected:
                found.append(f"{entry.msgid!r}: placeholders differ in {text!r}")
    return found


def compile_one(po_path: Path, mo_path: Path | None = None) -> Path:
    """Write the .mo beside `po_path` (or at `mo_path`), atomically; raises ValueError on a
    bad catalogue (and then writes nothing)."""
    po = polib.pofile(str(po_path))
    bad = problems(po)
    if bad:
        raise ValueError(f"{po_path}:\n  " + "\n  ".join(bad))
    target = mo_path or po_path.with_suffix(".mo")
    # Written beside the target and renamed, so a running server never reads half a file.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".", suffix=".mo", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        po.save_as_mofile(str(partial))
        partial.chmod(0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check only; fail if a .mo is stale")
    parser.add_argument("--locale-dir", type=Path, default=LOCALE_DIR)
    parser.add_argument("--quiet", action="store_true", help="say nothing unless something fails")
    args = parser.parse_args(argv)
    paths = catalogues(args.locale_dir)
    if not paths:
        print(f"no catalogue under {args.locale_dir}", file=sys.stderr)
        return 1
    status = 0
    for po_path in paths:
        mo_path = po_path.with_suffix(".mo")
        try:
            if args.check:
                with tempfile.TemporaryDirectory() as tmp:
                    fresh = compile_one(po_path, Path(tmp) / "fresh.mo")
                    if not mo_path.exists() or fresh.read_bytes() != mo_path.read_bytes():
                        print(f"{mo_path} is out of date: run make messages", file=sys.stderr)
                        status = 1
            elif mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                continue
            else:
                compile_one(po_path)
                if not args.quiet:
                    print(f"compiled {mo_path.relative_to(ROOT) if mo_path.is_relative_to(ROOT) else mo_path}")
        except (ValueError, OSError) as exc:
            print(exc, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
