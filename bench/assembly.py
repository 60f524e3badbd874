"""The assembly load of bench/meeting_adapt.py (issue 11): the hub as it runs, load generators, Chromium.

What runs, each in its own process, all on 127.0.0.1:

* Redis (a ``redis-server`` of the bench's own), daphne serving the hub (``tests.server_asgi``,
  SQLite in the run's folder) with ``HIRFA_SFU_PLACEMENT=workers``, and one ``hirfa sfu`` worker
  process holding the meeting: the SFU's CPU and memory are that process's;
* ``--generators`` load-generator processes (this file's ``generator`` command), each holding
  many participants on one event loop: a participant is a websocket to the hub and an aiortc
  peer connection answering the server's offers, as the meeting page does. The first
  ``cameras`` participants publish a camera and a microphone, the others a microphone with DTX
  (one Opus packet of silence every 400 ms, as a browser's DTX sends). Media is pre-encoded
  (bench/netlab.py's 360p VP8 loop at 500 kbit/s and Opus tone, encoded once by the driver; the
  cameras' participants speak, the tone, unless told to be silent: the ``voice`` command):
  a peer only packetizes. Load generators receive no video (``receive_video: false``); a silent
  participant drops what the server sends him on arrival (RTP/RTCP, before SRTP), so the
  generators leave the CPU to the server;
* one Chromium (``/usr/bin/chromium``, playwright) on the meeting page, joining last, its camera
  turned off once in: the subscriber whose figures are reported.

Participants join one after the other (each until his peer connection is connected). Every
offer a participant receives is timed, so that each silent join's renegotiations of the
participants already there are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import chat_fanout, netlab

HOST = "127.0.0.1"
DTX_INTERVAL = 0.4  # a browser's Opus DTX sends one packet of comfort noise every 400 ms
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
]


class Ports:
    """The bench's ports from one base: TCP for daphne, Redis and each SFU worker's /metrics (the
    first free in base..base+99: another process's outgoing connection may hold any port), UDP
    ranges for the SFU workers (base+100..base+399, split among them) and for the load generators
    (base+400..base+999, split among them), and UDP base+90+i for worker i's pipe (a meeting
    spread over several workers)."""

    #: SFU workers the bench can start (one operations port each).
    MAX_WORKERS = 4

    def __init__(self, base: int) -> None:
        import socket

        self.base = base
        free = []
        wanted = 2 + self.MAX_WORKERS
        for port in range(base, base + 100):
            with socket.socket() as sock:
                try:
                    sock.bind((HOST, port))
                except OSError:
                    continue
            free.append(port)
            if len(free) == wanted:
                break
        if len(free) < wanted:
            raise RuntimeError(f"no {wanted} free TCP ports in {base}..{base + 99}")
        self.http, self.redis = free[:2]
        self.ops_ports = free[2:]
        self.ops = self.ops_ports[0]

    @property
    def sfu(self) -> tuple[int, int]:
        return self.sfu_range(0, 1)

    def sfu_range(self, index: int, count: int) -> tuple[int, int]:
        width = 300 // count
        return self.base + 100 + index * width, self.base + 100 + (index + 1) * width - 1

    def pipe(self, index: int) -> int:
        return self.base + 90 + index

    def generator(self, index: int, count: int) -> tuple[int, int]:
        width = 600 // count
        return self.base + 400 + index * width, self.base + 400 + (index + 1) * width - 1


# ---------------------------------------------------------------- pre-encoded media


def encode_silence() -> list[bytes]:
    """Opus packets of silence (20 ms, mono, as a muted or quiet microphone sends with DTX)."""
    import av

    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate = 32_000
    codec.format, codec.layout, codec.sample_rate = "s16", "mono", 48_000
    codec.options = {"application": "voip"}
    codec.time_base = Fraction(1, 48_000)
    packets: list[bytes] = []
    for index in range(50):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(bytes(1920))
        frame.sample_rate = 48_000
        frame.pts = index * 960
        frame.time_base = Fraction(1, 48_000)
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets[-10:]


def write_clip(folder: str, size: tuple[int, int] = (640, 360)) -> str:
    """Camera loop (500 kbit/s at 360p), tone and silence, encoded once; the generators only
    packetize them."""
    path = os.path.join(folder, "clip.pickle")
    with open(path, "wb") as handle:
        pickle.dump({**netlab.encode_clip(500_000, *size), "tone": netlab.encode_audio("tone"),
                     "beep": netlab.encode_audio("beep"), "silence": encode_silence()}, handle)
    return path


# ---------------------------------------------------------------- a load generator (its own process)


def _voice_track(tone: list[bytes], silence: list[bytes], speaking: bool) -> Any:
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class Voice(MediaStreamTrack):
        """A microphone with DTX, as Chromium sends one: while ``speaking``, a tone packet every
        20 ms; while silent, every 400 ms a frame of comfort noise, then a one-byte DTX frame (the
        TOC alone) 20 ms later, then nothing. Timestamps follow the wall clock from the first
        packet (a frame that falls 200 ms behind is skipped, as a capture device drops it)."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.speaking = speaking
            self.slot = 0  # the next 20 ms frame
            self.epoch: float | None = None

        async def recv(self) -> Any:
            if self.epoch is None:
                self.epoch = time.time()
            behind = time.time() - (self.epoch + self.slot * 0.02)
            if behind > 0.2:
                self.slot += int(behind / 0.02)
            while True:
                slot = self.slot
                self.slot += 1
                period = round(DTX_INTERVAL / 0.02)
                if self.speaking:
                    payload = tone[slot % len(tone)]
                elif slot % period == 0:
                    payload = silence[(slot // period) % len(silence)]
                elif slot % period == 1:
                    payload = bytes([silence[0][0] & 0xFC])
                else:
                    continue
                break
            await asyncio.sleep(max(0.0, self.epoch + slot * 0.02 - time.time()))
            packet = av.Packet(payload)
            packet.pts = slot * 960
            packet.time_base = Fraction(1, 48_000)
            return packet

    return Voice()


# Classic BPF programs (struct sock_filter: code, jt, jf, k; jumps skip that many instructions)
# for a UDP socket, which sees the datagram from its UDP header: the payload's first byte is at
# offset 8. RTP and RTCP share first bytes 128-191 (RFC 7983; STUN is 0-3, DTLS 20-63); RTCP's
# second byte (its packet type) is 192-223 (RFC 5761).
_BPF_ACCEPT, _BPF_DROP = (0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)
_BPF_DROP_MEDIA = (
    (0x30, 0, 0, 8),  # ldb [8]
    (0x35, 0, 2, 128),  # jge #128 ? next : accept
    (0x35, 1, 0, 192),  # jge #192 ? accept : drop
    _BPF_DROP,
    _BPF_ACCEPT,
)
_BPF_DROP_RTP = (
    (0x30, 0, 0, 8),  # ldb [8]
    (0x35, 0, 4, 128),  # jge #128 ? next : accept
    (0x35, 3, 0, 192),  # jge #192 ? accept : next
    (0x30, 0, 0, 9),  # ldb [9]
    (0x35, 0, 2, 192),  # jge #192 ? next : drop (RTP)
    (0x35, 1, 0, 224),  # jge #224 ? drop : accept (RTCP)
    _BPF_ACCEPT,
    _BPF_DROP,
)
_SO_ATTACH_FILTER = 26


def drop_media_in_kernel(sock: Any, *, keep_rtcp: bool = False) -> bool:
    """Attach a socket filter to ``sock`` (Linux) so that the kernel drops the RTP (and RTCP,
    unless ``keep_rtcp``) it receives before queueing it: a load generator's process is never
    woken for the ~150 voice packets a second the server sends each participant (15,000 a
    second at 100, which asyncio read one by one and the generators dropped in Python, or
    decoded for nobody: CPU the server's worker lacked). A camera's participant keeps RTCP
    (the server's keyframe requests and REMB). Answers whether the filter is on."""
    import ctypes
    import socket
    import struct

    if not sys.platform.startswith("linux"):
        return False
    ops = _BPF_DROP_RTP if keep_rtcp else _BPF_DROP_MEDIA
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in ops))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HP", len(ops), ctypes.addressof(program)))
    except OSError:
        return False
    return True


