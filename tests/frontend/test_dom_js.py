"""frontend/static/hirfa/dom.js run by Node: names put into sentences are isolated."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import skip_or_fail

DOM_JS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "hirfa" / "dom.js"


def run_translator(template: str, values: dict[str, object]) -> str:
    node = shutil.which("node")
    if not node:
        skip_or_fail("no node on PATH (apt-get install nodejs)")
    script = (
        "globalThis.document = { documentElement: { lang: 'ar' } };"
        f"const m = await import({json.dumps(DOM_JS.as_uri())});"
        f"process.stdout.write(JSON.stringify(m.translator({{k: {json.dumps(template)}}})('k', {json.dumps(values)})));"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_name_is_isolated_and_stripped_of_bidi_controls():
    said = run_translator("%(name)s was banned from the room.", {"name": "Amina\u202e\u2066evil"})
    assert said == "\u2068Aminaevil\u2069 was banned from the room."


def test_numbers_are_left_as_they_are():
    assert run_translator("Online (%(count)s)", {"count": 3}) == "Online (3)"
