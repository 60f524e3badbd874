"""Benchmark: server CPU per forwarded stream, subscriber fps and latency of the SFU.

Two loads, every peer in its own process on loopback, the server in another
(its CPU time alone is measured, with psutil, over a window that starts once
every subscriber receives):

* fan-out: one VP8 publisher (about 1 Mbps, 30 fps, 640x360) to K subscribers;
* meeting: N participants who all publish and all receive the others.

The same fan-out load is driven through aiortc's stock ``MediaRelay`` (decode
once, encode per subscriber) and through Janus's videoroom plugin (Debian's
``janus``) for the CPU ratios, each the other server's CPU divided by the SFU's
(above 1: the SFU uses less). Janus's ICE agent (libnice) never gathers loopback
candidates, so Janus runs in a network namespace the bench makes for the run,
reached from this one over a veth pair (169.254.203.1/30 here, .2 there; the
peers bind to .1); the namespace, the link and Janus are removed at the end.
That needs root: without it, or without ``/usr/bin/janus``, or with
``--no-janus``, ``janus_cpu_ratio`` is null and ``note`` says why. Janus's CPU
is that of the janus process alone, over the same window.

Peers are light so that 16 of them fit on a small machine: the publisher sends
a VP8 loop encoded once by the driver (its sender only packetizes), and
subscribers never decode, never reassemble: their receivers only count RTP
packets carrying the marker bit (one per frame) and read the send time the
publisher appended to each frame, which gives the publisher-to-subscriber
latency through the server (loopback; it includes both clients' stacks, so it
bounds what the server adds).

With ``--recording``, each SFU load runs a second time with the meeting recorded
(``signaling/sfu/recorder.py``: every published track muxed into a WebM file, no
decoding): ``recording_cpu_pct_per_stream`` is the CPU time spent in the recorder's
packet tap during the window (thread CPU time, measured around each call) per recorded
stream, ``recording_cpu_delta_pct`` the difference in server CPU against the run without
recording (noisier: two loads), ``recording_mb_per_min`` what the files grew by, and
``recording_decoders`` the decoders created in the server (must be 0).

With ``--simulcast``, the fan-out's SFU runs have a simulcast publisher: two RID layers,
320x180 at 150 kbit/s and the same 640x360 loop (as Chromium sends a 360p camera; see
``SIMULCAST_RIDS``); ``layers`` counts the subscriptions by the layer forwarded at the end.
MediaRelay and Janus are still sent the one stream. bench/meeting_adapt.py's
``simulcast_cpu`` case runs K = 8 with and without it, and Janus, in one run.

With ``--spread``, each fan-out K also runs as a meeting spread over two SFU server
processes joined by a pipe (``signaling/sfu/pipe.py``): the publisher and the even
subscribers on worker a, the odd ones on worker b, which receives the publisher's
packets over the pipe; ``spread`` holds each worker's CPU (``worker_cpu_pct``: a, b),
their sum, the most loaded one against the one-worker run's CPU (``busiest_ratio``)
and what the subscribers of each worker saw.

Usage: ``python bench/sfu.py [--ks 1,4,8,16] [--ns 4,8] [--seconds 8] [--json]
[--no-mediarelay] [--janus | --no-janus] [--profile FILE] [--recording] [--simulcast] [--spread]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import queue
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from fractions import Fraction
from typing import Any, Self

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WIDTH, HEIGHT, FPS, BITRATE = 640, 360, 30, 1_000_000
LOOP_FRAMES = 90
TRAILER = struct.Struct("<4sd")  # magic + send time, appended to every published frame
MAGIC = b"HRFA"
# UDP ports: the server's from PORT_BASE (500 of them), the peers' above (500 more);
# HIRFA_BENCH_PORT_BASE moves them (two benches on one machine).
PORT_BASE = int(os.environ.get("HIRFA_BENCH_PORT_BASE", "44000"))
SERVER_PORTS = (PORT_BASE, PORT_BASE + 499)
PEER_PORTS = (PORT_BASE + 500, PORT_BASE + 999)


# ---------------------------------------------------------------- signaling


async def send_json(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


async def read_json(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    line = await reader.readline()
    return json.loads(line) if line else None


# ---------------------------------------------------------------- server


def run_server(mode: str, port_queue: Any, profile: str | None, record_dir: str | None = None) -> None:
    if mode == "sfu-pipe":
        asyncio.run(_server_main("sfu", port_queue, pipes=True))
        return
    if record_dir:
        asyncio.run(_server_main(mode, port_queue, record_dir))
        return
    if profile:
        # CPU-time profile of the measurement window only (SIGUSR1 starts it, SIGUSR2 writes it).
        import cProfile
        import signal

        profiler = cProfile.Profile(time.process_time)
        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        def write_profile(*_: object) -> None:
            profiler.disable()
            profiler.dump_stats(profile)

        signal.signal(signal.SIGUSR2, write_profile)
    asyncio.run(_server_main(mode, port_queue))


async def _server_main(mode: str, port_queue: Any, record_dir: str | None = None, pipes: bool = False) -> None:
    from signaling.sfu import Sfu, SfuConfig

    done = asyncio.Event()
    sfu = Sfu(SfuConfig(port_min=SERVER_PORTS[0], port_max=SERVER_PORTS[1]))
    meeting = sfu.meeting("bench")
    endpoint = await sfu.pipe_endpoint() if pipes else None
    recording = _record(meeting, record_dir) if record_dir else None
    relay_state: dict[str, Any] = {"track": None, "waiters": [], "pcs": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_json(reader)
        if hello is None:
            return
        if hello.get("quit"):
            done.set()
            return
        if hello.get("pipe") and endpoint is not None:  # the other worker of a spread meeting
            other = (hello["pipe"][0], int(hello["pipe"][1]))
            key = bytes.fromhex(hello["key"])  # the pair's secret, as the engine's PipeOpen carries it
            meeting.pipe_to(endpoint, other, key=key)
            meeting.pipe_from(endpoint, other, key=key)
            await send_json(writer, {"piped": True})
            return
        try:
            if mode == "sfu":
                await _serve_sfu(meeting, hello, reader, writer)
            else:
                await _serve_relay(relay_state, hello, reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass  # the peer went away at the end of the run

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_queue.put(server.sockets[0].getsockname()[1])
    if endpoint is not None:
        port_queue.put(list(endpoint.address))
    await done.wait()
    server.close()
    if mode == "sfu":  # which layer each subscription gets ("0" lowest; "single" when not simulcast)
        layers: dict[str, int] = {}
        for participant in meeting.participants():
            for track in participant.subscription_tracks():
                if track.kind != "video":
                    continue
                source = track.source
                key = str(track.forwarded_layer) if source is not None and source.layered else "single"
                layers[key] = layers.get(key, 0) + 1
        port_queue.put(layers)
    if os.environ.get("SFU_BENCH_DEBUG"):
        for participant in meeting.participants():
            for f in participant.forwarders():
                print(f"{participant.id} publishes: {f.frames_received} frames, {f.keyframes_received} keyframes, "
                      f"{f.keyframe_requests_sent} PLIs, given up {f.nack.given_up if f.nack else None}",
                      file=sys.stderr)
            for t in participant.subscription_tracks():
                print(f"{participant.id} receives: {t.frames_forwarded} frames, {t.packets_dropped} packets dropped, "
                      f"{t.keyframe_requests_received} PLIs", file=sys.stderr)
    if recording is not None:
        await meeting.stop_recording()
        recording.write()
    await sfu.close()
    for pc in relay_state["pcs"]:
        await pc.close()


class _RecordingMeter:
    """The recorder's CPU time in its packet tap and the bytes it wrote, over the window
    (SIGUSR1 opens it, SIGUSR2 closes it); written as JSON at the end of the run."""

    def __init__(self, recorder: Any, path: str) -> None:
        self.recorder = recorder
        self.path = path
        self.open = False
        self.cpu = 0.0
        self.bytes_at: list[int] = []
        self.decoders = 0

    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.recorder.recordings())

    def toggle(self, opening: bool) -> None:
        self.open = opening
        self.bytes_at.append(self.total_bytes())

    def write(self) -> None:
        streams = len({(r.forwarder.participant_id, r.forwarder.source) for r in self.recorder.recordings()})
        grown = self.bytes_at[1] - self.bytes_at[0] if len(self.bytes_at) >= 2 else 0
        with open(self.path, "w") as out:
            json.dump({"tap_cpu_s": self.cpu, "bytes": grown, "streams": streams, "decoders": self.decoders}, out)


def _record(meeting: Any, record_dir: str) -> _RecordingMeter:
    from pathlib import Path

    from aiortc import rtcrtpreceiver

    from signaling.sfu import recorder as recorder_module

    meter = _RecordingMeter(None, os.path.join(record_dir, "bench.json"))
    # The whole tap: the layer filter (simulcast) and the recording behind it.
    real_tap = recorder_module._Tapped.tap
    clock = time.thread_time

    def timed_tap(self: Any, packet: Any, keyframe: bool, layer: int) -> None:
        if not meter.open:
            real_tap(self, packet, keyframe, layer)
            return
        started = clock()
        real_tap(self, packet, keyframe, layer)
        meter.cpu += clock() - started

    recorder_module._Tapped.tap = timed_tap  # type: ignore[method-assign]
    meter.recorder = meeting.start_recording(Path(record_dir))  # after the tap is timed
    real_get_decoder = rtcrtpreceiver.get_decoder

    def get_decoder(codec: Any) -> Any:
        meter.decoders += 1
        return real_get_decoder(codec)

    rtcrtpreceiver.get_decoder = get_decoder
    signal.signal(signal.SIGUSR1, lambda *_: meter.toggle(True))
    signal.signal(signal.SIGUSR2, lambda *_: meter.toggle(False))
    return meter


async def _serve_sfu(meeting: Any, hello: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    from signaling.sfu import NegotiationState, TrackSource

    wake = asyncio.Event()
    participant = await meeting.join(hello["name"], on_negotiation_needed=lambda p: wake.set())
    try:
        if hello.get("publish"):
            participant.publish(TrackSource.CAMERA)
        wake.set()
        while True:
            await wake.wait()
            wake.clear()
            if (
                not participant.negotiation_needed
                and participant.negotiation_state is NegotiationState.STABLE
                and participant.peer_connection.localDescription
            ):
                continue
            offer = await participant.create_offer()
            await send_json(writer, {
                "sdp": offer.sdp,
                "slots": [[s.mid, s.direction.value, s.publisher_id] for s in offer.slots],
            })
            answer = await read_json(reader)
            if answer is None:
                return
            await participant.apply_answer(answer["sdp"], revision=offer.revision)
    finally:
        if participant in meeting.participants():
            await meeting.leave(hello["name"])


async def _serve_relay(state: dict[str, Any], hello: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates

    policy = HostCandidatePolicy("127.0.0.1", ("127.0.0.1",), *SERVER_PORTS)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    state["pcs"].append(pc)
    state.setdefault("relay", MediaRelay())
    if hello.get("publish"):
        transceiver = pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            state["track"] = track
            for waiter in state["waiters"]:
                waiter.set_result(track)
    else:
        track = state["track"]
        if track is None:
            waiter = asyncio.get_running_loop().create_future()
            state["waiters"].append(waiter)
            track = await waiter
        transceiver = pc.addTransceiver(state["relay"].subscribe(track), direction="sendonly")
    prefs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    transceiver.setCodecPreferences(prefs)
    offer = await pc.createOffer()
    configure_host_candidates(pc, policy)
    await pc.setLocalDescription(offer)
    direction = "publish" if hello.get("publish") else "subscribe"
    await send_json(writer, {"sdp": pc.localDescription.sdp, "slots": [[transceiver.mid, direction, "pub"]]})
    answer = await read_json(reader)
    if answer is None:
        return
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await reader.read()  # until the client goes away


# ---------------------------------------------------------------- clients


def encode_loop(width: int = WIDTH, height: int = HEIGHT, bitrate: int = BITRATE) -> list[bytes]:
    """A VP8 loop of LOOP_FRAMES frames at about ``bitrate``; frame 0 is the only keyframe.

    The picture is a sliding pattern with a moving patch of noise: rich enough
    to keep the encoder near BITRATE (pure noise would need about 12 Mbps).
    """
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.gop_size = 10_000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    patch = 96 * width // WIDTH
    top = 100 * height // HEIGHT
    base = bytes((x * 2) & 0xFF for x in range(width * 2))
    frames: list[bytes] = []
    for index in range(LOOP_FRAMES + 10):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma, *chroma = frame.planes
        rows = []
        for y in range(height):
            shift = (3 * index + y) % width
            row = bytearray(base[shift:shift + width])
            if top <= y < top + patch:
                x = (index * 7) % (width - patch)
                row[x:x + patch] = os.urandom(patch)
            rows.append(bytes(row) + b"\x00" * (luma.line_size - width))
        luma.update(b"".join(rows))
        for plane in chroma:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        for packet in codec.encode(frame):
            frames.append(bytes(packet))
    return frames[:LOOP_FRAMES]


def _loop_track(loop_frames: list[bytes]) -> Any:
    """A track yielding the pre-encoded loop at FPS, each frame stamped with its send time."""
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class LoopTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.count = 0
            self.start = time.time()

        def keyframe(self) -> None:
            self.index = 0

        async def recv(self) -> Any:
            self.count += 1
            await asyncio.sleep(max(0.0, self.start + self.count / FPS - time.time()))
            packet = av.Packet(loop_frames[self.index] + TRAILER.pack(MAGIC, time.time()))
            self.index = (self.index + 1) % LOOP_FRAMES
            packet.pts = self.count
            packet.time_base = Fraction(1, FPS)
            return packet

    return LoopTrack()


def _light_receiver(mid: str, arrivals: dict[str, list[tuple[float, float]]], events: Any, name: str) -> Any:
    """Replaces a receiver's packet handler: one (arrival, latency) per frame, nothing decoded."""
    frames = arrivals.setdefault(mid, [])

    async def handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        if not packet.marker:
            return
        now = time.time()
        latency = float("nan")
        if len(packet.payload) >= TRAILER.size:
            magic, sent = TRAILER.unpack(packet.payload[-TRAILER.size:])
            if magic == MAGIC:
                latency = now - sent
        if not frames:
            events.put(("ready", name))
        frames.append((now, latency))

    return handle_rtp_packet


