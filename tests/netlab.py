"""A network lab: Linux network namespaces joined by impaired links, impaired in user space.

This kernel has no ``netem`` or ``tbf`` queueing discipline, so the impairment
is done by one small process (``python -m tests.netlab forward``) that owns
a TUN device at each end of every link and forwards IP packets between them,
per direction, with a loss rate, a token-bucket rate with a bounded queue, a
delay and a jitter (never reordering, like a real bottleneck).

Topology: a star. The namespace ``netlab-<tag>-hub`` holds the server side;
each participant gets ``netlab-<tag>-<name>``, linked to the hub by one
impaired link: in the participant's namespace its device ``nl0`` carries the
default route; in the hub's namespace the device ``nl<index>`` carries the
route to the participant's /24; servers listen on the hub's own address
10.77.0.1 (on its loopback), which every participant reaches. Link ``i`` uses 10.77.<i>.1 (hub end) and
10.77.<i>.2 (participant; 10.77.<i>.3, .4 … after each handover). Nothing is
ever routed outside the namespaces the lab created.

    with Lab() as lab:
        lab.add("sub", PROFILES["3g"])
        lab.popen("hub", ["python", "-m", "daphne", ...])       # or lab.socket("hub", ...)
        lab.popen("sub", ["/usr/bin/chromium", ...])
        lab.handover("sub")                                      # 3 s dark, then a new address

Directions: ``down`` is hub → participant, ``up`` is participant → hub.
Guarantees: on leaving the ``with`` (normally, on an exception or on
Ctrl-C) every process the lab started is stopped, the forwarder exits (its TUN
devices vanish with it) and every namespace is deleted. ``clean_stale()``
removes what a killed earlier run left (only ``netlab-`` namespaces whose
creating process is gone). Needs root and ``/dev/net/tun``: see
``lab_unavailable()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import random
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
NETNS_DIR = "/var/run/netns"
PREFIX = "netlab-"
HANDOVER_DARK_SECONDS = 3.0
#: The hub's own address (on its loopback), reachable from every participant through its link.
HUB_ADDRESS = "10.77.0.1"


@dataclass(frozen=True)
class Direction:
    """One direction of a link: one-way delay and jitter (ms), loss (fraction), rate (bit/s, 0 = none)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rate_bps: int = 0
    queue_ms: float = 300.0  # the bounded queue in front of the rate limit, in time at that rate


@dataclass(frozen=True)
class Profile:
    """A link's two directions; ``handover`` makes the bench drop it and move the participant."""

    name: str
    down: Direction
    up: Direction
    handover: bool = False

    @property
    def rtt_ms(self) -> float:
        return self.down.delay_ms + self.up.delay_ms


PROFILES: dict[str, Profile] = {
    "good": Profile("good", Direction(delay_ms=20, jitter_ms=2), Direction(delay_ms=20, jitter_ms=2)),
    "3g": Profile(
        "3g",
        Direction(delay_ms=75, jitter_ms=5, loss=0.02, rate_bps=400_000),
        Direction(delay_ms=75, jitter_ms=5, loss=0.02, rate_bps=200_000),
    ),
    "lossy": Profile("lossy", Direction(delay_ms=50, jitter_ms=5, loss=0.05), Direction(delay_ms=50, jitter_ms=5, loss=0.05)),
    "handover": Profile(
        "handover", Direction(delay_ms=25, jitter_ms=2), Direction(delay_ms=25, jitter_ms=2), handover=True
    ),
}


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "the network lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces and TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "the network lab needs /dev/net/tun"
    if subprocess.run(["which", "ip"], capture_output=True, check=False).returncode != 0:
        return "the network lab needs iproute2 (ip)"
    return None


# ---------------------------------------------------------------- namespaces

_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the block's calls in ``namespace`` (this thread only); sockets made there stay there."""
    with _setns_lock, open("/proc/thread-self/ns/net") as home, open(f"{NETNS_DIR}/{namespace}") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def clean_stale() -> list[str]:
    """Delete ``netlab-`` namespaces left by runs whose process is gone; the names deleted."""
    removed = []
    for name in sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []:
        if not name.startswith(PREFIX):
            continue
        tag = name[len(PREFIX):].split("-", 1)[0]
        if tag.isdigit() and not os.path.exists(f"/proc/{tag}"):
            _kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def _kill_namespace_processes(namespace: str) -> None:
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


# ---------------------------------------------------------------- the lab


@dataclass
class Participant:
    name: str
    index: int
    namespace: str
    profile: Profile
    address_host: int = 2

    @property
    def address(self) -> str:
        return f"10.77.{self.index}.{self.address_host}"

    @property
    def hub_address(self) -> str:
        return f"10.77.{self.index}.1"


