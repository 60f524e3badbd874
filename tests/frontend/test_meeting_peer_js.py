"""frontend/static/hirfa/meeting-peer.js run by Node: a silent connection counts as stalled.

A phone whose link went dark (a network change) hears nothing, while Chromium's ICE still
says "connected" for 5-7 s; the page must check its socket (onStall) and rejoin with
resume (``stalled``) long before that. Times are passed in: no timer is waited for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import skip_or_fail

PEER_JS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "hirfa" / "meeting-peer.js"

SCRIPT = """
let received = 0;
class FakePeerConnection {
  constructor() { this.iceConnectionState = "connected"; }
  async getStats() {
    return new Map([["T01", { type: "transport", bytesReceived: received, packetsReceived: received }]]);
  }
  close() {}
}
globalThis.RTCPeerConnection = FakePeerConnection;
const { SfuPeer } = await import(%(url)s);
const stalls = [];
const peer = new SfuPeer({ iceServers: [], send() {}, tracks: () => ({}), quality: () => "standard",
                           onChange() {}, onTrouble() {}, onStall: () => stalls.push(Date.now()) });
const seen = [];
const look = async (at, what) => { await peer.listen(at); seen.push([what, peer.stalled, stalls.length]); };
received = 100; await look(0, "first");
received = 200; await look(500, "more");
await look(1000, "quiet 0.5 s");
await look(1600, "quiet 1.1 s");
await look(2100, "quiet 1.6 s");
received = 300; await look(2600, "back");
peer.pc.iceConnectionState = "disconnected";
seen.push(["ice disconnected", peer.stalled, stalls.length]);
peer.close();
process.stdout.write(JSON.stringify(seen));
"""


def run_peer() -> list[list[object]]:
    node = shutil.which("node")
    if not node:
        skip_or_fail("no node on PATH (apt-get install nodejs)")
    script = SCRIPT % {"url": json.dumps(PEER_JS.as_uri())}
    out = subprocess.run(
        [node, "--input-type=module", "-e", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_connection_that_hears_nothing_for_a_second_is_stalled_once_until_it_hears_again():
    assert run_peer() == [
        ["first", False, 0],
        ["more", False, 0],
        ["quiet 0.5 s", False, 0],
        ["quiet 1.1 s", True, 1],  # ICE still says connected: the page checks its socket now
        ["quiet 1.6 s", True, 1],  # once
        ["back", False, 1],
        ["ice disconnected", True, 1],
    ]


def test_a_camera_turned_off_keeps_one_slow_low_layer():
    node = shutil.which("node")
    if not node:
        skip_or_fail("no node on PATH (apt-get install nodejs)")
    script = (
        f"const {{ cameraOff }} = await import({json.dumps(PEER_JS.as_uri())});"
        "process.stdout.write(JSON.stringify(cameraOff([{rid: 'l', active: true, maxBitrate: 150000, scaleResolutionDownBy: 2},"
        " {rid: 'm', active: true, maxBitrate: 500000}, {rid: 'h', active: false}])));"
    )
    out = subprocess.run([node, "--input-type=module", "-e", script], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"rid": "l", "active": True, "maxBitrate": 30_000, "maxFramerate": 1, "scaleResolutionDownBy": 2},
        {"rid": "m", "active": False, "maxBitrate": 500_000},
        {"rid": "h", "active": False},
    ]
