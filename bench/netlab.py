"""Benchmark: meetings seen by a real Chromium on impaired links, Hirfa's SFU beside Janus.

Every run builds a network lab (tests/netlab.py): the server in a namespace
of its own ("hub"), each participant in another, each linked to the hub by a
user-space impaired link. Per server and profile, one meeting:

* ``good``, ``lossy``, ``handover``: six participants; five aiortc publishers
  (360p VP8 at about 500 kbit/s and Opus: the first one speaks, the others' microphones
  send silence) on ``good`` links, and one
  Chromium subscriber on the profile's link (it sends its microphone, turns
  its camera off once in, and receives everyone);
* ``3g``: two participants; one publisher whose camera is capped at 250 kbit/s,
  and the Chromium subscriber on the 3G link.

Publishers are aiortc peers (two shared cores do not fit five Chromium
encoders) that receive no video (Hirfa: ``receive_video: false``; Janus:
publish-only handles): their video is a VP8 loop encoded once by the driver (so a peer
only packetizes); a keyframe is sent only when asked for, and counted. The
first publisher's clip has a flash (a white frame) and a 1 kHz beep at the same
instant every two seconds; the subscriber's page times when the flash is
decoded and when the beep comes out of the audio path: ``av_offset_ms`` is the
median of (beep time − flash time), positive when the audio is late.

The subscriber's figures come from Chromium's ``getStats`` over a window that
opens 5 s after every publisher's video decodes and lasts ``--seconds``:
``audio_concealed_pct`` (concealedSamples / totalSamplesReceived),
``video_freezes``, ``video_freeze_total_ms``, ``video_freeze_max_ms``
(freezeCount / totalFreezesDuration, summed over the video streams),
``video_fps`` (frames decoded per second per stream), jitter-buffer delays,
``available_incoming_bitrate``, keyframes decoded and PLIs/NACKs sent, and
from the publishers ``keyframes_per_publisher_per_min`` (keyframes they were
asked for within the measurement window; ``..._whole_run``: every keyframe of
the run, join included, over the window's minutes, as the bench counted before
2026-11-30 16:00). On ``handover`` the subscriber's link goes dark for 3 s a third of
the way in and comes back on a new address; ``recovered_after_handover_s`` is
the time from its return until every video stream decodes again (null if not
within 30 s).

Each row also says what every link carried (``link``: the whole run; ``link_window``: the
window only), per direction: packets passed, lost by the profile and dropped by its queue, and
``kinds``, per kind of packet (``rtp<payload type>``, ``rtcp``, ``stun``, ``dtls``, ``tcp``)
[packets, bytes, dropped]: what fills a narrow link.

Janus: the Debian package's videoroom plugin, in the hub namespace; the same
publishers join it as publishers, and the same Chromium subscribes to all of
them through a page that speaks Janus's HTTP API.

Diagnostics: ``NETLAB_KEEP=1`` (not empty, ``0`` or ``no``) keeps the run's folder (server and publisher
logs), ``NETLAB_DEBUG=1`` adds the subscriber's socket frames to a failed
run's object (and, per flash/beep pair, its offset and time, ``av_offsets_ms`` and
``av_offsets_at``, and the probed pair's delays second by second, ``av_series``),
``NETLAB_PUBLISHER_LOG=1`` logs aiortc/aioice in the publishers, ``NETLAB_CHROMIUM_LOG=1``
writes Chromium's WebRTC video log (its A/V synchroniser's lines) to the folder's
``chromium.log``, ``NETLAB_CHROMIUM_ARGS`` adds Chromium flags.

Usage (root, Chromium and Janus installed):
``python bench/netlab.py [--json] [--seconds 30] [--profiles good,lossy,3g,handover]
[--servers hirfa,janus]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import pickle
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import itertools

from tests.netlab import HUB_ADDRESS, PROFILES, Lab, lab_unavailable

CHROMIUM = os.environ.get("HIRFA_CHROMIUM", "/usr/bin/chromium")
HTTP_PORT = 8000
JANUS_PORT = 8088
WIDTH, HEIGHT, FPS = 640, 360, 30
LOOP_SECONDS = 2
FLASH_FRAME = 30  # of each 2 s loop; the beep starts at the same instant
BEEP_SECONDS = 0.1
#: What a lab publisher's microphone sends (encode_audio).
SOUNDS = ("tone", "beep", "silence")
WARMUP_SECONDS = 5.0
RECOVERY_LIMIT_SECONDS = 30.0
MEETINGS = {  # profile -> (publishers, camera bit/s)
    "good": (5, 500_000),
    "lossy": (5, 500_000),
    "handover": (5, 500_000),
    "3g": (1, 250_000),
}


# ---------------------------------------------------------------- the clip


def encode_clip(bitrate: int, width: int = WIDTH, height: int = HEIGHT) -> dict[str, Any]:
    """Two seconds of VP8 (360p unless said) at ``bitrate``, flash on FLASH_FRAME; a keyframe to start from.

    The loop is taken from a second pass of the same pictures, so that it holds
    no keyframe: wrapping around is a delta frame (the decoder drifts a little,
    which nobody looks at), and keyframes are sent only when asked for.
    """
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.gop_size = 100_000
    # Error-resilient: every frame is parsed with the default probabilities, so a delta frame
    # decodes after any other frame (the loop's wrap, a keyframe sent on request).
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "qmax": "63",
                     "error-resilient": "1",
                     "undershoot-pct": "95", "overshoot-pct": "5"}
    frames_per_loop = FPS * LOOP_SECONDS
    patch = 64
    base = bytes(int(120 + 90 * math.sin(x / 37)) for x in range(width * 2))
    pictures = []
    for step in range(frames_per_loop):
        if step == FLASH_FRAME:
            pictures.append(b"\xeb" * (width * height))
            continue
        rows = []
        for y in range(height):
            shift = (4 * step + y) % width
            row = base[shift:shift + width]
            if 120 <= y < 120 + patch:
                x = (step * 9) % (width - patch)
                row = row[:x] + bytes((step * 37 + i * 11) % 200 + 16 for i in range(patch)) + row[x + patch:]
            rows.append(row)
        pictures.append(b"".join(rows))
    encoded: list[bytes] = []
    for index in range(3 * frames_per_loop):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma, *chroma = frame.planes
        picture = pictures[index % frames_per_loop]
        if luma.line_size != width:
            pad = b"\x10" * (luma.line_size - width)
            picture = b"".join(picture[y * width:(y + 1) * width] + pad for y in range(height))
        luma.update(picture)
        for plane in chroma:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        encoded.extend(bytes(p) for p in codec.encode(frame))
    encoded.extend(bytes(p) for p in codec.encode(None))
    return {"keyframe": encoded[0], "loop": encoded[2 * frames_per_loop:3 * frames_per_loop]}


def encode_audio(sound: str, bitrate: int = 32_000) -> list[bytes]:
    """Two seconds of Opus (20 ms packets, as browsers send), encoded once: peers only packetize.
    ``sound`` is one of SOUNDS: ``"tone"``, a quiet 350 Hz tone (a voice the SFU hears speaking);
    ``"beep"``, the same tone with a loud 1 kHz beep of BEEP_SECONDS from the clip's flash instant
    (the speaker whose ``av_offset_ms`` is measured); ``"silence"``, a listener's microphone (a few
    bytes a packet), so that in the network lab the SFU hears one person speaking — the beeping
    one, whose voice is then in the subscriber's audio slots (the loudest voices) with his camera."""
    import av

    if sound not in SOUNDS:
        raise ValueError(f"sound {sound!r} is not one of {SOUNDS}")
    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate = bitrate
    codec.format, codec.layout, codec.sample_rate = "s16", "stereo", 48_000
    # Silence in "audio" mode: 3 bytes a packet ("voip" spends 39 on digital silence, one byte
    # under what the SFU's speaker detection calls speech without level extensions).
    codec.options = {"application": "audio" if sound == "silence" else "voip"}
    codec.time_base = Fraction(1, 48_000)
    samples, per_loop = 960, 50 * LOOP_SECONDS
    quiet, loud = _tone(1500, 350, samples, 48_000, stereo=True), _tone(14000, 1000, samples, 48_000, stereo=True)
    if sound == "silence":
        quiet = bytes(len(quiet))
    packets: list[bytes] = []
    for index in range(3 * per_loop):
        start = (index % per_loop) * samples / 48_000
        position = (start - FLASH_FRAME / FPS) % LOOP_SECONDS
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(loud if sound == "beep" and position < BEEP_SECONDS - 1e-9 else quiet)
        frame.sample_rate = 48_000
        frame.pts = index * samples
        frame.time_base = Fraction(1, 48_000)
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets[-per_loop:]


