"""Benchmark: one VP8 publisher (about 1 Mbps, 30 fps) to K subscribers.

Every peer runs in its own process on loopback; the server is a separate
process too, so its CPU time is measured alone (psutil). Two servers are
driven with the same load:

* ``sfu``: :mod:`signaling.sfu` (encoded-frame forwarding);
* ``mediarelay``: aiortc's stock ``MediaRelay`` (decode once, encode per
  subscriber).

The publisher sends a pre-encoded VP8 loop, each frame carrying an 8-byte
trailer with its send time, so subscribers (which never decode) measure the
publisher-to-subscriber latency of every frame through the SFU. The trailer is
lost through MediaRelay (it re-encodes), so latency is only reported for the
SFU. Janus is not driven (not installed here): ``janus_cpu_ratio`` is null.

Usage: ``python bench/sfu.py [--ks 1,4,8,16] [--seconds 8] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WIDTH, HEIGHT, FPS, BITRATE = 640, 360, 30, 1_000_000
LOOP_FRAMES = 90


# ---------------------------------------------------------------- signaling


async def send_json(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


async def read_json(reader: asyncio.StreamReader) -> dict | None:
    line = await reader.readline()
    return json.loads(line) if line else None


# ---------------------------------------------------------------- server


def run_server(mode: str, port_queue: multiprocessing.Queue) -> None:
    asyncio.run(_server_main(mode, port_queue))


async def _server_main(mode: str, port_queue: multiprocessing.Queue) -> None:
    from signaling.sfu import Sfu, SfuConfig, SlotDirection, TrackSource

    done = asyncio.Event()
    sfu = Sfu(SfuConfig(port_min=44000, port_max=44999))
    meeting = sfu.meeting("bench")
    relay_state: dict = {"track": None, "waiters": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_json(reader)
        if hello is None:
            return
        if hello.get("quit"):
            done.set()
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
    await done.wait()
    server.close()
    await sfu.close()
    for pc in relay_state.get("pcs", []):
        await pc.close()


async def _serve_sfu(meeting, hello, reader, writer) -> None:
    from signaling.sfu import TrackSource

    wake = asyncio.Event()
    participant = await meeting.join(hello["name"], on_negotiation_needed=lambda p: wake.set())
    if hello.get("publish"):
        participant.publish(TrackSource.CAMERA)
    wake.set()
    while True:
        await wake.wait()
        wake.clear()
        if not participant.negotiation_needed and participant.negotiation_state.value == "stable" and participant.peer_connection.localDescription:
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


async def _serve_relay(state, hello, reader, writer) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates

    policy = HostCandidatePolicy("127.0.0.1", ("127.0.0.1",), 44000, 44999)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    state.setdefault("pcs", []).append(pc)
    state.setdefault("relay", MediaRelay())
    if hello.get("publish"):
        transceiver = pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track) -> None:
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
    prefs = [c for c in __import__("aiortc").RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    transceiver.setCodecPreferences(prefs)
    offer = await pc.createOffer()
    configure_host_candidates(pc, policy)
    await pc.setLocalDescription(offer)
    await send_json(writer, {"sdp": pc.localDescription.sdp, "slots": [[transceiver.mid, "publish" if hello.get("publish") else "subscribe", "pub"]]})
    answer = await read_json(reader)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await reader.read()  # until the client goes away


# ---------------------------------------------------------------- clients


def encode_loop() -> list[bytes]:
    """A VP8 loop of LOOP_FRAMES frames at about BITRATE; frame 0 is the only keyframe."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = BITRATE
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.gop_size = 10_000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "minrate": str(BITRATE), "maxrate": str(BITRATE), "bufsize": str(BITRATE)}
    frames: list[bytes] = []
    noise = os.urandom(WIDTH * HEIGHT * 2)
    for index in range(LOOP_FRAMES + 10):
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for plane_index, plane in enumerate(frame.planes):
            start = (index * 997 * (plane_index + 1)) % (len(noise) - plane.buffer_size)
            plane.update(noise[start:start + plane.buffer_size])
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        for packet in codec.encode(frame):
            frames.append(bytes(packet))
    return frames[:LOOP_FRAMES]


def run_client(name: str, publish: bool, port: int, results: multiprocessing.Queue, seconds: float, warmup: float) -> None:
    asyncio.run(_client_main(name, publish, port, results, seconds, warmup))


