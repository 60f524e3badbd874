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


LIP_SYNC_SCRIPT = """
let playout = {};
const held = { "1": [0, 0], "4": [0, 0] };  // each voice's jitterBufferDelay (s) and samples emitted
class FakePeerConnection {
  constructor() { this.iceConnectionState = "connected"; this.receivers = {}; }
  async getStats() {
    return new Map(Object.entries(playout).map(([mid, at]) => [`IT${mid}`, {
      type: "inbound-rtp", mid, kind: held[mid] ? "audio" : "video", estimatedPlayoutTimestamp: at,
      jitterBufferDelay: held[mid]?.[0], jitterBufferEmittedCount: held[mid]?.[1] }]));
  }
  getTransceivers() {
    return ["0", "1", "2", "3", "4"].map((mid) => ({ mid, receiver: (this.receivers[mid] ??= { jitterBufferTarget: null }) }));
  }
  close() {}
}
globalThis.RTCPeerConnection = FakePeerConnection;
const { SfuPeer } = await import(%(url)s);
const peer = new SfuPeer({ iceServers: [], send() {}, tracks: () => ({}), quality: () => "standard",
                           onChange() {}, onTrouble() {} });
peer.mlines = new Map([
  ["0", { mid: "0", kind: "audio", direction: "publish", user: 3, source: "mic" }],
  ["1", { mid: "1", kind: "audio", direction: "subscribe", user: 7, source: "mic" }],
  ["2", { mid: "2", kind: "video", direction: "subscribe", user: 9, source: "camera" }],
  ["3", { mid: "3", kind: "video", direction: "subscribe", user: 7, source: "camera" }],
  ["4", { mid: "4", kind: "audio", direction: "subscribe", user: 9, source: "mic" }],
]);
const seen = [];
// A second of audio (48,000 samples) that each spent `ms` in its jitter buffer.
const second = (ms) => { for (const mid of ["1", "4"]) { held[mid][0] += (ms / 1000) * 48000; held[mid][1] += 48000; } };
const look = async (what, ms, at) => {
  second(ms);
  playout = at;
  await peer.lipSync();
  seen.push([what, peer.pc.receivers["1"].jitterBufferTarget, peer.pc.receivers["4"].jitterBufferTarget]);
};
const T = 3_000_000_000_000;
await look("the first look: no buffer figure yet", 180, { "1": T + 120, "3": T, "2": T, "4": T + 10 });
await look("7's picture 120 ms behind, 180 ms buffered", 180, { "1": T + 120, "3": T, "2": T, "4": T + 10 });
await look("his buffer on its way up", 250, { "1": T + 40, "3": T, "2": T, "4": T + 10 });
await look("in step", 300, { "1": T + 5, "3": T, "2": T, "4": T });
await look("his voice 80 ms behind", 290, { "1": T - 80, "3": T, "2": T, "4": T });
await look("a picture far behind", 200, { "1": T + 2000, "3": T, "2": T, "4": T });
peer.mlines.set("3", { mid: "3", kind: "video", direction: "subscribe" });
await look("his camera's slot gone to nobody", 200, { "1": T + 2000, "2": T, "4": T });
peer.close();
process.stdout.write(JSON.stringify(seen));
"""


def test_a_voice_is_held_back_as_long_as_its_own_picture_plays_behind_it():
    node = shutil.which("node")
    if not node:
        skip_or_fail("no node on PATH (apt-get install nodejs)")
    script = LIP_SYNC_SCRIPT % {"url": json.dumps(PEER_JS.as_uri())}
    out = subprocess.run([node, "--input-type=module", "-e", script], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        ["the first look: no buffer figure yet", None, None],
        # What his buffer held, plus how far behind his picture plays, plus 15 ms (a voice a little
        # after the lips); 9's voice is paired with 9's picture (10 ms ahead: left alone), not with
        # the one in the m-line beside it.
        ["7's picture 120 ms behind, 180 ms buffered", 315, None],
        ["his buffer on its way up", 305, None],  # a set point: no second step of 40 on top
        ["in step", 305, None],
        ["his voice 80 ms behind", 225, None],
        ["a picture far behind", 500, None],  # bounded
        ["his camera's slot gone to nobody", 0, None],  # nothing to follow: let go
    ]