def run_client(name: str, publish: bool, port: int, loop_frames: list[bytes], events: Any, stop: Any) -> None:
    asyncio.run(_client_main(name, publish, port, loop_frames, events, stop))


def run_simulcast_client(name: str, publish: bool, port: int, loops: tuple[list[bytes], list[bytes]], events: Any,
                         stop: Any) -> None:
    """``run_client`` whose publisher sends two simulcast layers (``loops``: high, low)."""
    asyncio.run(_client_main(name, publish, port, loops[0], events, stop, low_frames=loops[1] if publish else None))


async def _client_main(name: str, publish: bool, port: int, loop_frames: list[bytes], events: Any, stop: Any,
                       low_frames: list[bytes] | None = None) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates

    policy = HostCandidatePolicy("127.0.0.1", ("127.0.0.1",), *PEER_PORTS)
    arrivals: dict[str, list[tuple[float, float]]] = {}

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await send_json(writer, {"name": name, "publish": publish})
    # max-bundle: aiortc's default policy breaks a first offer with two m-lines of a kind.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    simulcast = publish and low_frames is not None
    track = _loop_track(loop_frames) if publish and not simulcast else None
    tapped: set[str] = set()
    layers: list[asyncio.Task[None]] = []

    async def negotiate() -> None:
        while True:
            offer = await read_json(reader)
            if offer is None:
                return
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            transceivers = {t.mid: t for t in pc.getTransceivers()}
            published: tuple[str, Any] | None = None
            for mid, direction, _publisher in offer["slots"]:
                transceiver = transceivers[mid]
                if direction == "publish" and simulcast:
                    transceiver.direction = "sendonly"
                    published = (mid, transceiver)
                elif direction == "publish" and track is not None and transceiver.sender.track is None:
                    transceiver.sender.replaceTrack(track)
                    transceiver.direction = "sendonly"
                    transceiver.sender._send_keyframe = track.keyframe
                elif direction == "subscribe" and mid not in tapped:
                    tapped.add(mid)
                    transceiver.receiver._handle_rtp_packet = _light_receiver(mid, arrivals, events, name)
            configure_host_candidates(pc, policy)
            await pc.setLocalDescription(await pc.createAnswer())
            sdp = pc.localDescription.sdp
            if published is not None and low_frames is not None:
                sdp, pt, ids = _simulcast_answer(sdp, offer["sdp"], published[0])
                if not layers:
                    layers.append(asyncio.ensure_future(
                        _send_layers(published[1], published[0], pt, ids, (low_frames, loop_frames))))
            await send_json(writer, {"sdp": sdp})

    task = asyncio.ensure_future(negotiate())
    while not stop.is_set():
        await asyncio.sleep(0.2)
    events.put(("arrivals", name, arrivals))
    task.cancel()
    for sending in layers:
        sending.cancel()
    writer.close()
    await pc.close()