async def _client_main(name, publish, port, results, seconds, warmup) -> None:
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates, tap_receiver

    policy = HostCandidatePolicy("127.0.0.1", ("127.0.0.1",), 45000, 45999)
    loop_frames = encode_loop() if publish else []

    class LoopTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.count = 0
            self.start = time.time()

        def keyframe(self) -> None:
            self.index = 0

        async def recv(self):
            self.count += 1
            await asyncio.sleep(max(0.0, self.start + self.count / FPS - time.time()))
            data = loop_frames[self.index] + struct.pack("<d", time.time())
            self.index = (self.index + 1) % LOOP_FRAMES
            packet = av.Packet(data)
            packet.pts = self.count
            packet.time_base = Fraction(1, FPS)
            return packet

    arrivals: list[tuple[float, float]] = []  # (receive time, latency)

    def sink(frame) -> None:
        now = time.time()
        if len(frame.data) >= 8:
            (sent,) = struct.unpack("<d", frame.data[-8:])
            latency = now - sent if 0 <= now - sent < 10 else float("nan")
        else:
            latency = float("nan")
        arrivals.append((now, latency))

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await send_json(writer, {"name": name, "publish": publish})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = LoopTrack() if publish else None
    tapped: set[str] = set()

    async def negotiate() -> None:
        while True:
            offer = await read_json(reader)
            if offer is None:
                return
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            transceivers = {t.mid: t for t in pc.getTransceivers()}
            for mid, direction, _publisher in offer["slots"]:
                transceiver = transceivers[mid]
                if direction == "publish" and track is not None and transceiver.sender.track is None:
                    transceiver.sender.replaceTrack(track)
                    transceiver.direction = "sendonly"
                    transceiver.sender._send_keyframe = track.keyframe
                elif direction == "subscribe" and mid not in tapped:
                    tapped.add(mid)
                    tap_receiver(transceiver.receiver, sink=sink, loss_timeout=0.1)
            configure_host_candidates(pc, policy)
            await pc.setLocalDescription(await pc.createAnswer())
            await send_json(writer, {"sdp": pc.localDescription.sdp})

    task = asyncio.ensure_future(negotiate())
    started = time.time()
    await asyncio.sleep(warmup + seconds + 1.0)
    window = [a for a in arrivals if started + warmup <= a[0] <= started + warmup + seconds]
    results.put({"name": name, "frames": len(window), "seconds": seconds,
                 "latencies": [lat for _, lat in window if lat == lat]})
    task.cancel()
    writer.close()
    await pc.close()


# ---------------------------------------------------------------- driver


def measure(mode: str, k: int, seconds: float) -> dict:
    import psutil

    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()
    results: multiprocessing.Queue = ctx.Queue()
    server = ctx.Process(target=run_server, args=(mode, ports))
    server.start()
    port = ports.get(timeout=60)
    warmup = 4.0 + 0.4 * k
    publisher = ctx.Process(target=run_client, args=("pub", True, port, results, seconds, warmup))
    publisher.start()
    time.sleep(1.0)
    subscribers = [ctx.Process(target=run_client, args=(f"sub{i}", False, port, results, seconds, warmup - 1.0))
                   for i in range(k)]
    for process in subscribers:
        process.start()
    proc = psutil.Process(server.pid)
    time.sleep(warmup + 1.0)  # subscribers measure from their own start + warmup - 1
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    cpu_pct = 100.0 * ((after.user - before.user) + (after.system - before.system)) / seconds
    reports = [results.get(timeout=120) for _ in range(k + 1)]
    for process in [publisher, *subscribers]:
        process.join(timeout=30)
    with socket.create_connection(("127.0.0.1", port)) as quit_socket:
        quit_socket.sendall(b'{"quit": true}\n')
    server.join(timeout=30)
    if server.is_alive():
        server.terminate()
    subs = [r for r in reports if r["name"] != "pub"]
    latencies = sorted(lat * 1000 for r in subs for lat in r["latencies"])
    fps = statistics.mean(r["frames"] / r["seconds"] for r in subs) if subs else 0.0

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None

    return {"cpu_pct": cpu_pct, "fps": fps, "p50": pct(0.5), "p95": pct(0.95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,4,8,16")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-mediarelay", action="store_true")
    args = parser.parse_args()
    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        sfu = measure("sfu", k, args.seconds)
        relay = None if args.no_mediarelay else measure("mediarelay", k, args.seconds)
        per_stream = sfu["cpu_pct"] / k
        row = {
            "K": k,
            "cpu_pct_per_stream": round(per_stream, 3),
            "server_cpu_pct": round(sfu["cpu_pct"], 2),
            "subscriber_fps": round(sfu["fps"], 2),
            "added_latency_p50_ms": sfu["p50"],
            "added_latency_p95_ms": sfu["p95"],
            "mediarelay_cpu_pct": round(relay["cpu_pct"], 2) if relay else None,
            "mediarelay_subscriber_fps": round(relay["fps"], 2) if relay else None,
            "mediarelay_cpu_ratio": round(relay["cpu_pct"] / sfu["cpu_pct"], 2) if relay and sfu["cpu_pct"] else None,
            "janus_cpu_ratio": None,
            "note": "latency is publisher-to-subscriber through the server on loopback; Janus not installed",
        }
        rows.append(row)
        if not args.json:
            print(
                f"K={k:2d} sfu: {row['server_cpu_pct']:6.2f}% cpu, {per_stream:5.3f}%/stream, "
                f"{row['subscriber_fps']:5.1f} fps, latency p50 {row['added_latency_p50_ms']} ms "
                f"p95 {row['added_latency_p95_ms']} ms | mediarelay: {row['mediarelay_cpu_pct']}% cpu, "
                f"{row['mediarelay_subscriber_fps']} fps, ratio {row['mediarelay_cpu_ratio']}",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