def _drop_media(pc: Any) -> None:
    """Drop the RTP and RTCP the server sends this peer as it arrives (before SRTP): a silent
    load generator needs none of it, and the machine's CPU is the server's."""
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        if id(connection) in seen:
            continue
        seen.add(id(connection))
        original = connection.data_received

        def data_received(data: bytes, component: int, original: Any = original) -> None:
            if len(data) >= 12 and 127 < data[0] < 192:
                return
            original(data, component)

        connection.data_received = data_received


def _drop_media_in_kernel(pc: Any, *, keep_rtcp: bool) -> None:
    """:func:`drop_media_in_kernel` on each of his sockets (gathered by his first
    ``setLocalDescription``); a silent one's Python drop (:func:`_drop_media`) stays for a
    platform without socket filters."""
    for transceiver in pc.getTransceivers():
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            sock = getattr(protocol, "hirfa_socket", None)
            if sock is not None:
                drop_media_in_kernel(sock, keep_rtcp=keep_rtcp)


@dataclass
class Generated:
    """One participant of a load generator, and what happened to him."""

    index: int
    cookie: str
    camera: bool
    offers_at: list[float] = field(default_factory=list)
    started: float = 0.0
    negotiated: float | None = None
    connected: float | None = None
    errors: list[str] = field(default_factory=list)
    #: keyframes the server asked of his camera
    counts: dict[str, int] = field(default_factory=lambda: {"keyframes": 0})
    #: his microphone (``speaking`` can be switched: the ``voice`` command)
    voice: Any = None

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "camera": self.camera, "offers_at": self.offers_at, "started": self.started,
                "negotiated": self.negotiated, "connected": self.connected, "errors": self.errors[-5:]}


async def _participant(spec: dict[str, Any], clip: dict[str, Any], me: Generated, policy: Any,
                       connected: asyncio.Event, peers: list[Any]) -> None:
    import websockets
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy
    from websockets.typing import Origin

    from signaling.sfu.aiortc_hooks import configure_host_candidates

    video = None
    if me.camera:
        video, _, me.counts = netlab._tracks(clip, flash=False)
    audio = me.voice = _voice_track(clip["tone"], clip["silence"], speaking=me.camera)
    base = f"http://{HOST}:{spec['http_port']}"
    me.started = time.time()
    ws = await websockets.connect(f"ws://{HOST}:{spec['http_port']}/ws/", additional_headers={"Cookie": me.cookie},
                                  origin=Origin(base), open_timeout=60, max_size=2**22, ping_interval=None)
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    peers.append(pc)

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected" and me.connected is None:
            me.connected = time.time()
            connected.set()

    await ws.send(json.dumps({"type": "meeting_join", "meeting": spec["meeting"],
                              "publish": ["mic", "camera"] if me.camera else ["mic"],
                              "receive_video": False, "ref": "join"}))
    dropping = False
    async for text in ws:
        frame = json.loads(text)
        kind = frame.get("type")
        if kind == "error":
            me.errors.append(f"{frame.get('code')}: {frame.get('message')}"[:200])
            continue
        if kind != "meeting_offer":
            continue
        me.offers_at.append(time.time())
        await pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
        transceivers = {t.mid: t for t in pc.getTransceivers()}
        for mline in frame["mlines"]:
            transceiver = transceivers.get(mline["mid"])
            if transceiver is None or mline["direction"] != "publish":
                continue
            track = {"camera": video, "mic": audio}.get(mline.get("source"))
            if track is not None and transceiver.sender.track is None:
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
                if track is video:
                    transceiver.sender._send_keyframe = video.keyframe
        configure_host_candidates(pc, policy)
        if not me.camera and not dropping:
            _drop_media(pc)
            dropping = True
        await pc.setLocalDescription(await pc.createAnswer())
        if me.negotiated is None:
            # He receives no video; what he is sent of the others' voices nobody hears.
            _drop_media_in_kernel(pc, keep_rtcp=me.camera)
        await ws.send(json.dumps({"type": "meeting_answer", "meeting": frame["meeting"],
                                  "sdp": pc.localDescription.sdp, "revision": frame["revision"]}))
        if me.negotiated is None:
            me.negotiated = time.time()