# ---------------------------------------------------------------- simulcast publisher

# A camera as Chromium sends it at the meeting page's "standard" quality: two RID layers
# (tests/signaling/sfu/test_simulcast.py), here 320x180 at 150 kbit/s and the fan-out's own
# 640x360 loop at 1 Mbit/s. aiortc cannot send simulcast: the bench's publisher packetizes
# both pre-encoded loops itself, one SSRC per layer, each packet naming its MID and RID, and
# answers with RID lines and no SSRC lines (as Chromium does); keyframes come with each loop
# (every LOOP_FRAMES frames), PLIs are not answered.
SIMULCAST_RIDS = ("l", "m")
LOW_WIDTH, LOW_HEIGHT, LOW_BITRATE = 320, 180, 150_000
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


def simulcast_loops(high: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The loops a simulcast publisher sends: ``high`` (the fan-out's loop) and a low one."""
    return high, encode_loop(LOW_WIDTH, LOW_HEIGHT, LOW_BITRATE)


def _simulcast_answer(answer: str, offer: str, mid: str) -> tuple[str, int, dict[str, int]]:
    """``answer`` sending SIMULCAST_RIDS on ``mid``; VP8's payload type and the MID/RID extension ids."""
    import itertools
    import re

    from signaling.sfu.simulcast import RID_URI

    def section(sdp: str) -> tuple[int, int]:
        starts = [m.start() for m in re.finditer(r"^m=", sdp, re.MULTILINE)] + [len(sdp)]
        for begin, end in itertools.pairwise(starts):
            if re.search(rf"^a=mid:{re.escape(mid)}\r?$", sdp[begin:end], re.MULTILINE):
                return begin, end
        raise ValueError(f"no m-line {mid}")

    begin, end = section(offer)
    offered = {uri: int(ext) for ext, uri in re.findall(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", offer[begin:end], re.MULTILINE)}
    ids = {"mid": offered[MID_URI], "rid": offered[RID_URI]}
    begin, end = section(answer)
    lines = [line for line in answer[begin:end].split("\r\n") if line and not line.startswith(("a=ssrc:", "a=ssrc-group:"))]
    pt = next(int(m.group(1)) for line in lines if (m := re.match(r"a=rtpmap:(\d+) VP8/90000", line)))
    lines += [f"a=extmap:{ids['rid']} {RID_URI}", *(f"a=rid:{rid} send" for rid in SIMULCAST_RIDS),
              "a=simulcast:send " + ";".join(SIMULCAST_RIDS)]
    return answer[:begin] + "\r\n".join(lines) + "\r\n" + answer[end:], pt, ids


async def _send_layers(transceiver: Any, mid: str, pt: int, ids: dict[str, int], loops: tuple[list[bytes], ...]) -> None:
    """Send each loop of ``loops`` (lowest first) as one RID layer of ``transceiver``, at FPS, until cancelled."""
    import random

    import av
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    from signaling.sfu.simulcast import RID_URI

    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=ids["mid"], uri=MID_URI),
        RTCRtpHeaderExtensionParameters(id=ids["rid"], uri=RID_URI)]))
    transport = transceiver.sender.transport
    while transport.state != "connected":
        await asyncio.sleep(0.05)
    # Per layer: RID, frames, SSRC, packetizer (VP8 picture ids); sequence numbers apart.
    layers = [(rid, frames, random.getrandbits(32), Vp8Encoder()) for rid, frames in zip(SIMULCAST_RIDS, loops)]
    sequence = {rid: random.getrandbits(16) for rid in SIMULCAST_RIDS}
    origin = random.getrandbits(32)
    start, count = time.time(), 0
    try:
        while True:
            await asyncio.sleep(max(0.0, start + count / FPS - time.time()))
            for rid, frames, ssrc, packetizer in layers:
                packet = av.Packet(frames[count % LOOP_FRAMES] + TRAILER.pack(MAGIC, time.time()))
                packet.pts, packet.time_base = count, Fraction(1, FPS)
                payloads, timestamp = packetizer.pack(packet)
                for i, payload in enumerate(payloads):
                    rtp = RtpPacket(payload_type=pt, sequence_number=sequence[rid],
                                    timestamp=(origin + timestamp) & 0xFFFFFFFF, ssrc=ssrc)
                    rtp.payload, rtp.marker = payload, int(i == len(payloads) - 1)
                    rtp.extensions.mid, rtp.extensions.rtp_stream_id = mid, rid
                    await transport._send_rtp(rtp.serialize(extensions))
                    sequence[rid] = (sequence[rid] + 1) & 0xFFFF
            count += 1
    except ConnectionError:
        pass  # the run ended


