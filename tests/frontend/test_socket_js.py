"""frontend/static/hirfa/socket.js run by Node with a fake WebSocket: how the page's socket
comes back after the server closes it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import skip_or_fail

SOCKET_JS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "hirfa" / "socket.js"

# A page without a DOM: the socket's timers are recorded instead of run.
PAGE = """
globalThis.location = { protocol: "http:", host: "127.0.0.1:8000", pathname: "/rooms/1/" };
globalThis.addEventListener = () => {};
globalThis.document = { querySelector: () => null };
globalThis.sessionStorage = { getItem: () => null, setItem: () => {} };
globalThis.timers = [];
globalThis.setTimeout = (fn, ms) => { timers.push(ms); return timers.length; };
globalThis.clearTimeout = () => {};
class FakeSocket { static OPEN = 1; constructor(url) { this.url = url; this.readyState = 0; FakeSocket.last = this; } send() {} close() {} }
globalThis.WebSocket = FakeSocket;
"""


def run_page(script: str) -> object:
    node = shutil.which("node")
    if not node:
        skip_or_fail("no node on PATH (apt-get install nodejs)")
    program = PAGE + f"const m = await import({json.dumps(SOCKET_JS.as_uri())});\n" + script
    out = subprocess.run(
        [node, "--input-type=module", "-e", program], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def closes(code: int, reason: str, times: int = 3) -> list[dict[str, object]]:
    """The status the page shows after each of `times` closes with `code` and `reason`."""
    return run_page(  # type: ignore[return-value]
        f"""
const hub = new m.Hub();
const seen = [];
hub.on("status", (s) => {{ if (s.state !== "connecting") seen.push(s); }});
hub.start();
for (let i = 0; i < {times}; i++) {{
  const ws = globalThis.WebSocket.last;
  ws.onclose({{ code: {code}, reason: {json.dumps(reason)} }});
  hub.timer = null;  // as when the timer has fired
  hub.connect();
}}
process.stdout.write(JSON.stringify(seen));
"""
    )


def test_a_busy_server_is_honoured_with_its_retry_after_and_a_little_jitter():
    seen = closes(4013, '{"retry_after": 6.5}')
    assert [s["state"] for s in seen] == ["busy"] * 3
    # Not the growing backoff of a failed link (0.25-0.5 s, then 0.5-1 s, ...): the server's
    # turn, plus at most a quarter of it.
    for s in seen:
        assert 6500 <= s["retryIn"] <= 6500 * 1.25


def test_an_unreadable_busy_reason_counts_as_a_second():
    seen = closes(4013, "not json", times=1)
    assert seen[0]["state"] == "busy" and 1000 <= seen[0]["retryIn"] <= 1250


def test_other_closes_keep_the_growing_backoff():
    seen = closes(1006, "", times=3)
    assert [s["state"] for s in seen] == ["offline"] * 3
    assert seen[0]["retryIn"] <= 500 and seen[2]["retryIn"] >= 1000