async def run_generator(spec: dict[str, Any], clip: dict[str, Any]) -> None:
    """Serve the driver's commands on stdin, one JSON line out for each: ``join <index>`` (until
    connected, or 60 s), ``voice <index> on|off`` (he speaks, or is silent with DTX), ``report``,
    ``quit``."""
    import aioice.ice

    from signaling.sfu.aiortc_hooks import HostCandidatePolicy

    # As bench/netlab.py's publishers: a busy server answers consent checks late; wait as Chrome does.
    aioice.ice.CONSENT_FAILURES = 30 // aioice.ice.CONSENT_INTERVAL * 4
    policy = HostCandidatePolicy(bind_address=HOST, announced_addresses=(HOST,), port_min=spec["port_min"],
                                 port_max=spec["port_max"])
    people = {p["index"]: Generated(p["index"], p["cookie"], p["camera"]) for p in spec["participants"]}
    tasks: list[asyncio.Task[None]] = []
    peers: list[Any] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def out(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "join":
            me = people[int(argument)]
            connected = asyncio.Event()
            task = asyncio.ensure_future(_participant(spec, clip, me, policy, connected, peers))
            tasks.append(task)
            waiter = asyncio.ensure_future(connected.wait())
            await asyncio.wait([task, waiter], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done() and task.exception() is not None:
                me.errors.append(repr(task.exception())[:200])
            out(me.summary())
        elif command == "voice":
            index, _, speaking = argument.partition(" ")
            people[int(index)].voice.speaking = speaking == "on"
            out({"index": int(index), "speaking": speaking == "on"})
        elif command == "report":
            out({"participants": [p.summary() for p in people.values()],
                 "keyframes": sum(p.counts["keyframes"] for p in people.values()),
                 "connected": sum(1 for pc in peers if pc.connectionState == "connected")})
        elif command == "quit":
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)


# ---------------------------------------------------------------- the driver


PREPARE = netlab.PREPARE


@dataclass(frozen=True)
class SfuWorker:
    """One ``hirfa sfu`` worker process of the bench."""

    id: str
    process: str
    ops_port: int


@dataclass
class Hub:
    folder: str
    ports: Ports
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: The SFU workers: id, process name (in ``processes``) and operations port, the meeting's first.
    workers: list[SfuWorker] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    def start(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        log = open(os.path.join(self.folder, f"{name}.log"), "wb")  # noqa: SIM115 - the process's until it ends
        env = {**self.env, **kwargs.pop("env", {})}
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=kwargs.pop("stdout", log),
                                   stderr=subprocess.STDOUT if "stdin" not in kwargs else log, **kwargs)
        self.processes[name] = process
        return process

    def stop(self) -> None:
        """Stop the processes, the last started first (Redis last)."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def log_tail(self, name: str) -> str:
        return netlab.tail(os.path.join(self.folder, f"{name}.log"))


def start_hub(folder: str, ports: Ports, participants: int, audio_slots: int, video_slots: int,
              prepared: dict[str, Any] | None = None, database_env: dict[str, str] | None = None,
              workers: int = 1) -> Hub:
    """Redis, the database with ``participants`` members (a guild meeting started), daphne and
    ``workers`` SFU worker processes (more than one: the meeting spreads over them, each worker
    taking new participants once the meeting's worker holds ``participants / workers``:
    ``HIRFA_SFU_SPREAD_LOAD``, signaling/spread.py). ``prepared`` (room, meeting, cookies) and
    ``database_env``: a database made by the caller (a test's), else a new SQLite one in ``folder``."""
    if not 1 <= workers <= Ports.MAX_WORKERS:
        raise ValueError(f"1 to {Ports.MAX_WORKERS} SFU workers")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HIRFA_ENV", "CI")}
    env.update(database_env or {"HIRFA_DATA_DIR": folder})
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": ROOT,
        "PYTHONUNBUFFERED": "1", "ALLOWED_HOSTS": HOST, "CSRF_TRUSTED_ORIGINS": f"http://{HOST}:{ports.http}",
        "REDIS_URL": f"redis://{HOST}:{ports.redis}/0", "HIRFA_SFU_PLACEMENT": "workers",
        "HIRFA_SFU_ANNOUNCE_ADDRESSES": HOST, "HIRFA_SFU_BIND_ADDRESS": HOST,
        "HIRFA_SFU_PORT_MIN": str(ports.sfu[0]), "HIRFA_SFU_PORT_MAX": str(ports.sfu[1]),
        "HIRFA_SFU_AUDIO_SLOTS": str(audio_slots), "HIRFA_SFU_VIDEO_SLOTS": str(video_slots),
        "HIRFA_MEETING_MAX_PARTICIPANTS": str(participants + 10), "HIRFA_MEETING_CONNECT_SECONDS": "300",
        "HIRFA_FAST_PASSWORD_HASHER": "1",
        # The placement (daphne) and the workers' pipes: off with one worker.
        "HIRFA_SFU_SPREAD_LOAD": str(-(-participants // workers) if workers > 1 else 0),
    })
    hub = Hub(folder, ports, env)
    try:
        hub.start("redis", ["redis-server", "--port", str(ports.redis), "--bind", HOST, "--save", "", "--appendonly",
                            "no"])
        if prepared is None:
            made = subprocess.run([sys.executable, "-c", PREPARE, str(participants)], env=env, cwd=ROOT,
                                  check=False, capture_output=True, text=True, timeout=600)
            if made.returncode != 0:
                raise RuntimeError(f"preparing the database failed: {made.stderr[-2000:]}")
            prepared = json.loads(made.stdout.strip().splitlines()[-1])
        hub.data = prepared
        for index in range(workers):
            # "assembly" first: the least loaded worker takes the meeting, the first id on a tie.
            worker = SfuWorker("assembly" if index == 0 else f"assembly-{index}", "sfu" if index == 0 else f"sfu{index}",
                               ports.ops_ports[index])
            low, high = ports.sfu_range(index, workers)
            hub.start(worker.process, [sys.executable, "-m", "hub.cli", "sfu", "--processes", "1", "--worker-id",
                                       worker.id, "--ops-port", str(worker.ops_port)],
                      env={"HIRFA_SFU_PORT_MIN": str(low), "HIRFA_SFU_PORT_MAX": str(high),
                           "HIRFA_SFU_PIPE_PORT": str(ports.pipe(index))})
            hub.workers.append(worker)
        daphne = hub.start("daphne", [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(ports.http),
                                      "tests.server_asgi:application"])
        _wait_http(f"{hub.base}/static/hirfa/hirfa.css", daphne, "daphne", hub)
        for worker in hub.workers:
            _wait_http(f"http://{HOST}:{worker.ops_port}/readyz", hub.processes[worker.process], "hirfa sfu", hub)
    except BaseException:
        hub.stop()
        raise
    return hub


def _wait_http(url: str, process: subprocess.Popen[Any], what: str, hub: Hub) -> None:
    deadline = time.time() + 120
    while True:
        if process.poll() is not None:
            name = next(n for n, p in hub.processes.items() if p is process)
            raise RuntimeError(f"{what} exited with {process.returncode}: {hub.log_tail(name)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        if time.time() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within 120 s")
        time.sleep(0.3)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MB)."""
    out = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
    return out


def sfu_metrics(port: int) -> dict[str, float]:
    """The worker's SFU gauges (``hirfa_sfu_*``, /metrics); the bitrate is since the last scrape."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("hirfa_sfu_"):
            name, _, value = line.rpartition(" ")
            out[name.split("{")[0].removeprefix("hirfa_sfu_")] = float(value)
    return out


class HeartbeatWatch:
    """Reads the SFU worker's registration in Redis every 0.5 s: the longest time it went
    without a heartbeat (a consumer calls the worker gone after 3 periods, 6 s, and every
    participant rejoins)."""

    def __init__(self, port: int, workers: tuple[str, ...] = ("assembly",)) -> None:
        import threading

        import redis

        self.client = redis.Redis(host=HOST, port=port)
        self.workers = workers
        self.longest = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopped.wait(0.5):
            for worker in self.workers:
                with contextlib.suppress(Exception):
                    raw = self.client.hget("hirfa:sfu:workers", worker)
                    if raw:
                        self.longest = max(self.longest, time.time() - float(json.loads(raw)["at"]))

    def stop(self) -> float:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.client.close()
        return round(self.longest, 1)


def wait_for_loads(port: int, workers: list[SfuWorker], total: int, timeout: float = 15.0) -> dict[str, int]:
    """The workers' registered loads once they sum to ``total`` (or after ``timeout`` s)."""
    import redis

    client = redis.Redis(host=HOST, port=port)
    deadline = time.monotonic() + timeout
    try:
        while True:
            loads = {}
            for worker in workers:
                raw = client.hget("hirfa:sfu:workers", worker.id)
                loads[worker.id] = int(json.loads(raw)["load"]) if raw else 0
            if sum(loads.values()) >= total or time.monotonic() > deadline:
                return loads
            time.sleep(0.2)
    finally:
        client.close()


class Generator:
    """The driver's end of one load-generator process."""

    def __init__(self, hub: Hub, index: int, spec: dict[str, Any]) -> None:
        path = os.path.join(hub.folder, f"generator{index}.json")
        with open(path, "w") as handle:
            json.dump(spec, handle)
        self.process = hub.start(f"generator{index}", [sys.executable, os.path.abspath(__file__), "generator", path],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"a load generator exited ({self.process.poll()}) on {line!r}")
        return dict(json.loads(answer))

    def quit(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.close()


PAGE_SAMPLE = "() => window.benchSample()"


def open_page(browser: Any, hub: Hub, cookie: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(netlab.INIT_SCRIPT)
    name, value = cookie.split("=", 1)
    context.add_cookies([{"name": name, "value": value, "url": hub.base}])
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.console_lines = []
    page.on("console", lambda message: page.console_lines.append(f"{message.type}: {message.text}"[:300]))
    page.on("pageerror", lambda error: page.console_lines.append(f"pageerror: {error}"[:300]))
    page.goto(f"{hub.base}/rooms/{hub.data['room']}/meeting/")
    page.wait_for_selector("body[data-connection='online']")
    page.wait_for_selector("#join:not([disabled])")
    return page


def decoding(sample: dict[str, Any]) -> int:
    return sum(1 for s in netlab.video_streams(sample).values() if s.get("framesDecoded", 0) > 0)


def run(folder: str, ports: Ports, *, participants: int, cameras: int, generators: int, seconds: float,
        audio_slots: int = 3, video_slots: int = 9, warmup: float = netlab.WARMUP_SECONDS,
        clip_size: tuple[int, int] = (640, 360), prepared: dict[str, Any] | None = None,
        database_env: dict[str, str] | None = None, workers: int = 1) -> dict[str, Any]:
    """One assembly, measured: the ``assembly`` row of bench/meeting_adapt.py (``prepared``,
    ``database_env`` and ``workers``: see :func:`start_hub`; the smoke test's)."""
    from playwright.sync_api import sync_playwright

    if participants < 2 or not 0 < cameras < participants:
        raise ValueError("an assembly needs at least 2 participants and 1 to participants - 1 cameras")
    row: dict[str, Any] = {"case": "assembly", "participants": participants, "cameras": cameras,
                           "silent": participants - 1 - cameras, "generator_processes": generators,
                           "audio_slots": audio_slots, "video_slots": video_slots, "sfu_workers": workers,
                           "placement": f"workers: daphne, {workers} hirfa sfu worker process(es), Redis"
                                        + (" (the meeting spread over them)" if workers > 1 else "")}
    began = time.monotonic()
    clip = write_clip(folder, clip_size)
    encoded = time.monotonic()
    hub = start_hub(folder, ports, participants, audio_slots, video_slots, prepared, database_env, workers)
    row["setup_s"] = {"encode": round(encoded - began, 1), "hub": round(time.monotonic() - encoded, 1)}
    pool: list[Generator] = []
    heartbeats = HeartbeatWatch(ports.redis, tuple(w.id for w in hub.workers))
    try:
        cookies = hub.data["cookies"]
        generated = participants - 1
        generators = max(1, min(generators, generated))
        for g in range(generators):
            low, high = ports.generator(g, generators)
            pool.append(Generator(hub, g, {
                "http_port": ports.http, "meeting": hub.data["meeting"], "clip": clip, "port_min": low,
                "port_max": high, "participants": [{"index": i, "cookie": cookies[i], "camera": i < cameras}
                                                   for i in range(g, generated, generators)]}))
        joins = []
        for index in range(generated):
            joins.append(pool[index % generators].ask(f"join {index}"))
        row["generators_connected"] = sum(1 for j in joins if j["connected"])
        row["join_errors"] = [e for j in joins for e in j["errors"]][:5]
        if workers > 1:
            # Placement reads the loads the workers register at each heartbeat: the subscriber
            # goes to the least loaded worker once they count everyone already in.
            row["sfu_loads_before_subscriber"] = wait_for_loads(ports.redis, hub.workers, generated)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=netlab.CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                measure_subscriber(browser, hub, row, cameras, seconds, warmup)
            finally:
                browser.close()
        reports = [g.ask("report") for g in pool]
        row.update(renegotiations(reports, joins, cameras, row.pop("_subscriber_joined")))
        row["generators_connected_at_end"] = sum(r["connected"] for r in reports)
        row["publisher_keyframes"] = sum(r["keyframes"] for r in reports)
    finally:
        row["sfu_heartbeat_longest_gap_s"] = heartbeats.stop()
        # Sockets that found the worker's registration expired told their participant to rejoin.
        with contextlib.suppress(OSError), open(os.path.join(folder, "daphne.log"), errors="replace") as log:
            row["worker_gone_rejoins"] = sum(1 for line in log if "is gone; meeting" in line)
        for generator in pool:
            generator.quit()
        hub.stop()
    return row


def measure_subscriber(browser: Any, hub: Hub, row: dict[str, Any], cameras: int, seconds: float,
                       warmup: float) -> None:
    """The Chromium subscriber joins last; its figures, and the SFU workers' over its window."""
    if len(hub.workers) > 1:
        before = {}
        for worker in hub.workers:
            with contextlib.suppress(OSError, KeyError):
                before[worker.id] = sfu_metrics(worker.ops_port)["participants"]
        row["sfu_participants_before_subscriber"] = before
    page = open_page(browser, hub, hub.data["cookies"][-1])
    joined = time.time()
    row["_subscriber_joined"] = joined
    page.click("#join")
    page.wait_for_selector("#meeting[data-phase='in']")
    row["join_to_in_ms"] = round((time.time() - joined) * 1000)
    page.click("#ctl-camera")  # it receives video, sending none
    expected = cameras  # at most video_slots, which is at least 1
    expected = min(expected, int(row["video_slots"]) or expected)
    deadline = time.time() + 120
    first_frame = None
    # Where the wait goes: the first video packet, the first frame assembled, then decoded.
    steps: dict[str, int] = {}
    while time.time() < deadline:
        sample = page.evaluate(PAGE_SAMPLE)
        videos = netlab.video_streams(sample).values()
        for step, counter in (("packet", "packetsReceived"), ("frame", "framesReceived"),
                              ("keyframe", "keyFramesDecoded")):
            if step not in steps and any(v.get(counter, 0) > 0 for v in videos):
                steps[step] = round((time.time() - joined) * 1000)
        if decoding(sample) >= expected:
            first_frame = time.time()
            break
        page.wait_for_timeout(100)
    row["join_to_first_frame_ms"] = round((first_frame - joined) * 1000) if first_frame else None
    row["join_to_first_video_ms"] = steps
    row["videos_decoding"] = decoding(page.evaluate(PAGE_SAMPLE))
    if first_frame is None:
        row["error"] = f"only {row['videos_decoding']} of {expected} videos decoded within 120 s"
        row["reception"] = page.evaluate("() => window.hirfaMeeting.reception()")
        row["mlines"] = page.evaluate("() => window.hirfaMeeting.mlines()")
        row["peers"] = page.evaluate("() => window.benchPeers.map((pc) => pc.connectionState)")
        row["console_tail"] = page.console_lines[-30:]
        row["sfu_workers_metrics"] = {}
        for worker in hub.workers:
            with contextlib.suppress(OSError):
                row["sfu_workers_metrics"][worker.id] = sfu_metrics(worker.ops_port)
        return
    page.wait_for_timeout(warmup * 1000)
    workers = {w.id: hub.processes[w.process].pid for w in hub.workers}
    daphne = hub.processes["daphne"].pid
    generator_pids = [p.pid for n, p in hub.processes.items() if n.startswith("generator")]
    first = page.evaluate(PAGE_SAMPLE)
    for worker in hub.workers:
        sfu_metrics(worker.ops_port)  # the bitrate gauge counts from here
    cpu0 = {pid: cpu_seconds(pid) for pid in [*workers.values(), daphne, *generator_pids]}
    t0 = time.monotonic()
    samples = [first]
    streams: dict[str, list[float]] = {w.id: [] for w in hub.workers}
    bitrates: dict[str, list[float]] = {w.id: [] for w in hub.workers}
    metrics: dict[str, dict[str, float]] = {w.id: {} for w in hub.workers}
    while time.monotonic() - t0 < seconds:
        page.wait_for_timeout(1000)
        samples.append(page.evaluate(PAGE_SAMPLE))
        for worker in hub.workers:
            with contextlib.suppress(OSError):
                metrics[worker.id] = sfu_metrics(worker.ops_port)
                streams[worker.id].append(metrics[worker.id]["forwarded_streams"])
                bitrates[worker.id].append(metrics[worker.id]["forward_bits_per_second"])
    elapsed = time.monotonic() - t0
    cpu = {pid: 100 * (cpu_seconds(pid) - start) / elapsed for pid, start in cpu0.items()}
    last = samples[-1]
    summary = netlab.summarize(first, last, samples, (last["t"] - first["t"]) / 1000)
    forwarded_by = {w: statistics.mean(v) if v else metrics[w].get("forwarded_streams", 0) for w, v in streams.items()}
    forwarded = sum(forwarded_by.values())
    sfu_cpu = sum(cpu[pid] for pid in workers.values())
    reception = page.evaluate("() => window.hirfaMeeting.reception()")
    participants_by = {w: metrics[w].get("participants") for w in workers}
    row.update({
        "window_s": round(elapsed, 1),
        "subscriber_fps": summary["video_fps"],
        "audio_concealed_pct": summary["audio_concealed_pct"],
        "subscriber_video_streams": summary["video_streams"], "subscriber_audio_streams": summary["audio_streams"],
        "video_freezes": summary["video_freezes"], "video_freeze_max_ms": summary["video_freeze_max_ms"],
        # All the SFU workers together (one: that worker), % of one core.
        "sfu_cpu_pct": round(sfu_cpu, 1),
        "forwarded_streams": round(forwarded, 1),
        "cpu_pct_per_stream": round(sfu_cpu / forwarded, 3) if forwarded else None,
        "forwarded_kbps": round(sum(statistics.mean(v) for v in bitrates.values() if v) / 1000)
                          if any(bitrates.values()) else None,
        "sfu_participants": sum(p for p in participants_by.values() if p is not None)
                            if any(p is not None for p in participants_by.values()) else None,
        # Since the workers started (joins included): media that waited past the bound in a socket.
        "sfu_stale_media_dropped": sum(m.get("stale_media_dropped", 0) for m in metrics.values())
                                   if any(metrics.values()) else None,
        **{f"sfu_{k}": v for k, v in memory_mb(workers["assembly"]).items()},
        "daphne_cpu_pct": round(cpu[daphne], 1),
        "generators_cpu_pct": round(sum(cpu[p] for p in generator_pids), 1),
        "subscriber_fps_per_video": sorted(
            (round((v.get("framesDecoded", 0) - netlab.video_streams(first).get(k, {}).get("framesDecoded", 0))
                   / max(elapsed, 1e-3), 1) for k, v in netlab.video_streams(last).items()), reverse=True),
        "subscriber_videos": [f"{v['user']}:{v['quality']}" for v in (reception or {}).get("videos", [])],
        "subscriber_peer_connections": page.evaluate("() => window.hirfaMeeting.generation()"),
        "subscriber_audio_only": bool(reception and reception.get("audio_only")),
        "subscriber_estimate_kbps": reception.get("estimate_kbps") if reception else None,
    })
    if len(workers) > 1:
        # Each worker's part: the meeting's worker ("assembly") holds the cameras; the
        # subscriber is on the one whose count his join raised.
        before = row.get("sfu_participants_before_subscriber", {})
        row["sfu_workers_detail"] = {w: {
            "participants": participants_by[w],
            "cpu_pct": round(cpu[pid], 1),
            "forwarded_streams": round(forwarded_by[w], 1),
            "cpu_pct_per_stream": round(cpu[pid] / forwarded_by[w], 3) if forwarded_by[w] else None,
            "stale_media_dropped": metrics[w].get("stale_media_dropped"),
            **{k: metrics[w].get(k) for k in ("pipe_tracks_out", "pipe_tracks_in", "pipe_tracks_timed_out",
                                                "pipe_datagrams_dropped", "pipe_datagrams_refused")},
            **memory_mb(pid),
        } for w, pid in workers.items()}
        row["subscriber_worker"] = next(
            (w for w in workers if (participants_by[w] or 0) > (before.get(w) or 0)), None)


def renegotiations(reports: list[dict[str, Any]], joins: list[dict[str, Any]], cameras: int,
                   subscriber_joined: float) -> dict[str, Any]:
    """Offers the participants already there received during each silent join (from its start to
    the next join's), the join times, and the joins' own negotiation times."""
    offers = {p["index"]: p["offers_at"] for r in reports for p in r["participants"]}
    starts = [j["started"] for j in joins] + [subscriber_joined]
    silent = []
    for index in range(cameras, len(joins)):
        begin, end = starts[index], starts[index + 1]
        silent.append(sum(1 for other, times in offers.items() if other != index
                          for at in times if begin <= at < end))
    negotiated = [1000 * (j["negotiated"] - j["started"]) for j in joins if j["negotiated"]]
    connected = [1000 * (j["connected"] - j["started"]) for j in joins if j["connected"]]
    return {
        "renegotiations_per_silent_join": round(statistics.mean(silent), 2) if silent else None,
        "renegotiations_last_silent_join": silent[-1] if silent else None,
        "join_negotiated_ms_median": round(statistics.median(negotiated)) if negotiated else None,
        "join_negotiated_ms_last": round(negotiated[-1]) if negotiated else None,
        "join_connected_ms_median": round(statistics.median(connected)) if connected else None,
        "joins_s": round(subscriber_joined - starts[0], 1),
    }



# ---------------------------------------------------------------- offers on the SFU's loop (in process)


class LoopMeter:
    """What the event loop spends while a window is open, in seconds: ``own``, the steps of the
    measured task and of the tasks it starts meanwhile (what the work itself holds the loop for),
    its longest step, and ``busy``, every callback (the rest is the meeting's background: other
    peers' RTCP and ICE timers)."""

    def __init__(self) -> None:
        self.open = False
        self.tasks: set[Any] = set()
        self.own = self.longest = self.busy = 0.0

    def install(self) -> Any:
        """Wraps ``asyncio.Handle._run`` (task steps and callbacks alike) and the loop's task
        factory; returns the undo."""
        real = asyncio.events.Handle._run
        loop = asyncio.get_running_loop()
        meter = self

        def run(handle: asyncio.Handle) -> None:
            if not meter.open:
                return real(handle)
            began = time.perf_counter()
            try:
                return real(handle)
            finally:
                spent = time.perf_counter() - began
                meter.busy += spent
                # a task's step or wake-up is a method of the task
                if getattr(handle._callback, "__self__", None) in meter.tasks:  # type: ignore[attr-defined]
                    meter.own += spent
                    meter.longest = max(meter.longest, spent)

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            if meter.open and asyncio.current_task(loop) in meter.tasks:
                meter.tasks.add(task)
            return task

        asyncio.events.Handle._run = run  # type: ignore[method-assign,assignment]
        loop.set_task_factory(factory)  # type: ignore[arg-type]

        def undo() -> None:
            asyncio.events.Handle._run = real  # type: ignore[method-assign]
            loop.set_task_factory(None)

        return undo

    async def measure(self, awaitable: Any) -> tuple[Any, dict[str, float]]:
        """Await ``awaitable`` in a task of its own with the window open: its result and the
        window's ``own_ms``, ``longest_ms`` and ``busy_ms``."""
        self.own = self.longest = self.busy = 0.0
        self.open = True
        task = asyncio.ensure_future(awaitable)
        self.tasks = {task}
        try:
            result = await task
        finally:
            self.open = False
        return result, {"own_ms": 1000 * self.own, "longest_ms": 1000 * self.longest, "busy_ms": 1000 * self.busy}


class _Silent:
    """A published track that never yields a frame: its m-line is sendonly, no media flows."""

    def __new__(cls, kind: str) -> Any:
        from aiortc.mediastreams import MediaStreamTrack

        class Silent(MediaStreamTrack):
            async def recv(self) -> Any:
                await asyncio.Event().wait()

        track = Silent()
        track.kind = kind
        return track


async def _offer_sizes(sizes: list[int], probes: int, audio_slots: int, video_slots: int, cameras: int,
                       port_base: int) -> list[dict[str, Any]]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from signaling.sfu import Sfu, SfuConfig, TrackSource
    from signaling.sfu.aiortc_hooks import HostCandidatePolicy, configure_host_candidates

    server = Sfu(SfuConfig(announced_addresses=(HOST,), bind_address=HOST, port_min=port_base,
                           port_max=port_base + 499, audio_slots=audio_slots, video_slots=video_slots,
                           allocation_interval=0))
    client_policy = HostCandidatePolicy(bind_address=HOST, announced_addresses=(HOST,), port_min=port_base + 500,
                                        port_max=port_base + 999)
    meeting = server.meeting("offers")
    meter = LoopMeter()
    undo = meter.install()
    peers: dict[str, Any] = {}
    queue: asyncio.Queue[Any] = asyncio.Queue()
    samples: list[dict[str, Any]] = []
    settled = asyncio.Event()
    pending: list[int] = [0]  # negotiations queued or under way

    async def negotiator() -> None:
        # One negotiation at a time, so that each window holds one offer or one answer.
        try:
            await negotiate_forever()
        except BaseException as error:
            failure.append(error)
            settled.set()
            raise

    failure: list[BaseException] = []

    async def negotiate_forever() -> None:
        while True:
            participant, probe = await queue.get()
            try:
                await negotiate(participant, probe)
            finally:
                pending[0] -= 1
                if not pending[0]:
                    settled.set()

    async def negotiate(participant: Any, probe: int | None) -> None:
        pc = peers.get(participant.id)
        if pc is None or participant.state.value == "closed":
            return
        offer, offer_loop = await meter.measure(participant.create_offer())
        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        transceivers = {t.mid: t for t in pc.getTransceivers()}
        for slot in offer.slots:
            transceiver = transceivers.get(slot.mid)
            if (transceiver is not None and slot.direction.value == "publish" and transceiver.sender.track is None
                    and slot.source is not None):
                transceiver.sender.replaceTrack(_Silent(slot.kind.value))
                transceiver.direction = "sendonly"
        configure_host_candidates(pc, client_policy)
        await pc.setLocalDescription(await pc.createAnswer())
        _, answer_loop = await meter.measure(
            participant.apply_answer(pc.localDescription.sdp, revision=offer.revision))
        if probe is not None:
            samples.append({"size": probe, "offer": offer_loop, "answer": answer_loop, "sdp_bytes": len(offer.sdp),
                            "mlines": offer.sdp.count("\r\nm="), "first": offer.revision == 1})

    def needed(probe: list[int | None]) -> Any:
        def on_negotiation_needed(participant: Any) -> None:
            pending[0] += 1
            settled.clear()
            queue.put_nowait((participant, probe[0]))
        return on_negotiation_needed

    probe_size: list[int | None] = [None]  # the size being measured (None while filling)

    async def join(name: str, sources: tuple[Any, ...]) -> Any:
        peers[name] = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        participant = await meeting.join(name, on_negotiation_needed=needed(probe_size))
        for source in sources:
            participant.publish(source)
        await settle()
        return participant

    async def settle() -> None:
        await asyncio.sleep(0)
        while pending[0] and not failure:
            settled.clear()
            await settled.wait()
        if failure:
            raise RuntimeError("a negotiation failed") from failure[0]

    async def leave(name: str) -> None:
        await meeting.leave(name)
        await peers.pop(name).close()
        await settle()

    worker = asyncio.ensure_future(negotiator())
    rows = []
    try:
        count = 0
        for size in sorted(sizes):
            while count < size - 1:
                camera = count < cameras
                await join(f"p{count}", (TrackSource.CAMERA, TrackSource.MICROPHONE) if camera
                           else (TrackSource.MICROPHONE,))
                count += 1
            probe_size[0] = size
            first = len(samples)
            for index in range(probes):
                # The size-th participant joins with his mic, turns his camera on (his own
                # renegotiation), and leaves.
                name = f"probe{size}-{index}"
                participant = await join(name, (TrackSource.MICROPHONE,))
                deadline = time.monotonic() + 10
                while participant.state.value != "connected" and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)  # his DTLS handshake is not the renegotiation's
                participant.publish(TrackSource.CAMERA)
                await settle()
                await leave(name)
            probe_size[0] = None
            mine = samples[first:]
            rows.append(_offer_row(size, mine, audio_slots, video_slots))
    finally:
        worker.cancel()
        undo()
        for pc in peers.values():
            await pc.close()
        await server.close()
    return rows


def _percentile(values: list[float], fraction: float) -> float | None:
    return round(chat_fanout.pct(values, fraction), 2) if values else None


def _offer_row(size: int, samples: list[dict[str, Any]], audio_slots: int, video_slots: int) -> dict[str, Any]:
    row: dict[str, Any] = {"participants": size, "slots": [audio_slots, video_slots], "offers": len(samples)}
    for name, chosen in (("", samples), ("join_", [s for s in samples if s["first"]]),
                         ("renegotiation_", [s for s in samples if not s["first"]])):
        for key in ("offer", "answer"):
            for figure, field_name in (("loop_ms", "own_ms"), ("longest_step_ms", "longest_ms"),
                                       ("window_busy_ms", "busy_ms")):
                values = [s[key][field_name] for s in chosen]
                row[f"{name}{key}_{figure}"] = {"p50": _percentile(values, 0.5), "p99": _percentile(values, 0.99)}
    row["sdp_bytes"] = [min(s["sdp_bytes"] for s in samples), max(s["sdp_bytes"] for s in samples)] if samples else []
    row["mlines"] = sorted({s["mlines"] for s in samples})
    return row


def measure_offers(sizes: list[int], *, probes: int = 10, audio_slots: int = 3, video_slots: int = 9,
                   cameras: int = 4, port_base: int = 46000) -> list[dict[str, Any]]:
    """``offer_loop_ms``: the SFU's event-loop time (p50/p99) to make one offer (``create_offer``:
    aiortc's createOffer and setLocalDescription, our SDP edits) and to apply its answer, at each
    meeting size. In one process: an SFU with slots, in-process aiortc peers answering (outside
    the windows), no media; ``probes`` participants join as the size-th (first offer), turn their
    camera on (a renegotiation of their own) and leave. Negotiations run one at a time, so a window
    holds one; the allocator is off (``allocation_interval=0``) so that its ticks stay out of them."""
    return asyncio.run(_offer_sizes(sizes, probes, audio_slots, video_slots, cameras, port_base))

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generator":
        with open(sys.argv[2]) as spec_file:
            generator_spec = json.load(spec_file)
        with open(generator_spec["clip"], "rb") as clip_file:
            asyncio.run(run_generator(generator_spec, pickle.load(clip_file)))
    elif len(sys.argv) >= 2 and sys.argv[1] == "offers":
        import argparse

        parser = argparse.ArgumentParser(prog="bench/assembly.py offers", description=measure_offers.__doc__)
        parser.add_argument("--sizes", default="8,20,40,100")
        parser.add_argument("--probes", type=int, default=10)
        parser.add_argument("--audio-slots", type=int, default=3)
        parser.add_argument("--video-slots", type=int, default=9)
        parser.add_argument("--json", action="store_true")
        args = parser.parse_args(sys.argv[2:])
        base = int(os.environ.get("HIRFA_BENCH_PORT_BASE", "46000"))
        results = measure_offers([int(s) for s in args.sizes.split(",") if s], probes=args.probes,
                                 audio_slots=args.audio_slots, video_slots=args.video_slots, port_base=base)
        if args.json:
            print(json.dumps({"command": " ".join(["python", "bench/assembly.py", *sys.argv[1:]]),
                              "load_average": os.getloadavg(), "results": results}, indent=2))
        else:
            for result in results:
                print(f"{result['participants']:4d} participants: offer_loop_ms p50 {result['offer_loop_ms']['p50']}"
                      f" p99 {result['offer_loop_ms']['p99']}, answer p50 {result['answer_loop_ms']['p50']}"
                      f" p99 {result['answer_loop_ms']['p99']}, m-lines {result['mlines']}")
    else:
        sys.exit("usage: bench/assembly.py generator SPEC (started by bench/meeting_adapt.py --cases assembly)\n"
                 "       bench/assembly.py offers [--sizes 8,20,40,100] [--probes 10] [--json]")