# ---------------------------------------------------------------- Janus

# Janus's libnice never gathers loopback candidates, so Janus runs in a network
# namespace of the bench's own, linked to this one by a veth pair: a /30 of
# IPv4 link-local addresses (never routed) that exists only for this run. The
# peers stay in this namespace and bind to the host end; nothing else is sent to.
JANUS_BIN = "/usr/bin/janus"
JANUS_LIB = "/usr/lib/x86_64-linux-gnu/janus"
JANUS_NETNS = "hirfa-bench-janus"
JANUS_HOST_IF, JANUS_NS_IF = "hirfa-jh0", "hirfa-jn0"
JANUS_HOST_ADDR, JANUS_NS_ADDR, JANUS_PREFIX = "169.254.203.1", "169.254.203.2", 30
JANUS_HTTP_PORT = 8088
JANUS_FEED = 1


def janus_unavailable() -> str | None:
    """Why Janus cannot be driven here, or None when it can."""
    import shutil

    if not os.path.exists(JANUS_BIN):
        return f"Janus not driven: {JANUS_BIN} is missing (Debian package janus)"
    if shutil.which("ip") is None:
        return "Janus not driven: the ip command (iproute2) is missing"
    if os.geteuid() != 0:
        return "Janus not driven: making its network namespace needs root"
    return None