class Lab:
    """A hub namespace and participants on impaired links (see the module's docstring)."""

    def __init__(self, tag: str | None = None, seed: int | None = None) -> None:
        self.tag = tag or str(os.getpid())
        self.seed = seed
        self.hub = f"{PREFIX}{self.tag}-hub"
        self.participants: dict[str, Participant] = {}
        self.processes: list[subprocess.Popen[Any]] = []
        self._forwarder: subprocess.Popen[str] | None = None
        self._fd_channel: socket.socket | None = None
        self._namespaces: list[str] = []

    # -- life cycle

    def __enter__(self) -> Self:
        reason = lab_unavailable()
        if reason:
            raise RuntimeError(reason)
        clean_stale()
        try:
            self._add_namespace(self.hub)
            _ip("addr", "add", f"{HUB_ADDRESS}/32", "dev", "lo", namespace=self.hub)
            # The TUN descriptors are opened here (in each namespace) and handed over this pair.
            self._fd_channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with theirs:
                self._forwarder = subprocess.Popen(
                    [sys.executable, "-m", "tests.netlab", "forward", "--fd-socket", str(theirs.fileno()),
                     *(["--seed", str(self.seed)] if self.seed is not None else [])],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    pass_fds=(theirs.fileno(),), start_new_session=True,
                )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for process in reversed(self.processes):
            _stop(process)
        self.processes.clear()
        if self._forwarder is not None:
            _stop(self._forwarder)
            self._forwarder = None
        if self._fd_channel is not None:
            self._fd_channel.close()
            self._fd_channel = None
        for namespace in reversed(self._namespaces):
            _kill_namespace_processes(namespace)
            _ip("netns", "del", namespace, check=False)
        self._namespaces.clear()

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)

    # -- links

    def add(self, name: str, profile: Profile) -> Participant:
        """A participant's namespace, linked to the hub through ``profile``."""
        assert self._forwarder is not None, "use the lab inside `with`"
        index = len(self.participants) + 1
        participant = Participant(name, index, f"{PREFIX}{self.tag}-{name}", profile)
        self._add_namespace(participant.namespace)
        hub_device = f"nl{index}"
        with inside(self.hub):
            hub_fd = _open_tun(hub_device)
        try:
            with inside(participant.namespace):
                edge_fd = _open_tun("nl0")
            try:
                self._send_fds({"op": "link", "link": index, "profile": _profile_json(profile)}, [hub_fd, edge_fd])
            finally:
                os.close(edge_fd)
        finally:
            os.close(hub_fd)
        _ip("addr", "add", participant.hub_address, "dev", hub_device, namespace=self.hub)
        _ip("link", "set", hub_device, "up", namespace=self.hub)
        # Replies from unbound sockets leave from the hub's own address, the one servers announce.
        _ip("route", "add", f"10.77.{index}.0/24", "dev", hub_device, "src", HUB_ADDRESS, namespace=self.hub)
        self._edge_address(participant, add=True)
        self.participants[name] = participant
        return participant

    def _edge_address(self, participant: Participant, *, add: bool) -> None:
        ns = participant.namespace
        if add:
            _ip("addr", "add", f"{participant.address}/32", "dev", "nl0", namespace=ns)
            _ip("link", "set", "nl0", "up", namespace=ns)
            _ip("route", "replace", "default", "dev", "nl0", "src", participant.address, namespace=ns)
        else:
            _ip("addr", "del", f"{participant.address}/32", "dev", "nl0", namespace=ns, check=False)

    def set_down(self, name: str, down: bool) -> None:
        """Drop (or pass again) every packet of ``name``'s link, both ways."""
        self._command({"op": "down" if down else "up", "link": self.participants[name].index})

    def set_profile(self, name: str, profile: Profile) -> None:
        self.participants[name].profile = profile
        self._command({"op": "profile", "link": self.participants[name].index, "profile": _profile_json(profile)})

    def handover(self, name: str, dark_seconds: float = HANDOVER_DARK_SECONDS) -> str:
        """The link goes dark for ``dark_seconds``, then returns with a new participant address (returned).

        The old address disappears from the participant's namespace while dark,
        as when a phone leaves Wi-Fi for 4G.
        """
        participant = self.participants[name]
        self.set_down(name, True)
        self._edge_address(participant, add=False)
        time.sleep(dark_seconds)
        participant.address_host += 1
        self._edge_address(participant, add=True)
        self.set_down(name, False)
        return participant.address

    def counters(self) -> dict[str, Any]:
        """Per link and direction: packets passed, lost (by the profile), dropped (queue full or dark)."""
        return self._command({"op": "counters"})

    # -- processes and sockets in namespaces

    def namespace(self, name: str) -> str:
        return self.hub if name == "hub" else self.participants[name].namespace

    def popen(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``name``'s namespace ("hub" or a participant); stopped when the lab closes."""
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace(name), *argv], **kwargs)
        self.processes.append(process)
        return process

    def socket(self, name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket living in ``name``'s namespace ("hub" or a participant)."""
        with inside(self.namespace(name)):
            return socket.socket(family, kind)

    def wrapper(self, name: str, executable: str, folder: str, stderr: str | None = None) -> str:
        """A script in ``folder`` that runs ``executable`` in ``name``'s namespace (for Playwright),
        its standard error appended to ``stderr`` if given (Chromium's own log)."""
        path = os.path.join(folder, f"in-{self.namespace(name)}-{os.path.basename(executable)}")
        redirect = f" 2>>{shlex.quote(stderr)}" if stderr else ""
        with open(path, "w") as handle:
            handle.write(f"#!/bin/sh\nexec ip netns exec {self.namespace(name)} {executable} \"$@\"{redirect}\n")
        os.chmod(path, 0o755)
        return path

    # -- forwarder control

    def _send_fds(self, message: dict[str, Any], fds: list[int]) -> None:
        assert self._fd_channel is not None
        socket.send_fds(self._fd_channel, [b"fds"], fds)
        self._command(message)

    def _command(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._forwarder is not None
        self._forwarder.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        self._forwarder.stdin.flush()  # type: ignore[union-attr]
        return self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self._forwarder is not None
        line = self._forwarder.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the netlab forwarder exited ({self._forwarder.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"netlab forwarder: {answer['error']}")
        return answer


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _profile_json(profile: Profile) -> dict[str, Any]:
    return {"down": vars(profile.down), "up": vars(profile.up)}


# ---------------------------------------------------------------- the forwarder process


class _Pipe:
    """One direction of one link: loss, then a bounded token-bucket queue, then a delay line."""

    BLOCK = 100

    def __init__(self, out_fd: int, params: Direction, rng: random.Random) -> None:
        self.out_fd = out_fd
        self.rng = rng
        self.down = False
        self.queue: deque[tuple[float, bytes]] = deque()  # (arrival time, packet)
        self.queued_bytes = 0
        self.link_free_at = 0.0
        self.line: deque[tuple[float, bytes]] = deque()
        self.last_release = 0.0
        self.passed = self.lost = self.dropped = 0
        self.kinds: dict[str, list[int]] = {}  # kind -> [packets in, bytes in, dropped in the queue]
        self._block_left = 0
        self._block_losses: set[int] = set()
        self.configure(params)

    def configure(self, params: Direction) -> None:
        self.params = params
        self.queue_limit = int(params.rate_bps * params.queue_ms / 8000) if params.rate_bps else 0

    def _lose(self) -> bool:
        # Exactly round(loss x BLOCK) packets of every BLOCK, at random places: the rate of the
        # profile holds over short runs too (independent draws need tens of thousands of packets).
        if self._block_left == 0:
            self._block_left = self.BLOCK
            count = round(self.params.loss * self.BLOCK)
            self._block_losses = set(self.rng.sample(range(self.BLOCK), count))
        self._block_left -= 1
        return self._block_left in self._block_losses

    def ingress(self, packet: bytes, now: float) -> None:
        tally = self.kinds.setdefault(packet_kind(packet), [0, 0, 0])
        tally[0] += 1
        tally[1] += len(packet)
        if self.down:
            self.dropped += 1
            return
        if self.params.loss and self._lose():
            self.lost += 1
            return
        if not self.params.rate_bps:
            self._delay(packet, now)
            return
        # What the link would have sent by now has left the queue, even if this process woke late.
        self._transmit(now)
        if self.queued_bytes + len(packet) > max(self.queue_limit, 1500):
            self.dropped += 1
            tally[2] += 1
            return
        self.queue.append((now, packet))
        self.queued_bytes += len(packet)

    def _transmit(self, now: float) -> None:
        """Serialise queued packets onto the link up to ``now``, on the link's own clock.

        A packet starts when the link is free or when it arrived, whichever is later, so a late
        wake-up of this process (a busy machine) neither loses link time nor credits idle time.
        """
        rate = self.params.rate_bps
        while self.queue and self.link_free_at <= now:
            arrived, packet = self.queue.popleft()
            self.queued_bytes -= len(packet)
            self.link_free_at = max(self.link_free_at, arrived) + len(packet) * 8 / rate
            self._delay(packet, self.link_free_at)

    def _delay(self, packet: bytes, sent: float) -> None:
        params = self.params
        jitter = self.rng.uniform(-params.jitter_ms, params.jitter_ms) if params.jitter_ms else 0.0
        release = max(sent + max(0.0, params.delay_ms + jitter) / 1000, self.last_release)
        self.last_release = release
        self.line.append((release, packet))

    def service(self, now: float) -> float:
        """Move what is due; answer the time of the next thing to do (inf if none)."""
        if self.params.rate_bps:
            self._transmit(now)
        while self.line and self.line[0][0] <= now:
            _, packet = self.line.popleft()
            if self.down:
                self.dropped += 1
                continue
            try:
                os.write(self.out_fd, packet)
                self.passed += 1
            except OSError:
                self.dropped += 1
        upcoming = float("inf")
        if self.queue:
            upcoming = self.link_free_at
        if self.line:
            upcoming = min(upcoming, self.line[0][0])
        return upcoming


def packet_kind(packet: bytes) -> str:
    """What an IP packet on a link carries, for the counters: ``stun``, ``dtls``, ``rtcp``,
    ``rtp<payload type>``, ``tcp`` or ``other`` (RTP and RTCP headers are not encrypted)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return "other"
    header = (packet[0] & 0x0F) * 4
    if packet[9] == 6:
        return "tcp"
    if packet[9] != 17 or len(packet) < header + 10:
        return "other"
    first, second = packet[header + 8], packet[header + 9]
    if first < 4:
        return "stun"
    if 20 <= first < 64:
        return "dtls"
    if 128 <= first < 192:
        return "rtcp" if 192 <= second <= 223 else f"rtp{second & 0x7F}"
    return "other"


def _direction(data: dict[str, Any]) -> Direction:
    return Direction(**data)


def forward(fd_socket: int, seed: int | None = None) -> None:
    """The forwarder's loop: commands on stdin (one JSON a line), an answer a line on stdout."""
    rng = random.Random(seed)
    channel = socket.socket(fileno=fd_socket)
    poller = select.epoll()
    links: dict[int, tuple[_Pipe, _Pipe]] = {}
    readers: dict[int, _Pipe] = {}  # fd read -> the pipe its packets enter
    stdin = sys.stdin.fileno()
    poller.register(stdin, select.EPOLLIN)
    buffer = b""

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def command(message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "link":
            _, (hub_fd, edge_fd), _, _ = socket.recv_fds(channel, 16, 2)
            profile = message["profile"]
            down = _Pipe(edge_fd, _direction(profile["down"]), rng)  # hub -> participant
            up = _Pipe(hub_fd, _direction(profile["up"]), rng)  # participant -> hub
            links[message["link"]] = (down, up)
            readers[hub_fd], readers[edge_fd] = down, up
            poller.register(hub_fd, select.EPOLLIN)
            poller.register(edge_fd, select.EPOLLIN)
            answer({"ok": True})
        elif op in ("down", "up"):
            for pipe in links[message["link"]]:
                pipe.down = op == "down"
            answer({"ok": True})
        elif op == "profile":
            down, up = links[message["link"]]
            down.configure(_direction(message["profile"]["down"]))
            up.configure(_direction(message["profile"]["up"]))
            answer({"ok": True})
        elif op == "counters":
            answer({
                str(link): {
                    name: {"passed": p.passed, "lost": p.lost, "dropped": p.dropped, "kinds": p.kinds}
                    for name, p in (("down", pipes[0]), ("up", pipes[1]))
                }
                for link, pipes in links.items()
            })
        else:
            answer({"error": f"unknown op {op!r}"})

    next_due = float("inf")
    while True:
        timeout = -1.0 if next_due == float("inf") else max(0.0, next_due - time.monotonic())
        for fd, _ in poller.poll(timeout):
            if fd == stdin:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    try:
                        command(json.loads(line))
                    except Exception as error:
                        answer({"error": repr(error)})
                continue
            pipe = readers[fd]
            now = time.monotonic()
            for _ in range(64):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno in (errno.EAGAIN, errno.EBADFD):
                        break
                    raise
                pipe.ingress(packet, now)
        now = time.monotonic()
        next_due = float("inf")
        for pipes in links.values():
            for pipe in pipes:
                next_due = min(next_due, pipe.service(now))


# ---------------------------------------------------------------- measuring a link


def probe_rtt(lab: Lab, name: str, *, count: int = 100, interval: float = 0.02) -> dict[str, float]:
    """Round-trip times (ms) and round-trip loss (fraction) of small UDP probes hub <-> ``name``.

    ``rtt_ms`` is the median; ``rtt_p25_ms`` the first quartile, which a busy
    machine's scheduling delays (they only ever add) disturb least.
    """
    echo = lab.socket("hub")
    client = lab.socket(name)
    stop = threading.Event()
    with echo, client:
        echo.bind((lab.participants[name].hub_address, 0))
        echo.settimeout(0.2)
        target = echo.getsockname()

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, peer = echo.recvfrom(2048)
                except TimeoutError:
                    continue
                echo.sendto(data, peer)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        sent: dict[int, float] = {}
        rtts: list[float] = []
        client.setblocking(False)
        try:
            for seq in range(count):
                sent[seq] = time.monotonic()
                with contextlib.suppress(OSError):  # no route while a handover has the link dark
                    client.sendto(struct.pack("!I", seq) + b"\0" * 28, target)
                _drain(client, sent, rtts, until=time.monotonic() + interval)
            _drain(client, sent, rtts, until=time.monotonic() + 1.0 + lab.participants[name].profile.rtt_ms / 1000)
        finally:
            stop.set()
            server.join(timeout=2)
    rtts.sort()
    nan = float("nan")
    return {"rtt_ms": rtts[len(rtts) // 2] if rtts else nan, "rtt_p25_ms": rtts[len(rtts) // 4] if rtts else nan,
            "loss": 1 - len(rtts) / count}


def _drain(sock: socket.socket, sent: dict[int, float], rtts: list[float], *, until: float) -> None:
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        if not select.select([sock], [], [], left)[0]:
            return
        data = sock.recv(2048)
        seq = struct.unpack("!I", data[:4])[0]
        if seq in sent:
            rtts.append((time.monotonic() - sent.pop(seq)) * 1000)


def probe_one_way(lab: Lab, name: str, *, direction: str, packets: int, size: int, rate_bps: float) -> dict[str, float]:
    """Send ``packets`` UDP datagrams of ``size`` bytes at ``rate_bps`` one way; what arrived.

    Answers ``loss`` (fraction not received) and ``rate_bps`` (IP bytes received
    per second between the first and the last arrival).
    """
    participant = lab.participants[name]
    source, sink = (("hub", name) if direction == "down" else (name, "hub"))
    sink_address = participant.address if direction == "down" else participant.hub_address
    receiver = lab.socket(sink)
    sender = lab.socket(source)
    with receiver, sender:
        receiver.bind((sink_address, 0))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        target = receiver.getsockname()
        arrivals: list[float] = []
        done = threading.Event()

        def receive() -> None:
            receiver.settimeout(0.2)
            quiet_since = None
            while True:
                try:
                    receiver.recv(65536)
                    arrivals.append(time.monotonic())
                    quiet_since = None
                except TimeoutError:
                    if done.is_set():
                        quiet_since = quiet_since or time.monotonic()
                        if time.monotonic() - quiet_since > 1.0 + participant.profile.rtt_ms / 1000:
                            return

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        payload = b"\0" * size
        gap = (size + 28) * 8 / rate_bps
        start = time.monotonic()
        for index in range(packets):
            delay = start + index * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sender.sendto(payload, target)
        done.set()
        thread.join(timeout=60)
    received = len(arrivals)
    span = arrivals[-1] - arrivals[0] if received > 1 else 0.0
    return {
        "loss": 1 - received / packets,
        "rate_bps": (received - 1) * (size + 28) * 8 / span if span > 0 else float("nan"),
        "received": received,
    }


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="the network lab's forwarder (started by tests.netlab.Lab)")
    sub = parser.add_subparsers(dest="what", required=True)
    fwd = sub.add_parser("forward")
    fwd.add_argument("--seed", type=int)
    fwd.add_argument("--fd-socket", type=int, required=True)
    sub.add_parser("clean", help="delete netlab namespaces left by runs that are gone")
    args = parser.parse_args()
    if args.what == "forward":
        with contextlib.suppress(OSError):
            os.nice(-10)  # the forwarder plays the network: a busy machine should not stretch its delays
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        forward(args.fd_socket, args.seed)
    else:
        print("\n".join(clean_stale()))




# ---------------------------------------------------------------- pytest


def lab_fixture() -> Iterator[Lab]:
    """A fresh lab for one test; skipped with the reason where it cannot run (failed under CI=true)."""
    from tests.conftest import skip_or_fail

    reason = lab_unavailable()
    if reason:
        skip_or_fail(reason)
    with Lab() as lab:
        yield lab


if __name__ == "__main__":
    _main()