# ---------------------------------------------------------------- publishers (aiortc, in their namespaces)


def _tracks(clip: dict[str, Any], flash: bool) -> tuple[Any, Any, dict[str, int]]:
    """The video and audio tracks of a publisher, on one clock; counts of keyframes asked for."""
    import av
    from aiortc.mediastreams import MediaStreamTrack

    counts = {"keyframes": 0}
    clock: dict[str, float] = {}
    loop: list[bytes] = clip["loop"]

    async def pace(count: int, period: float) -> int:
        """Wait for slot ``count`` of the shared clock (started by the first track to send); a track
        that starts late or falls behind skips ahead, as a capture device drops what it missed."""
        epoch = clock.setdefault("epoch", time.time())
        now = time.time()
        if now - (epoch + count * period) > 0.2:
            count = int((now - epoch) / period) + 1
        await asyncio.sleep(max(0.0, epoch + count * period - time.time()))
        return count

    class LoopVideo(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.want_keyframe = True
            #: When each keyframe was asked for (wall clock): the bench counts those of its window.
            self.keyframes_at: list[float] = []

        def keyframe(self) -> None:
            counts["keyframes"] += 1
            self.keyframes_at.append(time.time())
            self.want_keyframe = True

        async def recv(self) -> Any:
            self.count = await pace(self.count + 1, 1 / FPS)
            step = self.count % len(loop)
            data = clip["keyframe"] if self.want_keyframe else loop[step]
            self.want_keyframe = False
            packet = av.Packet(data)
            packet.pts = self.count
            packet.time_base = Fraction(1, FPS)
            return packet

    class LoopAudio(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.loop: list[bytes] = clip["beep" if flash else "tone"]

        async def recv(self) -> Any:
            self.count = await pace(self.count, 0.02)
            packet = av.Packet(self.loop[self.count % len(self.loop)])
            packet.pts = self.count * 960
            packet.time_base = Fraction(1, 48_000)
            self.count += 1
            return packet

    return LoopVideo(), LoopAudio(), counts


def _tone(amplitude: int, hertz: int, samples: int, rate: int, stereo: bool = False) -> bytes:
    values = [int(amplitude * math.sin(2 * math.pi * hertz * i / rate)) for i in range(samples)]
    if stereo:
        values = [v for v in values for _ in (0, 1)]
    return struct.pack(f"<{len(values)}h", *values)


def _light_receiver(counter: dict[str, int]) -> Any:
    async def handle(packet: Any, arrival_time_ms: int) -> None:  # received, never decoded
        counter["packets"] = counter.get("packets", 0) + 1

    return handle


async def publish_hirfa(args: Any, clip: dict[str, Any], counts_out: dict[str, Any]) -> None:
    import websockets
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy
    from websockets.typing import Origin

    video, audio, counts = _tracks(clip, args.flash)
    counts_out.update(counts=counts, keyframes_at=video.keyframes_at)
    received: dict[str, int] = {}
    base = f"http://{HUB_ADDRESS}:{HTTP_PORT}"
    ws = await websockets.connect(f"ws://{HUB_ADDRESS}:{HTTP_PORT}/ws/", additional_headers={"Cookie": args.cookie},
                                  origin=Origin(base), open_timeout=30, max_size=2**22)
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    tapped: set[str] = set()
    # Publishers receive no video (two cores do not fit five more decoders' worth of forwarding):
    # what is measured is what the Chromium subscriber gets.
    await ws.send(json.dumps({"type": "meeting_join", "meeting": args.meeting, "publish": ["mic", "camera"],
                              "receive_video": False, "ref": "join"}))
    async def report() -> None:
        while True:
            await asyncio.sleep(1)
            if pc.connectionState == "connected":
                mark_ready(args)
            if int(time.time()) % 5 == 0:
                print(f"{pc.connectionState}, received {received}, keyframes asked {counts}", flush=True)

    reporter = asyncio.ensure_future(report())  # noqa: F841 - runs until the process ends
    offers: list[float] = counts_out.setdefault("offers_at", [])
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") != "meeting_offer":
            continue
        offers.append(time.time())
        await pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
        transceivers = {t.mid: t for t in pc.getTransceivers()}
        for mline in frame["mlines"]:
            transceiver = transceivers.get(mline["mid"])
            if transceiver is None:  # a slot no longer in use
                continue
            if mline["direction"] == "publish":
                track = {"camera": video, "mic": audio}.get(mline.get("source"))
                if track is not None and transceiver.sender.track is None:
                    transceiver.sender.replaceTrack(track)
                    transceiver.direction = "sendonly"
                    if track is video:
                        transceiver.sender._send_keyframe = video.keyframe
            elif mline["mid"] not in tapped:
                tapped.add(mline["mid"])
                transceiver.receiver._handle_rtp_packet = _light_receiver(received)
        await pc.setLocalDescription(await pc.createAnswer())
        print(f"answer {frame['revision']}: {[(m['mid'], m['direction'], m.get('source')) for m in frame['mlines']]}",
              flush=True)
        await ws.send(json.dumps({"type": "meeting_answer", "meeting": frame["meeting"],
                                  "sdp": pc.localDescription.sdp, "revision": frame["revision"]}))


async def publish_janus(args: Any, clip: dict[str, Any], counts_out: dict[str, Any]) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from bench.sfu import JanusSession

    video, audio, counts = _tracks(clip, args.flash)
    counts_out.update(counts=counts, keyframes_at=video.keyframes_at)
    janus = await asyncio.to_thread(JanusSession, f"http://{HUB_ADDRESS}:{JANUS_PORT}/janus")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.addTransceiver(audio, direction="sendonly")
    transceiver = pc.addTransceiver(video, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")])
    transceiver.sender._send_keyframe = video.keyframe
    await pc.setLocalDescription(await pc.createOffer())
    await asyncio.to_thread(janus.request, {
        "request": "joinandconfigure", "ptype": "publisher", "room": args.meeting, "id": args.feed,
        "display": f"pub{args.feed}", "audio": True, "video": True,
    }, {"type": "offer", "sdp": pc.localDescription.sdp})
    jsep = await asyncio.to_thread(janus.wait_jsep)
    await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
    for _ in range(60):
        if pc.connectionState == "connected":
            mark_ready(args)
            break
        await asyncio.sleep(1)
    while True:
        await asyncio.sleep(15)
        await asyncio.to_thread(janus.keepalive)
        print(f"{pc.connectionState}, keyframes asked {counts}", flush=True)


def mark_ready(args: Any) -> None:
    if not os.path.exists(args.report + ".ready"):
        with open(args.report + ".ready", "w"):
            pass


def run_publisher(args: Any) -> None:
    """A publisher process (started in its namespace); writes its keyframe count to --report on SIGTERM."""
    import signal

    with open(args.clip, "rb") as handle:
        clip = pickle.load(handle)
    state: dict[str, Any] = {}

    def report(*_: Any) -> None:
        with open(args.report, "w") as out:
            json.dump({**state.get("counts", {}), "offers_at": state.get("offers_at", []),
                       "keyframes_at": state.get("keyframes_at", [])}, out)
        os._exit(0)

    signal.signal(signal.SIGTERM, report)
    # aioice gives up after six consent checks in a row unanswered within 0.5 s (no retransmission);
    # Chrome retransmits and waits 30 s. On a busy machine the server's answers can be that late, and
    # a publisher that quits would measure nothing: publishers wait as long as Chrome does.
    import aioice.ice

    aioice.ice.CONSENT_FAILURES = 30 // aioice.ice.CONSENT_INTERVAL * 4
    if os.environ.get("NETLAB_PUBLISHER_LOG"):
        import logging

        logging.basicConfig(level=logging.DEBUG)
    main = publish_janus if args.server == "janus" else publish_hirfa
    try:
        asyncio.run(main(args, clip, state))
    except Exception as error:
        print(f"publisher {args.feed}: {error!r}", file=sys.stderr)
        raise
    report()


# ---------------------------------------------------------------- the subscriber page

# Recorded before the page's scripts: every peer connection, and a probe that times
# flashes (decoded video frames that are nearly white) and beeps (1 kHz bursts in the
# audio path) of one remote stream.
INIT_SCRIPT = """
(() => {
  const Native = window.RTCPeerConnection;
  window.benchPeers = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.benchPeers.push(pc);
    // Timeline of the call's connection (printed with NETLAB_DEBUG=1).
    const note = () => console.log(`bench ice ${pc.iceConnectionState} pc ${pc.connectionState}`);
    pc.addEventListener("iceconnectionstatechange", note);
    pc.addEventListener("connectionstatechange", note);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
  window.benchSamples = [];
  window.benchSample = async () => {
    const pcs = window.benchPeers.filter((pc) => pc.connectionState !== "closed");
    const out = { t: Date.now(), inbound: {}, remote: {}, pair: null };
    for (const pc of pcs) {
      const stats = await pc.getStats();
      for (const s of stats.values()) {
        if (s.type === "inbound-rtp") out.inbound[s.kind + ":" + s.ssrc] = s;
        if (s.type === "remote-outbound-rtp") out.remote[s.kind + ":" + s.ssrc] = s;
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") out.pair = s;
      }
    }
    window.benchSamples.push(out);
    return out;
  };
  // The a=msid line of each of these mids in the remote description (lip sync pairs by stream id).
  window.msids = (pc, mids) => {
    const out = {};
    for (const section of (pc.remoteDescription?.sdp ?? "").split("\\r\\nm=").slice(1)) {
      const mid = /a=mid:(\\S+)/.exec(section)?.[1];
      if (mids.includes(mid)) out[mid] = /a=msid:(\\S+)/.exec(section)?.[1] ?? null;
    }
    return out;
  };
  window.benchFlashes = [];
  window.benchBeeps = [];
  window.benchProbe = (videoTrack, audioTrack) => {
    const canvas = new OffscreenCanvas(16, 9);
    const g = canvas.getContext("2d", { willReadFrequently: true });
    const reader = new MediaStreamTrackProcessor({ track: videoTrack.clone() }).readable.getReader();
    let bright = false;
    (async () => {
      for (;;) {
        const { value: frame, done } = await reader.read();
        if (done) return;
        const now = performance.now();
        g.drawImage(frame, 0, 0, 16, 9);
        frame.close();
        const px = g.getImageData(0, 0, 16, 9).data;
        let sum = 0;
        for (let i = 0; i < px.length; i += 4) sum += px[i + 1];
        const white = sum / (px.length / 4) > 200;
        if (white && !bright) window.benchFlashes.push(now);
        bright = white;
      }
    })();
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(new MediaStream([audioTrack]));
    const node = ctx.createScriptProcessor(256, 1, 1);
    let loud = false;
    node.onaudioprocess = (event) => {
      const now = performance.now();
      const data = event.inputBuffer.getChannelData(0);
      let peak = 0;
      for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
      const beeping = peak > 0.25;
      if (beeping && !loud) window.benchBeeps.push(now - (data.length / ctx.sampleRate) * 1000);
      loud = beeping;
    };
    source.connect(node);
    node.connect(ctx.destination);
  };
})();
"""

JANUS_PAGE = """<!doctype html><meta charset="utf-8"><title>janus subscriber</title>
<div id="tiles"></div>
<script>
const api = "/janus";
const tx = () => Math.random().toString(36).slice(2);
async function post(path, body) {
  const r = await fetch(api + path, { method: "POST", body: JSON.stringify({ ...body, transaction: tx() }) });
  const j = await r.json();
  if (j.janus === "error") throw new Error(JSON.stringify(j.error));
  return j;
}
window.janusSubscribe = async (room, feeds) => {
  const session = (await post("", { janus: "create" })).data.id;
  const handle = (await post("/" + session, { janus: "attach", plugin: "janus.plugin.videoroom" })).data.id;
  await post(`/${session}/${handle}`, { janus: "message", body: { request: "join", ptype: "subscriber", room,
    streams: feeds.map((feed) => ({ feed })) } });
  let jsep = null;
  while (!jsep) {
    const e = await (await fetch(`${api}/${session}?maxev=1&rid=${tx()}`)).json();
    if (e.jsep) jsep = e.jsep;
  }
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  window.janusTracks = [];
  pc.ontrack = (event) => {
    window.janusTracks.push({ mid: event.transceiver.mid, track: event.track });
    const el = document.createElement(event.track.kind);
    el.autoplay = true; el.muted = event.track.kind === "video";
    el.srcObject = new MediaStream([event.track]);
    document.getElementById("tiles").append(el);
  };
  await pc.setRemoteDescription(jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await post(`/${session}/${handle}`, { janus: "message", body: { request: "start", room },
    jsep: { type: "answer", sdp: pc.localDescription.sdp } });
  window.janusStreams = jsep.sdp;
  (async () => { for (;;) { await fetch(`${api}/${session}?maxev=1&rid=${tx()}`).catch(() => {});
    await new Promise((r) => setTimeout(r, 100)); } })();
  return true;
};
</script>"""


# ---------------------------------------------------------------- servers in the hub namespace


def hub_http(lab: Lab, method: str, port: int, path: str, body: dict[str, Any] | None = None,
             timeout: float = 10) -> tuple[int, bytes]:
    """One HTTP request to HUB_ADDRESS:port, made from inside the hub namespace."""
    sock = lab.socket("hub", socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((HUB_ADDRESS, port))
        conn = http.client.HTTPConnection(HUB_ADDRESS, port, timeout=timeout)
        conn.sock = sock
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        sock.close()


def wait_http(lab: Lab, port: int, path: str, process: subprocess.Popen[Any], what: str, log: str) -> None:
    deadline = time.time() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {tail(log)}")
        with contextlib.suppress(OSError):
            if hub_http(lab, "GET", port, path, timeout=2)[0] == 200:
                return
        if time.time() > deadline:
            raise RuntimeError(f"{what} did not answer within 90 s: {tail(log)}")
        time.sleep(0.5)


def tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


PREPARE = """
import json, os, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from rooms.models import Room, RoomKind
from signaling import services
from tests import factories
from tests.servers import session_cookie
n = int(sys.argv[1])
trade, wilaya = factories.trade(), factories.wilaya()
people = [factories.artisan(f"bench{i}", trades=[trade], wilaya_=wilaya) for i in range(n)]
factories.moderator_of(people[0], trade_=trade)
room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
meeting = services.meeting_start(user=people[0], room_id=room.pk).meeting
cookies = [session_cookie(p) for p in people]
print(json.dumps({"room": room.pk, "meeting": meeting, "users": [p.pk for p in people],
                  "cookies": [f"{c['name']}={c['value']}" for c in cookies]}))
"""


def hirfa_env(folder: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HIRFA_ENV", "CI")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "HIRFA_DATA_DIR": folder,
        "ALLOWED_HOSTS": HUB_ADDRESS,
        "CSRF_TRUSTED_ORIGINS": f"http://{HUB_ADDRESS}:{HTTP_PORT}",
        "HIRFA_SFU_PLACEMENT": "embedded",
        "HIRFA_SFU_ANNOUNCE_ADDRESSES": HUB_ADDRESS,
        "HIRFA_SFU_BIND_ADDRESS": HUB_ADDRESS,
        "HIRFA_FAST_PASSWORD_HASHER": "1",
        "PYTHONPATH": ROOT,
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_hirfa(lab: Lab, folder: str, participants: int) -> dict[str, Any]:
    env = hirfa_env(folder)
    prepared = subprocess.run([sys.executable, "-c", PREPARE, str(participants)], env=env, cwd=ROOT, check=False,
                              capture_output=True, text=True, timeout=300)
    if prepared.returncode != 0:
        raise RuntimeError(f"preparing the database failed: {prepared.stderr[-2000:]}")
    data = json.loads(prepared.stdout.strip().splitlines()[-1])
    log = os.path.join(folder, "daphne.log")
    with open(log, "wb") as out:
        process = lab.popen("hub", [sys.executable, "-m", "daphne", "-b", "0.0.0.0", "-p", str(HTTP_PORT),
                                    "tests.server_asgi:application"], env=env, cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT)
    wait_http(lab, HTTP_PORT, "/static/hirfa/hirfa.css", process, "daphne", log)
    data["pid"] = process.pid
    data["log"] = log
    return data


def start_janus(lab: Lab, folder: str, participants: int) -> dict[str, Any]:
    from bench import sfu

    sfu._janus_config(folder)
    for name in ("janus.jcfg", "janus.transport.http.jcfg"):
        path = os.path.join(folder, name)
        with open(path) as handle:
            text = handle.read()
        text = text.replace(f'ice_enforce_list = "{sfu.JANUS_NS_IF}"', 'ice_enforce_list = "10.77."')
        text = text.replace(f'ip = "{sfu.JANUS_NS_ADDR}"', f'ip = "{HUB_ADDRESS}"')
        with open(path, "w") as handle:
            handle.write(text)
    log = os.path.join(folder, "janus.log")
    with open(log, "wb") as out:
        process = lab.popen("hub", [sfu.JANUS_BIN, "-C", os.path.join(folder, "janus.jcfg"), "-F", folder,
                                    "--disable-colors"], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    wait_http(lab, JANUS_PORT, "/janus/info", process, "janus", log)
    room = 4242
    _, body = hub_http(lab, "POST", JANUS_PORT, "/janus", {"janus": "create", "transaction": "c"})
    session = json.loads(body)["data"]["id"]
    _, body = hub_http(lab, "POST", JANUS_PORT, f"/janus/{session}",
                            {"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a"})
    handle_id = json.loads(body)["data"]["id"]
    _status, body = hub_http(lab, "POST", JANUS_PORT, f"/janus/{session}/{handle_id}", {
        "janus": "message", "transaction": "r",
        "body": {"request": "create", "room": room, "publishers": participants, "videocodec": "vp8",
                 "audiocodec": "opus", "bitrate": 0, "fir_freq": 0, "notify_joining": False,
                 "permanent": False}})
    answer = json.loads(body)
    if answer.get("plugindata", {}).get("data", {}).get("error"):
        raise RuntimeError(f"janus: {answer}")
    return {"meeting": room, "pid": process.pid, "log": log, "admin_session": session}


# ---------------------------------------------------------------- one run


def make_clips(folder: str, bitrates: set[int]) -> dict[int, str]:
    """The publishers' clip at each bitrate, encoded once into ``folder``: bitrate -> path."""
    clips = {}
    for bitrate in sorted(bitrates):
        path = os.path.join(folder, f"clip-{bitrate}.pickle")
        with open(path, "wb") as handle:
            # The lab's listeners are silent (their "tone" is silence): one person speaks, the beeping one.
            pickle.dump({**encode_clip(bitrate), "beep": encode_audio("beep"), "tone": encode_audio("silence")}, handle)
        clips[bitrate] = path
    return clips


def finish_folder(folder: str) -> None:
    """A run's folder is removed at its end, or kept (and named) when ``NETLAB_KEEP`` is set
    to anything but empty, ``0`` or ``no``."""
    if os.environ.get("NETLAB_KEEP", "").strip().lower() not in ("", "0", "no", "false"):
        print(f"kept {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def run_one(server: str, profile_name: str, seconds: float, folder: str, clips: dict[int, str],
            publishers: int | None = None) -> dict[str, Any]:
    """One meeting in a fresh lab, measured; ``publishers`` overrides the profile's count."""
    from playwright.sync_api import sync_playwright

    profile = PROFILES[profile_name]
    default_publishers, bitrate = MEETINGS[profile_name]
    publishers = publishers or default_publishers
    row: dict[str, Any] = {"server": server, "profile": profile_name, "participants": publishers + 1,
                           "camera_bps": bitrate}
    with Lab() as lab:
        for i in range(publishers):
            lab.add(f"pub{i}", PROFILES["good"])
        lab.add("sub", profile)
        hub = (start_hirfa if server == "hirfa" else start_janus)(lab, folder, publishers + 1)
        reports = []
        for i in range(publishers):
            report = os.path.join(folder, f"pub{i}.json")
            reports.append(report)
            argv = [sys.executable, os.path.abspath(__file__), "publisher", "--server", server,
                    "--meeting", str(hub["meeting"]), "--feed", str(i + 1), "--clip", clips[bitrate],
                    "--report", report]
            if server == "hirfa":
                argv += ["--cookie", hub["cookies"][i + 1]]
            if i == 0:
                argv.append("--flash")
            with open(os.path.join(folder, f"pub{i}.log"), "wb") as out:
                lab.popen(f"pub{i}", argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                          env={**os.environ, "PYTHONPATH": ROOT})
        # The subscriber joins once every publisher is connected (bounded wait).
        deadline = time.time() + 120
        while time.time() < deadline and not all(os.path.exists(r + ".ready") for r in reports):
            time.sleep(0.5)
        row["publishers_connected"] = sum(os.path.exists(r + ".ready") for r in reports)
        # NETLAB_CHROMIUM_LOG=1: Chromium's WebRTC video log (its A/V synchroniser's "Sync info stats"
        # and "Audio delay ... current diff" lines, the jitter buffer's) in the run's folder.
        chromium_log = os.path.join(folder, "chromium.log") if os.environ.get("NETLAB_CHROMIUM_LOG") else None
        wrapper = lab.wrapper("sub", CHROMIUM, folder, stderr=chromium_log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=wrapper, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
                # Camera, microphone and WebAudio worklets need a secure context; the lab has no TLS.
                (f"--unsafely-treat-insecure-origin-as-secure=http://{HUB_ADDRESS}:{HTTP_PORT},"
                f"http://{HUB_ADDRESS}:{JANUS_PORT}"),
                # Diagnostics: more flags, e.g. Chromium's log ("{folder}" is the run's folder).
                *(["--enable-logging=stderr", "--v=0", "--vmodule=*/webrtc/video/*=2"] if chromium_log else []),
                *os.environ.get("NETLAB_CHROMIUM_ARGS", "").replace("{folder}", folder).split()])
            try:
                page = open_subscriber(browser, server, hub, publishers)
                measure(page, lab, row, profile, seconds, publishers, hub, server)
            finally:
                browser.close()
        keyframes = stop_publishers(lab, reports)
        published = publisher_reports(reports)
        row["publisher_keyframes"] = keyframes
        if "handover_span" in row:
            # Offers the other participants got from the link's drop until his media was back:
            # each one a renegotiation (the subscriber's leaving at the end is not counted).
            dark, back = row.pop("handover_span")
            row["others_renegotiations"] = sum(
                1 for p in published for at in p.get("offers_at", []) if dark <= at <= back)
        minutes = row.pop("_minutes", 0) or 1
        # Keyframes asked for within the measurement window (after the join, the first frames and
        # the warm-up), per publisher and minute; the whole run's counts stay in publisher_keyframes.
        begin, end = row.pop("_window", (0.0, 0.0))
        in_window = [sum(1 for at in p.get("keyframes_at", []) if begin <= at <= end) for p in published]
        row["keyframes_per_publisher_per_min"] = (
            round(statistics.mean(in_window) / minutes, 2) if in_window and end > begin else None)
        row["publisher_keyframes_in_window"] = in_window
        row["keyframes_per_publisher_per_min_whole_run"] = (
            round(statistics.mean(keyframes) / minutes, 2) if keyframes else None)
        row["link"] = lab_counters(lab)
    return row


def lab_counters(lab: Lab) -> dict[str, Any]:
    with contextlib.suppress(RuntimeError):
        counters = lab.counters()
        return {name: counters[str(p.index)] for name, p in lab.participants.items()}
    return {}


def counters_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What each link direction carried between two :func:`lab_counters` (the window's traffic)."""
    out: dict[str, Any] = {}
    for name, link in after.items():
        for direction, now in link.items():
            then = before.get(name, {}).get(direction, {})
            row = {key: now[key] - then.get(key, 0) for key in ("passed", "lost", "dropped")}
            earlier = then.get("kinds", {})
            row["kinds"] = {
                kind: [a - b for a, b in zip(tally, earlier.get(kind, [0, 0, 0]), strict=True)]
                for kind, tally in now.get("kinds", {}).items()
                if tally != earlier.get(kind)
            }
            out.setdefault(name, {})[direction] = row
    return out


def open_subscriber(browser: Any, server: str, hub: dict[str, Any], publishers: int) -> Any:
    context = browser.new_context(viewport={"width": 360, "height": 740})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.console_lines = []  # type: ignore[attr-defined]
    # Each line with its wall-clock time (s), so a handover's steps can be timed against the
    # link's drop and return (``handover_at`` in the row).
    def line(text: str) -> None:
        page.console_lines.append(f"{time.time():.3f} {text}"[:300])

    page.on("console", lambda message: line(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: line(f"pageerror: {error}"))
    if os.environ.get("NETLAB_DEBUG"):
        def watch(ws: Any) -> None:
            line("ws open")
            ws.on("close", lambda _ws: line("ws closed"))
            ws.on("framereceived", lambda payload: line(f"ws< {str(payload)[:100]}"))
            ws.on("framesent", lambda payload: line(f"ws> {str(payload)[:100]}"))

        page.on("websocket", watch)
    if server == "hirfa":
        name, value = hub["cookies"][0].split("=", 1)
        base = f"http://{HUB_ADDRESS}:{HTTP_PORT}"
        context.add_cookies([{"name": name, "value": value, "url": base}])
        page.goto(f"{base}/rooms/{hub['room']}/meeting/")
        page.wait_for_selector("body[data-connection='online']")
        page.wait_for_selector("#join:not([disabled])")
        page.click("#join")
        page.wait_for_selector("#meeting[data-phase='in']")
        # It receives video but sends none ("audio only" would receive none): camera off.
        page.click("#ctl-camera")
        page.wait_for_selector("#ctl-camera.off")
    else:
        base = f"http://{HUB_ADDRESS}:{JANUS_PORT}"
        page.route(f"{base}/bench.html", lambda route: route.fulfill(
            status=200, content_type="text/html", body=JANUS_PAGE))
        page.goto(f"{base}/bench.html")
        page.evaluate("([room, feeds]) => window.janusSubscribe(room, feeds)",
                      [hub["meeting"], list(range(1, publishers + 1))])
    return page


def video_streams(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sample["inbound"].items() if k.startswith("video:")}


def audio_streams(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sample["inbound"].items() if k.startswith("audio:")}


def start_probe(page: Any, server: str, hub: dict[str, Any]) -> dict[str, Any]:
    """Attach the flash/beep probe to the first publisher's video and audio; answers whose tracks
    it took (``user``, Hirfa only), their ``mids`` and the ``msid`` lines the offer gave them (one
    stream id for both: the browser synchronises them)."""
    if server == "hirfa":
        return page.evaluate("""(user) => {
          const pc = window.benchPeers.filter((p) => p.connectionState !== "closed").at(-1);
          // Slots: the first publisher's voice may be in no audio slot; take the first one whose
          // voice and camera both are (a slot pair keeps them together).
          const lines = window.hirfaMeeting.mlines().filter((m) => m.direction === "subscribe" && m.user != null);
          const whole = (u) => ["audio", "video"].every((k) => lines.some((m) => m.user === u && m.kind === k));
          const chosen = [user, ...lines.map((m) => m.user)].find(whole) ?? user;
          const mlines = lines.filter((m) => m.user === chosen);
          const track = (kind) => pc.getTransceivers().find(
            (t) => t.mid === mlines.find((m) => m.kind === kind)?.mid)?.receiver.track;
          window.benchProbe(track("video"), track("audio"));
          const mids = Object.fromEntries(["audio", "video"].map((k) => [k, mlines.find((m) => m.kind === k)?.mid]));
          return { user: chosen, mids, msid: msids(pc, Object.values(mids)) };
        }""", hub["users"][1])
    return page.evaluate("""() => {
      const pc = window.benchPeers.filter((p) => p.connectionState !== "closed").at(-1);
      const byKind = (kind) => window.janusTracks.find((t) => t.track.kind === kind);
      const mids = { audio: byKind("audio").mid, video: byKind("video").mid };
      window.benchProbe(byKind("video").track, byKind("audio").track);
      return { user: null, mids, msid: msids(pc, Object.values(mids)) };
    }""")


def stop_publishers(lab: Lab, reports: list[str]) -> list[int]:
    """Stop the lab's processes and answer the keyframes each publisher's report counted."""
    for process in lab.processes:
        if process.poll() is None:
            process.terminate()
    for process in lab.processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    return [report.get("keyframes", 0) for report in publisher_reports(reports)]


def publisher_reports(reports: list[str]) -> list[dict[str, Any]]:
    """What each stopped publisher wrote: ``keyframes`` asked for (and ``keyframes_at``, when), ``offers_at``
    (when each offer came)."""
    out = []
    for report in reports:
        with contextlib.suppress(OSError, ValueError), open(report) as handle:
            out.append(json.load(handle))
    return out


def video_slots(page: Any) -> int:
    """How many video m-lines the Hirfa page subscribes with (its video slots)."""
    return int(page.evaluate(
        "() => window.hirfaMeeting.mlines().filter((m) => m.kind === 'video' && m.direction === 'subscribe').length"
    ))


def measure(page: Any, lab: Lab, row: dict[str, Any], profile: Any, seconds: float, publishers: int,
            hub: dict[str, Any], server: str) -> None:
    # Media from every publisher first (bounded), then the warm-up, then the window.
    deadline = time.time() + 90
    while True:
        sample = page.evaluate("() => window.benchSample()")
        decoding = [s for s in video_streams(sample).values() if s.get("framesDecoded", 0) > 0]
        # A phone's page asks for fewer video slots than there are cameras (slots, signaling/sfu/README.md):
        # it is sent as many videos as it has slots, not every publisher's.
        expected = publishers if server != "hirfa" else min(publishers, video_slots(page) or publishers)
        if len(decoding) >= expected:
            row["videos_received"] = len(decoding)
            break
        if time.time() > deadline:
            row["error"] = f"only {len(decoding)} of {expected} videos decoded within 90 s"
            row["peers"] = page.evaluate("() => window.benchPeers.map((pc) => pc.connectionState)")
            row["console"] = page.console_lines[-40:]
            if server == "hirfa":
                row["mlines"] = page.evaluate("() => window.hirfaMeeting.mlines()")
                row["state"] = page.evaluate("() => window.hirfaMeeting.state()")
            row["inbound"] = {k: {f: v.get(f) for f in ("packetsReceived", "framesReceived", "framesDecoded",
                                                        "keyFramesDecoded", "pliCount", "codecId")}
                              for k, v in sample["inbound"].items()}
            row["_minutes"] = 0
            return
        page.wait_for_timeout(500)
    probe: dict[str, Any] = {}
    try:
        probe = start_probe(page, server, hub) or {}
    except Exception as error:
        row["av_probe_error"] = str(error)[:300]
    row["av_probe"] = probe
    page.wait_for_timeout(WARMUP_SECONDS * 1000)
    first = page.evaluate("() => window.benchSample()")
    start = time.time()
    links_at_start = lab_counters(lab)
    handover: dict[str, float] = {}

    def move() -> None:
        handover["dark"] = time.time()
        lab.handover("sub")
        handover["back"] = time.time()

    mover = None
    samples = [first]
    end = start + seconds
    while time.time() < end or (mover is not None and mover.is_alive()):
        if profile.handover and mover is None and time.time() >= start + seconds / 3:
            mover = threading.Thread(target=move)
            mover.start()
        page.wait_for_timeout(250)
        samples.append(page.evaluate("() => window.benchSample()"))
    recovered = None
    if profile.handover:
        # Until every video stream decodes again after the link's return (bounded).
        back = handover["back"] * 1000
        limit = time.time() + RECOVERY_LIMIT_SECONDS
        while recovered is None and time.time() < limit:
            at_return = [s for s in samples if s["t"] <= back][-1]
            for sample in samples:
                if sample["t"] > back and _all_advanced(at_return, sample, row.get("videos_received") or publishers):
                    recovered = round((sample["t"] - back) / 1000, 2)
                    break
            if recovered is None:
                page.wait_for_timeout(250)
                samples.append(page.evaluate("() => window.benchSample()"))
        row["recovered_after_handover_s"] = recovered
        # Sooner signs: every voice heard again, and the first video decoding again.
        at_return = [s for s in samples if s["t"] <= back][-1]
        heard = audio_streams(at_return)
        seen = video_streams(at_return)
        row["audio_back_after_handover_s"] = _first_after(samples, back, lambda s: bool(audio_streams(s)) and all(
            v.get("packetsReceived", 0) > heard.get(k, {}).get("packetsReceived", 0) for k, v in audio_streams(s).items()))
        row["first_video_back_after_handover_s"] = _first_after(samples, back, lambda s: any(
            v.get("framesDecoded", 0) > seen.get(k, {}).get("framesDecoded", 0) for k, v in video_streams(s).items()))
        # From the drop until the media is back (or the bound): what the others were offered then.
        row["handover_span"] = (handover["dark"], time.time())
        if recovered is None or os.environ.get("NETLAB_DEBUG"):
            row["handover_at"] = {"dark": round(handover["dark"], 3), "back": round(handover["back"], 3)}
            row["console"] = [text for text in page.console_lines
                              if float(text.split(" ", 1)[0]) >= handover["dark"] - 1][:120]
    last = samples[-1]
    row["link_window"] = counters_since(links_at_start, lab_counters(lab))
    window_s = (last["t"] - first["t"]) / 1000
    row["_minutes"] = window_s / 60
    row["_window"] = (start, time.time())
    row["window_s"] = round(window_s, 1)
    row.update(summarize(first, last, samples, window_s))
    row["av_probe_streams"] = probe_streams(first, last, samples, probe.get("mids") or {})
    timing = page.evaluate("() => ({flashes: window.benchFlashes, beeps: window.benchBeeps})")
    row["av_offset_ms"], row["av_pairs"] = av_offset(timing["flashes"], timing["beeps"])
    row["flashes_seen"], row["beeps_heard"] = len(timing["flashes"]), len(timing["beeps"])
    if os.environ.get("NETLAB_DEBUG"):
        row["av_offsets_ms"] = [round(offset, 1) for offset in av_pairs(timing["flashes"], timing["beeps"])]
        row["av_offsets_at"] = [round((flash - timing["flashes"][0]) / 1000, 1) for flash in timing["flashes"]]
        row["av_series"] = probe_series(samples, probe.get("mids") or {})


def probe_streams(first: dict[str, Any], last: dict[str, Any], samples: list[dict[str, Any]],
                  mids: dict[str, str]) -> dict[str, Any]:
    """The probed publisher's audio and video over the window: mean jitter-buffer delay, target
    and minimum delay (ms; a browser that synchronises them raises one stream's minimum delay
    to meet the other's), and the sender reports heard (count, whether any carried an NTP time)."""
    out: dict[str, Any] = {}
    for kind, mid in mids.items():
        key = next((k for k, v in last["inbound"].items() if v.get("mid") == mid and k.startswith(kind)), None)
        if key is None:
            continue
        begin, end = first["inbound"].get(key, {}), last["inbound"][key]
        emitted = _delta(begin, end, "jitterBufferEmittedCount")
        figures: dict[str, Any] = {"mid": mid}
        for field in ("jitterBufferDelay", "jitterBufferTargetDelay", "jitterBufferMinimumDelay"):
            if emitted > 0 and field in end:
                figures[field] = round(1000 * _delta(begin, end, field) / emitted, 1)
        ssrc = key.split(":", 1)[1]
        reports = [s["remote"].get(f"{kind}:{ssrc}") for s in samples if s.get("remote")]
        reports = [r for r in reports if r]
        figures["sender_reports"] = reports[-1].get("reportsSent") if reports else 0
        figures["sr_remote_timestamp"] = reports[-1].get("remoteTimestamp") if reports else None
        out[kind] = figures
    gaps, behind = playout_times(samples, mids)
    out["sync_offset_ms"] = round(statistics.median(gaps), 1) if gaps else None
    for kind, lags in behind.items():
        if lags and kind in out:
            out[kind]["playout_behind_ms"] = round(statistics.median(lags), 1)
    return out


#: estimatedPlayoutTimestamp is an NTP time in ms (from 1900); the samples' times are Unix ms.
NTP_UNIX_MS = 2_208_988_800_000
SERIES_FIELDS = ("jitterBufferDelay", "jitterBufferTargetDelay", "jitterBufferMinimumDelay")


def probe_series(samples: list[dict[str, Any]], mids: dict[str, str]) -> list[dict[str, Any]]:
    """The probed pair second by second (NETLAB_DEBUG): each stream's jitter-buffer delays over
    the second (ms per emitted frame or sample), how far behind its sender it plays, and the
    video's retransmitted packets and NACKs in the second."""
    series: list[dict[str, Any]] = []
    previous: dict[str, dict[str, Any]] = {}
    begin = samples[0]["t"] if samples else 0
    for sample in samples[::4]:
        point: dict[str, Any] = {"t": round((sample["t"] - begin) / 1000, 1)}
        for key, stats in sample["inbound"].items():
            kind = key.split(":", 1)[0]
            if stats.get("mid") != mids.get(kind):
                continue
            before = previous.get(kind, {})
            emitted = _delta(before, stats, "jitterBufferEmittedCount")
            for field in SERIES_FIELDS:
                if emitted > 0 and field in stats:
                    point[f"{kind}_{field[len('jitterBuffer'):].lower() or 'delay'}"] = round(
                        1000 * _delta(before, stats, field) / emitted, 1)
            if stats.get("estimatedPlayoutTimestamp"):
                point[f"{kind}_behind"] = round(sample["t"] - (stats["estimatedPlayoutTimestamp"] - NTP_UNIX_MS), 1)
            if kind == "video":
                for field in ("retransmittedPacketsReceived", "nackCount", "framesReceived", "totalAssemblyTime"):
                    if field in stats:
                        point[f"video_{field}"] = round(_delta(before, stats, field), 3)
            previous[kind] = stats
        series.append(point)
    return series


def playout_times(samples: list[dict[str, Any]], mids: dict[str, str]) -> tuple[list[float], dict[str, list[float]]]:
    """Chromium's own view of the pair (``estimatedPlayoutTimestamp``: the sender's NTP time of
    what plays now, from the sender reports): per sample, the audio's minus the video's
    (positive: the audio plays a later instant, the video is behind), and how far behind the
    sample's time each plays (the lab's senders and browser share one clock)."""
    gaps: list[float] = []
    behind: dict[str, list[float]] = {"audio": [], "video": []}
    for sample in samples:
        times = {}
        for key, stats in sample["inbound"].items():
            kind = key.split(":", 1)[0]
            if stats.get("mid") == mids.get(kind) and stats.get("estimatedPlayoutTimestamp"):
                times[kind] = stats["estimatedPlayoutTimestamp"]
                behind[kind].append(sample["t"] - (stats["estimatedPlayoutTimestamp"] - NTP_UNIX_MS))
        if len(times) == 2:
            gaps.append(times["audio"] - times["video"])
    return gaps, behind


def _first_after(samples: list[dict[str, Any]], back: float, advanced: Any) -> float | None:
    """Seconds from ``back`` (ms) to the first sample after it for which ``advanced`` holds."""
    for sample in samples:
        if sample["t"] > back and advanced(sample):
            return round((sample["t"] - back) / 1000, 2)
    return None


def _all_advanced(before: dict[str, Any], after: dict[str, Any], publishers: int) -> bool:
    # A new peer connection (an ICE restart that renews the peer) shows up under new SSRCs keys only
    # if the SSRCs change; the SFU keeps them, so compare by key and fall back on counting streams.
    old = video_streams(before)
    new = video_streams(after)
    advanced = [k for k, s in new.items() if s.get("framesDecoded", 0) > old.get(k, {}).get("framesDecoded", 0)]
    return len(advanced) >= publishers


def _delta(first: dict[str, Any], last: dict[str, Any], field: str) -> float:
    return float(last.get(field, 0) or 0) - float(first.get(field, 0) or 0)


def summarize(first: dict[str, Any], last: dict[str, Any], samples: list[dict[str, Any]], window_s: float) -> dict[str, Any]:
    audio_first, audio_last = audio_streams(first), audio_streams(last)
    concealed = received = 0.0
    audio_jb = []
    per_stream = []
    for key, end in audio_last.items():
        begin = audio_first.get(key, {})
        concealed += _delta(begin, end, "concealedSamples")
        received += _delta(begin, end, "totalSamplesReceived")
        # Which voices conceal, and why: lost on the link, or not sent at all (a paused voice's
        # silence is concealed too), late (jitter buffer), or rebuilt from FEC/RED.
        samples_in = _delta(begin, end, "totalSamplesReceived")
        per_stream.append({
            "packets": int(_delta(begin, end, "packetsReceived")),
            "lost": int(_delta(begin, end, "packetsLost")),
            "discarded": int(_delta(begin, end, "packetsDiscarded")),
            "fec": int(_delta(begin, end, "fecPacketsReceived")),
            "concealed_pct": round(100 * _delta(begin, end, "concealedSamples") / samples_in, 2) if samples_in else None,
            "silent_concealed_pct": round(100 * _delta(begin, end, "silentConcealedSamples") / samples_in, 2)
            if samples_in else None,
        })
        emitted = _delta(begin, end, "jitterBufferEmittedCount")
        if emitted > 0:
            audio_jb.append(1000 * _delta(begin, end, "jitterBufferDelay") / emitted)
    video_first, video_last = video_streams(first), video_streams(last)
    freezes = freeze_ms = 0.0
    fps, video_jb, keyframes, plis, nacks = [], [], 0.0, 0.0, 0.0
    for key, end in video_last.items():
        begin = video_first.get(key, {})
        freezes += _delta(begin, end, "freezeCount")
        freeze_ms += 1000 * _delta(begin, end, "totalFreezesDuration")
        fps.append(_delta(begin, end, "framesDecoded") / window_s if window_s else 0.0)
        emitted = _delta(begin, end, "jitterBufferEmittedCount")
        if emitted > 0:
            video_jb.append(1000 * _delta(begin, end, "jitterBufferDelay") / emitted)
        keyframes += _delta(begin, end, "keyFramesDecoded")
        plis += _delta(begin, end, "pliCount") + _delta(begin, end, "firCount")
        nacks += _delta(begin, end, "nackCount")
    # The longest freeze: each sample-to-sample step that ends freezes adds their durations.
    longest = 0.0
    for before, after in itertools.pairwise(samples):
        for key, end in video_streams(after).items():
            begin = video_streams(before).get(key, {})
            count = _delta(begin, end, "freezeCount")
            if count > 0:
                longest = max(longest, 1000 * _delta(begin, end, "totalFreezesDuration") / count)
    # Each freeze: when it ended (s into the window), how long, which stream, and what the
    # stream did meanwhile (keyframes decoded, PLIs and NACKs sent, packets lost so far).
    freeze_log = []
    for before, after in itertools.pairwise(samples):
        for key, end in video_streams(after).items():
            begin = video_streams(before).get(key, {})
            count = _delta(begin, end, "freezeCount")
            if count > 0:
                base = video_first.get(key, {})
                freeze_log.append({
                    "ended_s": round((after["t"] - first["t"]) / 1000, 2), "mid": end.get("mid"),
                    "ms": round(1000 * _delta(begin, end, "totalFreezesDuration")), "count": int(count),
                    "keyframes": int(_delta(base, end, "keyFramesDecoded")), "plis": int(_delta(base, end, "pliCount")),
                    "nacks": int(_delta(base, end, "nackCount")), "lost": int(_delta(base, end, "packetsLost")),
                })
    bitrates = [s["pair"].get("availableIncomingBitrate") for s in samples if s.get("pair")]
    bitrates = [b for b in bitrates if b]
    return {
        "audio_concealed_pct": round(100 * concealed / received, 2) if received else None,
        "video_freezes": int(freezes),
        "video_freeze_total_ms": round(freeze_ms),
        "video_freeze_max_ms": round(longest),
        "video_fps": round(statistics.mean(fps), 1) if fps else None,
        "video_streams": len(video_last),
        "audio_streams": len(audio_last),
        "audio_jitter_buffer_ms": round(statistics.mean(audio_jb), 1) if audio_jb else None,
        "audio_per_stream": per_stream,
        "video_jitter_buffer_ms": round(statistics.mean(video_jb), 1) if video_jb else None,
        "available_incoming_bitrate": round(statistics.median(bitrates)) if bitrates else None,
        "keyframes_decoded_per_stream_per_min": round(keyframes / len(video_last) / (window_s / 60), 2)
        if video_last and window_s else None,
        "plis_sent": int(plis),
        "nacks_sent": int(nacks),
        "freeze_log": freeze_log,
    }


def av_pairs(flashes: list[float], beeps: list[float]) -> list[float]:
    """(beep − flash) in ms for each flash with a beep within half a clip period (1 s)."""
    offsets = []
    for flash in flashes:
        near = [b - flash for b in beeps if abs(b - flash) < LOOP_SECONDS * 1000 / 2]
        if near:
            offsets.append(min(near, key=abs))
    return offsets


def av_offset(flashes: list[float], beeps: list[float]) -> tuple[float | None, int]:
    """Median of :func:`av_pairs`, and how many pairs."""
    offsets = av_pairs(flashes, beeps)
    return (round(statistics.median(offsets), 1) if offsets else None), len(offsets)


# ---------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publisher", help="(internal) one aiortc publisher, run in its namespace")
    pub.add_argument("--server", required=True)
    pub.add_argument("--meeting", type=int, required=True)
    pub.add_argument("--feed", type=int, required=True)
    pub.add_argument("--clip", required=True)
    pub.add_argument("--report", required=True)
    pub.add_argument("--cookie", default="")
    pub.add_argument("--flash", action="store_true")
    parser.add_argument("--profiles", default="good,lossy,3g,handover")
    parser.add_argument("--servers", default="hirfa,janus")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "publisher":
        run_publisher(args)
        return
    reason = lab_unavailable()
    if reason is None and not os.path.exists(CHROMIUM):
        reason = f"no Chromium at {CHROMIUM}"
    if reason:
        sys.exit(f"bench/netlab.py: {reason}")
    profiles = [p for p in args.profiles.split(",") if p]
    servers = [s for s in args.servers.split(",") if s]
    for name in profiles:
        if name not in MEETINGS:
            sys.exit(f"unknown profile {name!r} (known: {', '.join(MEETINGS)})")
    rows = []
    folder = tempfile.mkdtemp(prefix="netlab-bench-")
    try:
        clips = make_clips(folder, {MEETINGS[p][1] for p in profiles})
        for profile in profiles:
            for server in servers:
                run_folder = os.path.join(folder, f"{server}-{profile}")
                os.makedirs(run_folder)
                try:
                    row = run_one(server, profile, args.seconds, run_folder, clips)
                except Exception as error:
                    row = {"server": server, "profile": profile, "error": repr(error)[:500]}
                rows.append(row)
                if not args.json:
                    print(json.dumps(row), flush=True)
    finally:
        finish_folder(folder)
    if args.json:
        print(json.dumps({
            "command": " ".join(["python", "bench/netlab.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": os.getloadavg()},
            "results": rows,
        }, indent=2))


if __name__ == "__main__":
    main()