def _janus_config(folder: str) -> None:
    """Janus's configuration: videoroom and the HTTP transport only, ICE and HTTP on the veth end."""
    plugins = sorted(n for n in os.listdir(f"{JANUS_LIB}/plugins") if n.endswith(".so") and "videoroom" not in n)
    transports = sorted(n for n in os.listdir(f"{JANUS_LIB}/transports") if n.endswith(".so") and "http" not in n)
    files = {
        "janus.jcfg": f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{JANUS_LIB}/plugins"
    transports_folder = "{JANUS_LIB}/transports"
    events_folder = "{JANUS_LIB}/events"
    loggers_folder = "{JANUS_LIB}/loggers"
    debug_level = 3
    session_timeout = 60
}}
media: {{
    ipv6 = false
    rtp_port_range = "20000-29999"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{JANUS_NS_IF}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{','.join(plugins)}"
}}
transports: {{
    disable = "{','.join(transports)}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
""",
        "janus.transport.http.jcfg": f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {JANUS_HTTP_PORT}
    ip = "{JANUS_NS_ADDR}"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""",
        "janus.plugin.videoroom.jcfg": "general: {\n}\n",
    }
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(text)


class JanusHost:
    """Janus in a network namespace of its own, reached over a veth pair.

    Guarantees: on exit (normal or not) Janus is stopped, the namespace and both
    veth ends are deleted and the configuration folder removed; every wait is
    bounded. ``pid`` is the janus process itself (``ip netns exec`` execs it).
    """

    def __init__(self) -> None:
        self.folder = ""
        self.process: Any = None
        self.pid = 0
        self.base = f"http://{JANUS_NS_ADDR}:{JANUS_HTTP_PORT}/janus"

    @staticmethod
    def _ip(*args: str, check: bool = True) -> None:
        subprocess.run(["ip", *args], check=check, capture_output=True, timeout=20)

    def _remove_links(self) -> None:
        self._ip("netns", "del", JANUS_NETNS, check=False)
        self._ip("link", "del", JANUS_HOST_IF, check=False)

    def __enter__(self) -> Self:
        import tempfile

        try:
            self._remove_links()  # what an interrupted earlier run may have left (our own names only)
            self._ip("netns", "add", JANUS_NETNS)
            self._ip("link", "add", JANUS_HOST_IF, "type", "veth", "peer", "name", JANUS_NS_IF)
            self._ip("link", "set", JANUS_NS_IF, "netns", JANUS_NETNS)
            self._ip("addr", "add", f"{JANUS_HOST_ADDR}/{JANUS_PREFIX}", "dev", JANUS_HOST_IF)
            self._ip("link", "set", JANUS_HOST_IF, "up")
            inside = ("netns", "exec", JANUS_NETNS, "ip")
            self._ip(*inside, "addr", "add", f"{JANUS_NS_ADDR}/{JANUS_PREFIX}", "dev", JANUS_NS_IF)
            self._ip(*inside, "link", "set", JANUS_NS_IF, "up")
            self._ip(*inside, "link", "set", "lo", "up")
            self.folder = tempfile.mkdtemp(prefix="hirfa-janus-")
            _janus_config(self.folder)
            log = open(os.path.join(self.folder, "janus.log"), "wb")
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", JANUS_NETNS, JANUS_BIN, "-C", os.path.join(self.folder, "janus.jcfg"),
                 "-F", self.folder, "--disable-colors"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            self.pid = self.process.pid
            deadline = time.time() + 30
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"janus exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    _janus_http(f"{self.base}/info", None, timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"janus's HTTP API did not answer within 30 s: {self.log_tail()}")
                    time.sleep(0.5)
        except BaseException:
            self.__exit__()
            raise
        return self

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(os.path.join(self.folder, "janus.log"), errors="replace") as handle:
                return " | ".join(line.strip() for line in handle.readlines()[-lines:])
        except OSError:
            return ""

    def __exit__(self, *_exc: object) -> None:
        import shutil

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._remove_links()
        if self.folder and not os.environ.get("SFU_BENCH_DEBUG"):
            shutil.rmtree(self.folder, ignore_errors=True)


def _janus_http(url: str, body: dict[str, Any] | None, timeout: float = 40) -> dict[str, Any]:
    """One request to Janus's HTTP API (POST with ``body``, else GET); its JSON answer."""
    import urllib.request

    data = None
    if body is not None:
        body = {**body, "transaction": os.urandom(6).hex()}
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("janus") == "error":
        raise RuntimeError(f"janus: {answer['error']}")
    return answer


class JanusSession:
    """A Janus session with one videoroom handle, over the HTTP API (blocking calls)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = _janus_http(base, {"janus": "create"})["data"]["id"]
        self.handle = _janus_http(f"{base}/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})["data"]["id"]

    def request(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        answer = _janus_http(f"{self.base}/{self.session}/{self.handle}", message)
        data = answer.get("plugindata", {}).get("data", {})
        if data.get("error"):
            raise RuntimeError(f"janus videoroom: {data['error']}")
        return answer

    def wait_jsep(self, timeout: float = 30) -> dict[str, Any]:
        """Long-polls the session's events until one carries a JSEP (bounded by ``timeout``)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            event = _janus_http(f"{self.base}/{self.session}?maxev=1", None)
            data = event.get("plugindata", {}).get("data", {})
            if data.get("error"):
                raise RuntimeError(f"janus videoroom: {data['error']}")
            if event.get("jsep"):
                return event["jsep"]
        raise TimeoutError("janus sent no JSEP")

    def keepalive(self) -> None:
        _janus_http(f"{self.base}/{self.session}", {"janus": "keepalive"})

    def destroy(self) -> None:
        try:
            _janus_http(f"{self.base}/{self.session}", {"janus": "destroy"}, timeout=5)
        except (OSError, RuntimeError):
            pass


def run_janus_client(name: str, publish: bool, base: str, room: int, loop_frames: list[bytes], events: Any,
                     stop: Any) -> None:
    asyncio.run(_janus_client_main(name, publish, base, room, loop_frames, events, stop))


async def _janus_client_main(name: str, publish: bool, base: str, room: int, loop_frames: list[bytes],
                             events: Any, stop: Any) -> None:
    """The same light peer as ``_client_main``, negotiating through Janus's videoroom instead."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates

    policy = HostCandidatePolicy(JANUS_HOST_ADDR, (JANUS_HOST_ADDR,), 45000, 45999)
    arrivals: dict[str, list[tuple[float, float]]] = {}
    janus = await asyncio.to_thread(JanusSession, base)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        if publish:
            track = _loop_track(loop_frames)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            prefs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
            transceiver.setCodecPreferences(prefs)
            transceiver.sender._send_keyframe = track.keyframe
            offer = await pc.createOffer()
            configure_host_candidates(pc, policy)
            await pc.setLocalDescription(offer)
            await asyncio.to_thread(janus.request, {
                "request": "joinandconfigure", "ptype": "publisher", "room": room, "id": JANUS_FEED,
                "display": name, "audio": False, "video": True,
            }, {"type": "offer", "sdp": pc.localDescription.sdp})
            jsep = await asyncio.to_thread(janus.wait_jsep)
            await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
        else:
            await asyncio.to_thread(janus.request, {
                "request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": JANUS_FEED}],
            })
            jsep = await asyncio.to_thread(janus.wait_jsep)
            await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video" and transceiver.mid is not None:
                    transceiver.direction = "recvonly"
                    transceiver.receiver._handle_rtp_packet = _light_receiver(transceiver.mid, arrivals, events, name)
            configure_host_candidates(pc, policy)
            await pc.setLocalDescription(await pc.createAnswer())
            await asyncio.to_thread(janus.request, {"request": "start", "room": room},
                                    {"type": "answer", "sdp": pc.localDescription.sdp})
        last_keepalive = time.time()
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if time.time() - last_keepalive > 15:
                last_keepalive = time.time()
                await asyncio.to_thread(janus.keepalive)
    except Exception as error:  # reported, not raised: the driver counts who received
        print(f"{name}: janus client failed: {error!r}", file=sys.stderr)
        while not stop.is_set():
            await asyncio.sleep(0.2)
    finally:
        events.put(("arrivals", name, arrivals))
        await asyncio.to_thread(janus.destroy)
        await pc.close()


def measure_janus(host: JanusHost, *, subscribers: int, seconds: float, loop_frames: list[bytes],
                  room: int) -> dict[str, Any]:
    """The fan-out load through Janus's videoroom (room ``room``); same answer as ``measure``."""
    admin = JanusSession(host.base)
    try:
        admin.request({"request": "create", "room": room, "publishers": 1, "videocodec": "vp8",
                       "bitrate": 0, "fir_freq": 0, "notify_joining": False, "permanent": False})
        ctx = multiprocessing.get_context("spawn")
        return _drive(ctx, host.pid, run_janus_client, (host.base, room), publishers=1, subscribers=subscribers,
                      seconds=seconds, loop_frames=loop_frames)
    finally:
        try:
            admin.request({"request": "destroy", "room": room, "permanent": False})
        except (OSError, RuntimeError):
            pass
        admin.destroy()


# ---------------------------------------------------------------- driver


def measure(mode: str, *, publishers: int, subscribers: int, seconds: float, loop_frames: list[bytes],
            profile: str | None = None, record: bool = False, simulcast: bool = False) -> dict[str, Any]:
    """Run one load; answers server CPU (% of a core), fps per received stream, latencies (ms);
    with ``record``, the meeting is recorded and ``recording`` holds the recorder's figures;
    with ``simulcast``, publishers send two RID layers and ``layers`` counts the subscriptions
    by the layer forwarded to them at the end (SFU only)."""
    import tempfile

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="hirfa-bench-rec-") as record_dir:
        server = ctx.Process(target=run_server, args=(mode, ports, None if record else profile,
                                                      record_dir if record else None))
        server.start()
        assert server.pid is not None  # started
        port = ports.get(timeout=60)
        try:
            client, loops = (run_simulcast_client, simulcast_loops(loop_frames)) if simulcast else (run_client, loop_frames)
            result = _drive(ctx, server.pid, client, (port,), publishers=publishers, subscribers=subscribers,
                            seconds=seconds, loop_frames=loops, profile=profile, signal_window=record)
        finally:
            with socket.create_connection(("127.0.0.1", port)) as quit_socket:
                quit_socket.sendall(b'{"quit": true}\n')
            if mode == "sfu":
                with contextlib.suppress(queue.Empty):
                    result["layers"] = ports.get(timeout=30)
            server.join(timeout=30)
            if server.is_alive():
                server.terminate()
        if record:
            with open(os.path.join(record_dir, "bench.json")) as figures:
                result["recording"] = json.load(figures)
    return result


def measure_spread(*, subscribers: int, seconds: float, loop_frames: list[bytes]) -> dict[str, Any]:
    """One publisher and ``subscribers`` on two SFU processes joined by a pipe: the publisher
    and the even subscribers on worker a, the odd ones on b. Answers each worker's CPU
    (% of a core) and the fps of each worker's subscribers."""
    ctx = multiprocessing.get_context("spawn")
    servers, ports, pipes = [], [], []
    try:
        for _ in range(2):
            queue_ = ctx.Queue()
            server = ctx.Process(target=run_server, args=("sfu-pipe", queue_, None))
            server.start()
            servers.append(server)
            ports.append(queue_.get(timeout=60))
            pipes.append(queue_.get(timeout=60))
        key = secrets.token_hex(32)
        for port, other in ((ports[0], pipes[1]), (ports[1], pipes[0])):
            with socket.create_connection(("127.0.0.1", port)) as control:
                control.sendall(json.dumps({"pipe": other, "key": key}).encode() + b"\n")
                control.recv(100)
        result = _drive(ctx, [s.pid for s in servers if s.pid is not None], run_client, (ports[0],), publishers=1,
                        subscribers=subscribers, seconds=seconds, loop_frames=loop_frames,
                        subscriber_args=lambda index: (ports[index % 2],))
    finally:
        for server, port in zip(servers, ports, strict=False):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as quit_socket:
                quit_socket.sendall(b'{"quit": true}\n')
            server.join(timeout=30)
            if server.is_alive():
                server.terminate()
    return result


def _drive(ctx: Any, server_pid: int | list[int], client: Any, client_args: tuple[Any, ...], *, publishers: int,
           subscribers: int, seconds: float, loop_frames: Any, profile: str | None = None,
           signal_window: bool = False, subscriber_args: Any = None) -> dict[str, Any]:
    """Start the peers, measure ``server_pid``'s CPU over the window, collect what the subscribers saw.

    The window opens two seconds after every receiving peer got its first frame
    (or after a bounded wait) and lasts ``seconds``; the same definition for
    every server driven. Every client process is joined (or terminated) before
    this returns.
    """
    import psutil

    events = ctx.Queue()
    stop = ctx.Event()
    receivers = subscribers + (publishers if publishers > 1 else 0)
    clients = [ctx.Process(target=client, args=(f"pub{i}", True, *client_args, loop_frames, events, stop))
               for i in range(publishers)]
    for process in clients:
        process.start()
    time.sleep(1.0)
    subs = [ctx.Process(target=client, args=(f"sub{i}", False, *(subscriber_args(i) if subscriber_args else client_args),
                                             loop_frames, events, stop))
            for i in range(subscribers)]
    for process in subs:
        process.start()
    clients += subs
    ready: set[str] = set()
    reports: list[tuple[Any, str, dict[str, list[tuple[float, float]]]]] = []
    try:
        deadline = time.time() + 60 + 3 * len(clients)
        while len(ready) < receivers and time.time() < deadline:
            try:
                event = events.get(timeout=1)
            except queue.Empty:
                continue
            if event[0] == "ready":
                ready.add(event[1])
        time.sleep(2.0)  # let the keyframe requests of the last joiners settle
        procs = [psutil.Process(pid) for pid in (server_pid if isinstance(server_pid, list) else [server_pid])]
        proc = procs[0]
        if profile or signal_window:
            proc.send_signal(signal.SIGUSR1)
        befores, start = [p.cpu_times() for p in procs], time.time()
        time.sleep(seconds)
        afters, end = [p.cpu_times() for p in procs], time.time()
        if profile or signal_window:
            proc.send_signal(signal.SIGUSR2)
        cpu_each = [100.0 * ((a.user - b.user) + (a.system - b.system)) / (end - start)
                    for a, b in zip(afters, befores, strict=True)]
        cpu_pct = sum(cpu_each)
        stop.set()
        deadline = time.time() + 120
        while len(reports) < len(clients) and time.time() < deadline:
            try:
                event = events.get(timeout=1)
            except Exception:
                if not any(process.is_alive() for process in clients) and events.empty():
                    break
                continue
            if event[0] == "arrivals":
                reports.append(event)
            elif event[0] == "ready":
                ready.add(event[1])
    finally:
        stop.set()
        for process in clients:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    rates: list[float] = []
    rates_by_name: dict[str, list[float]] = {}
    latencies: list[float] = []
    for _, name, arrivals in reports:
        for frames in arrivals.values():
            window = [(t, lat) for t, lat in frames if start <= t <= end]
            rates.append(len(window) / (end - start))
            rates_by_name.setdefault(name, []).append(len(window) / (end - start))
            latencies.extend(lat * 1000 for _, lat in window if not math.isnan(lat))
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None

    return {"cpu_pct": cpu_pct, "cpu_each": cpu_each, "fps": statistics.mean(rates) if rates else 0.0,
            "fps_by_name": rates_by_name, "streams_seen": len(rates),
            "ready": len(ready), "p50": pct(0.5), "p95": pct(0.95), "window": end - start}


def recording_figures(plain: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """The recording's cost from a run without and one with the meeting recorded."""
    figures = recorded["recording"]
    streams = max(1, figures["streams"])
    window = recorded["window"]
    return {
        "recorded_streams": figures["streams"],
        "recording_cpu_pct_per_stream": round(100.0 * figures["tap_cpu_s"] / window / streams, 4),
        "recording_cpu_delta_pct": round(recorded["cpu_pct"] - plain["cpu_pct"], 2),
        "recording_mb_per_min": round(figures["bytes"] / 1e6 / (window / 60), 3),
        "recording_decoders": figures["decoders"],
        "recording_subscriber_fps": round(recorded["fps"], 2),
    }


def spread_figures(one: dict[str, Any], spread: dict[str, Any]) -> dict[str, Any]:
    """The spread run beside the one-worker run of the same K."""
    def fps(names: list[str]) -> float | None:
        rates = [r for name in names for r in spread["fps_by_name"].get(name, [])]
        return round(statistics.mean(rates), 2) if rates else None

    names = sorted(spread["fps_by_name"])
    return {
        "worker_cpu_pct": [round(c, 2) for c in spread["cpu_each"]],
        "total_cpu_pct": round(spread["cpu_pct"], 2),
        "one_worker_cpu_pct": round(one["cpu_pct"], 2),
        "busiest_ratio": round(max(spread["cpu_each"]) / one["cpu_pct"], 2) if one["cpu_pct"] else None,
        "subscriber_fps_a": fps([n for n in names if n.startswith("sub") and int(n[3:]) % 2 == 0]),
        "subscriber_fps_b": fps([n for n in names if n.startswith("sub") and int(n[3:]) % 2 == 1]),
        "ready": spread["ready"],
        "p50": spread["p50"],
        "p95": spread["p95"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ks", default="1,4,8,16", help="fan-out sizes (subscribers of one publisher)")
    parser.add_argument("--ns", default="4,8", help="meeting sizes (everyone publishes); empty for none")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-mediarelay", action="store_true")
    parser.add_argument("--janus", action=argparse.BooleanOptionalAction, default=None,
                        help="drive Janus too (default: when /usr/bin/janus exists and we are root)")
    parser.add_argument("--profile", help="write the SFU server's cProfile (CPU time, measurement window) of the fan-out runs here")
    parser.add_argument("--recording", action="store_true",
                        help="run each SFU load again with the meeting recorded; report the recording's cost")
    parser.add_argument("--spread", action="store_true",
                        help="run each fan-out K again spread over two SFU processes joined by a pipe")
    parser.add_argument("--simulcast", action="store_true",
                        help="the fan-out's SFU publisher sends two simulcast layers (MediaRelay and Janus: one stream)")
    args = parser.parse_args()
    loop_frames = encode_loop()
    fanout: list[dict[str, Any]] = []
    meetings: list[dict[str, Any]] = []
    janus_note = janus_unavailable() if args.janus is not False else "Janus not driven: --no-janus"
    with contextlib.ExitStack() as stack:
        janus = None
        if janus_note is None:
            try:
                janus = stack.enter_context(JanusHost())
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                janus_note = f"Janus not driven: {error}"
        if janus_note and args.janus:
            print(janus_note, file=sys.stderr)
        _run_loads(args, loop_frames, janus, janus_note, fanout, meetings)
    if args.json:
        print(json.dumps({
            "command": " ".join(["python", "bench/sfu.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": os.getloadavg()},
            "fanout": fanout,
            "meeting": meetings,
        }, indent=2))


def _run_loads(args: Any, loop_frames: list[bytes], janus: JanusHost | None, janus_note: str | None,
               fanout: list[dict[str, Any]], meetings: list[dict[str, Any]]) -> None:

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    for k in [int(x) for x in args.ks.split(",") if x]:
        sfu = measure("sfu", publishers=1, subscribers=k, seconds=args.seconds, loop_frames=loop_frames,
                      profile=args.profile, simulcast=args.simulcast)
        relay = None if args.no_mediarelay else measure(
            "mediarelay", publishers=1, subscribers=k, seconds=args.seconds, loop_frames=loop_frames)
        gateway, note = None, janus_note
        if janus is not None:
            try:
                gateway = measure_janus(janus, subscribers=k, seconds=args.seconds, loop_frames=loop_frames,
                                        room=1000 + k)
            except (RuntimeError, OSError) as error:
                note = f"Janus run failed at K={k}: {error}; {janus.log_tail()}"
            if gateway is not None and gateway["ready"] < k:
                note = f"Janus: only {gateway['ready']} of {k} subscribers received; {janus.log_tail()}"
                gateway = None
        row = {
            "K": k,
            "cpu_pct_per_stream": round(sfu["cpu_pct"] / k, 3),
            "server_cpu_pct": round(sfu["cpu_pct"], 2),
            "subscriber_fps": round(sfu["fps"], 2),
            "added_latency_p50_ms": sfu["p50"],
            "added_latency_p95_ms": sfu["p95"],
            "mediarelay_cpu_pct": round(relay["cpu_pct"], 2) if relay else None,
            "mediarelay_subscriber_fps": round(relay["fps"], 2) if relay else None,
            "mediarelay_cpu_ratio": round(relay["cpu_pct"] / sfu["cpu_pct"], 2) if relay and sfu["cpu_pct"] else None,
            "janus_cpu_pct": round(gateway["cpu_pct"], 2) if gateway else None,
            "janus_subscriber_fps": round(gateway["fps"], 2) if gateway else None,
            "janus_latency_p50_ms": gateway["p50"] if gateway else None,
            "janus_latency_p95_ms": gateway["p95"] if gateway else None,
            "janus_cpu_ratio": round(gateway["cpu_pct"] / sfu["cpu_pct"], 2) if gateway and sfu["cpu_pct"] else None,
            "layers": sfu.get("layers"),
        }
        if args.recording:
            row.update(recording_figures(sfu, measure("sfu", publishers=1, subscribers=k, seconds=args.seconds,
                                                      loop_frames=loop_frames, record=True)))
            say(f"K={k:2d} recording: {row['recording_cpu_pct_per_stream']}%/recorded stream "
                f"({row['recorded_streams']} streams, server delta {row['recording_cpu_delta_pct']}%), "
                f"{row['recording_mb_per_min']} MB/min, decoders {row['recording_decoders']}")
        if args.spread:
            row["spread"] = spread_figures(sfu, measure_spread(subscribers=k, seconds=args.seconds,
                                                               loop_frames=loop_frames))
            say(f"K={k:2d} spread over two workers: {row['spread']}")
        if note:
            row["note"] = note
        fanout.append(row)
        say(f"K={k:2d} sfu: {row['server_cpu_pct']:6.2f}% cpu, {row['cpu_pct_per_stream']:6.3f}%/stream, "
            f"{row['subscriber_fps']:5.1f} fps, latency p50 {row['added_latency_p50_ms']} ms "
            f"p95 {row['added_latency_p95_ms']} ms | mediarelay: {row['mediarelay_cpu_pct']}% cpu, "
            f"{row['mediarelay_subscriber_fps']} fps, ratio {row['mediarelay_cpu_ratio']} | janus: "
            f"{row['janus_cpu_pct']}% cpu, {row['janus_subscriber_fps']} fps, ratio {row['janus_cpu_ratio']}"
            + (f" ({note})" if note else ""))
    for n in [int(x) for x in args.ns.split(",") if x]:
        result = measure("sfu", publishers=n, subscribers=0, seconds=args.seconds, loop_frames=loop_frames)
        streams = n * (n - 1)
        row = {
            "N": n,
            "K": n - 1,
            "streams": streams,
            "cpu_pct_per_stream": round(result["cpu_pct"] / streams, 3),
            "server_cpu_pct": round(result["cpu_pct"], 2),
            "subscriber_fps": round(result["fps"], 2),
            "added_latency_p50_ms": result["p50"],
            "added_latency_p95_ms": result["p95"],
            "mediarelay_cpu_ratio": None,
            "janus_cpu_ratio": None,
            "note": "meeting load is driven through the SFU only",
        }
        if args.recording:
            row.update(recording_figures(result, measure("sfu", publishers=n, subscribers=0, seconds=args.seconds,
                                                         loop_frames=loop_frames, record=True)))
        meetings.append(row)
        say(f"N={n:2d} meeting: {row['server_cpu_pct']:6.2f}% cpu for {streams} streams, "
            f"{row['cpu_pct_per_stream']:6.3f}%/stream, {row['subscriber_fps']:5.1f} fps, "
            f"latency p50 {row['added_latency_p50_ms']} ms p95 {row['added_latency_p95_ms']} ms")


if __name__ == "__main__":
    main()
