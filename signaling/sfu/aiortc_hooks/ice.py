"""ICE: host candidates in a port range, the media sockets' protocol.

Private names used: ``aioice.Connection.get_component_candidates/_protocols/
_nominated/build_request/remote_password/query_consent/_query_consent_task/_local_username/
_local_password/_check_list/check_start_task``, ``aioice.stun.TransactionError``,
``aioice.ice.StunProtocol`` (``receiver``, ``local_candidate``,
``transport``), ``RTCIceGatherer._connection``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import platform
import random
import socket
import struct
import sys
import time
import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import CONSENT_INTERVAL, CandidatePair, StunProtocol
from aioice.utils import random_string
from aiortc import RTCPeerConnection

from ..types import NoFreePort
from .receive import receive_srtp
from .send import begin_burst, end_burst

logger = logging.getLogger(__name__)


class _MediaStunProtocol(StunProtocol):
    """aioice's protocol for a host candidate, with tapped receivers' SRTP taken synchronously.

    STUN and DTLS go where aioice sends them; RTP/RTCP (first byte 128-191,
    which STUN never uses) skip aioice's attempt to parse them as STUN and go
    to :func:`_receive_srtp`, or else to the connection's queue as before.
    """

    #: The bound socket, which :class:`RtpWriter` sends on directly.
    hirfa_socket: socket.socket | None = None
    #: Transaction ids of the round trips being timed (:func:`stun_round_trip`) -> the kernel's
    #: arrival time of their answer (Unix seconds), once read.
    hirfa_timed: dict[bytes, float | None] | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        """Handle the datagram asyncio read, then those already waiting on the socket.

        A video frame arrives as a burst of packets; reading the rest of the
        burst here (at most ``_DRAIN`` more, never blocking) saves an event-loop
        iteration and an ``epoll`` per packet. Each datagram is handled exactly
        as if asyncio had read it; what the SFU forwards meanwhile leaves at
        the end, batched (:func:`.send.begin_burst`).

        Media (RTP, RTCP) that waited in the socket longer than
        :data:`MEDIA_MAX_AGE` is dropped unread: a starved loop that comes back
        to the socket late must not spend itself forwarding what nobody can
        play any more. Such drops do not count in the burst, so a socket that
        is behind is read through to its fresh datagrams (at most
        ``_READ_LIMIT`` reads), and the STUN and DTLS found on the way are
        handled at once: consent checks are answered, not queued behind
        seconds of stale media.
        """
        # What LivenessWatch reads (our mark on aioice's Connection).
        self.receiver._hirfa_last_rx = time.monotonic()  # type: ignore[attr-defined]
        opened = begin_burst()
        try:
            sock = self.hirfa_socket
            if sock is None:
                self._dispatch(data, addr)
                return
            oldest = time.time() - MEDIA_MAX_AGE
            if self.hirfa_timed:
                self._note_arrival(data, sock, None)  # before the next read: the last one is `data`
            # asyncio read `data` without its arrival time: it is older than anything still
            # queued, so the next datagram's age says whether it is stale.
            following = self._read(sock)
            if following is None or not (following[2] < oldest and _is_media(data)):
                self._dispatch(data, addr)
            else:
                _drop_stale()
            handled = 0
            # The socket's queue is in arrival order: once one datagram is fresh, so are all
            # behind it, and they are read without their arrival time (recvfrom: no ancillary
            # data to build and parse for every packet of a loop that keeps up).
            fresh = following is not None and following[2] >= oldest
            for _ in range(_READ_LIMIT):
                if following is None:
                    return
                data, addr, arrived = following
                if arrived < oldest and _is_media(data):
                    _drop_stale()
                else:
                    self._dispatch(data, addr)
                    handled += 1
                    if handled >= _DRAIN:
                        return
                    fresh = fresh or arrived >= oldest
                following = self._read(sock, timed=not fresh)
        finally:
            if opened:
                end_burst()

    def _read(self, sock: socket.socket, *, timed: bool = True) -> tuple[bytes, tuple[Any, ...], float] | None:
        """The next datagram waiting, its sender and when it arrived (``inf``: not known, or not
        ``timed``: never stale); None if none."""
        transport = getattr(self, "transport", None)
        if transport is None or transport.is_closing():
            return None
        try:
            if not timed:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
                if self.hirfa_timed:
                    self._note_arrival(data, sock, None)
                return data, addr, _NEVER_STALE
            data, ancillary, _flags, addr = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.error_received(exc)
            return None
        arrived = _NEVER_STALE  # no arrival time (another platform)
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                arrived = seconds + nanoseconds / 1e9
                break
        if self.hirfa_timed:
            self._note_arrival(data, sock, arrived)
        return data, addr, arrived

    def _note_arrival(self, data: bytes | str, sock: socket.socket, arrived: float | None) -> None:
        """If ``data`` (the datagram last read from ``sock``) answers a timed round trip, note when
        the kernel received it (``arrived``, or asked of the socket)."""
        timed = self.hirfa_timed
        if not timed or not isinstance(data, bytes) or len(data) < 20 or data[0] > 3:
            return  # not STUN
        transaction = data[8:20]
        if transaction not in timed:
            return
        if arrived is None or arrived == _NEVER_STALE:
            try:
                stamp = fcntl.ioctl(sock.fileno(), _SIOCGSTAMPNS, bytes(_TIMESPEC.size))
            except OSError:
                return  # no arrival time: the round trip is timed when the loop read it
            seconds, nanoseconds = _TIMESPEC.unpack(stamp)
            arrived = seconds + nanoseconds / 1e9
        timed[transaction] = arrived

    def _dispatch(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and len(data) >= 12 and 127 < data[0] < 192:
            if not receive_srtp(self.receiver, data):
                self.receiver.data_received(data, self.local_candidate.component)
            return
        super().datagram_received(data, addr)


def _is_media(data: bytes | str) -> bool:
    """RTP or RTCP (RFC 7983: first byte 128-191); STUN (0-3) and DTLS (20-63) are not."""
    return isinstance(data, bytes) and len(data) > 1 and 127 < data[0] < 192


#: Media (RTP, RTCP) that waited longer than this in a media socket is dropped unread (seconds).
MEDIA_MAX_AGE = 0.3

# Fresh datagrams handled per wake-up beyond the first; reads per wake-up at most, stale ones
# included; the largest datagram (as a UDP payload).
_DRAIN = 32
_READ_LIMIT = 4096
_MAX_DATAGRAM = 65536
# The kernel's arrival time of each datagram: Linux's SO_TIMESTAMPNS, which Python's socket
# module does not name (35 in asm-generic/socket.h: x86, ARM, RISC-V). Elsewhere media is never
# judged stale.
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64", "riscv64") else -1
_TIMESPEC = struct.Struct("@ll")
# The arrival time of the last datagram read from a socket (Linux's SIOCGSTAMPNS, asm-generic/sockios.h).
_SIOCGSTAMPNS = 0x8907
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)

_NEVER_STALE = float("inf")

_stale_media_dropped = 0


def _drop_stale() -> None:
    global _stale_media_dropped
    _stale_media_dropped += 1


def stale_media_dropped() -> int:
    """Media datagrams this process dropped unread because they waited past :data:`MEDIA_MAX_AGE`."""
    return _stale_media_dropped


@dataclass(frozen=True, slots=True)
class HostCandidatePolicy:
    """Where host candidates bind and what they announce.

    ``bind_address`` is the local interface (``0.0.0.0`` for all);
    ``announced_addresses`` are written into the candidates, one UDP socket
    each; ports come from ``port_min``..``port_max`` inclusive.
    """

    bind_address: str
    announced_addresses: tuple[str, ...]
    port_min: int
    port_max: int


# Socket buffers of the server's media sockets (the kernel doubles what is asked, and caps it
# at net.core.[rw]mem_max). Sending: a keyframe is sent to every subscriber as a burst, and
# the default 208 KiB overflow while the event loop is busy. Receiving: 512 KiB (1 MiB
# counted, ~450 full-size datagrams: seconds of a camera, a keyframe many times over) so that
# a consent check still finds room behind a loop stalled a second or two; 4 MiB held 30 s of
# a camera, all read late by a starved worker. How late media may be handled is bounded by
# MEDIA_MAX_AGE, not by this size.
_SEND_BUFFER = 4 * 1024 * 1024
_RECEIVE_BUFFER = 512 * 1024


# Every media socket bound in the configured range, while it lives (what ports_in_use counts).
_bound: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def ports_in_use() -> int:
    """UDP ports of the configured range this process holds open for peers now."""
    return sum(1 for sock in list(_bound) if sock.fileno() != -1)


def _bind_in_range(address: str, port_min: int, port_max: int) -> socket.socket:
    ports = list(range(port_min, port_max + 1))
    random.shuffle(ports)
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        if _SO_TIMESTAMPNS != -1:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        _bound.add(sock)
        return sock
    raise NoFreePort(f"no free UDP port on {address} in {port_min}-{port_max}")


def configure_host_candidates(pc: RTCPeerConnection, policy: HostCandidatePolicy) -> None:
    """Make every ICE transport of ``pc`` gather only the policy's host candidates.

    Call after the transceivers exist and before the local description is set;
    calling again is harmless (transports already configured are skipped).
    STUN/TURN candidates are not gathered by configured transports: a server
    with a public address needs none, and one behind NAT announces its public
    address here.
    """
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if getattr(connection, "_hirfa_policy", None) is not None:
            continue
        connection._hirfa_policy = policy  # type: ignore[attr-defined]
        connection._hirfa_dtls = transceiver.receiver.transport  # type: ignore[attr-defined]
        connection._hirfa_unprotect = None  # type: ignore[attr-defined]
        connection.get_component_candidates = _candidate_gatherer(connection, policy)  # type: ignore[method-assign]
        connection.query_consent = types.MethodType(_query_consent, connection)  # type: ignore[method-assign]


#: Consent to send expires when no consent check was answered for this long (RFC 7675: 30 s).
CONSENT_EXPIRY = 30.0
#: Retransmissions of one consent check: sent at 0, 0.5, 1.5, 3.5, 7.5 and 15.5 s, and waited
#: for until ``CONSENT_EXPIRY`` (an answer read up to 30 s late counts).
CONSENT_RETRANSMISSIONS = 5


async def _query_consent(connection: Any) -> None:
    """aioice's consent freshness (RFC 7675), tolerant of a busy event loop.

    aioice sends each check (every ~5 s) once and counts it failed when no
    answer came within 0.5 s: on a loaded server, answers that came but were
    read late expired every peer of a meeting within 30 s of each other. Here
    a check starts every ~5 s whether or not the earlier ones were answered,
    each retransmitted as STUN does and waited for until ``CONSENT_EXPIRY``
    (an answer read late, by a starved loop, still counts), and consent
    expires when no check was answered for ``CONSENT_EXPIRY`` seconds, as the
    RFC says. A peer that dropped off is noticed within seconds by
    :class:`LivenessWatch`, not by this.
    """
    answered = time.monotonic()
    checks: set[asyncio.Future[None]] = set()

    async def check(pair: Any) -> None:
        nonlocal answered
        request = connection.build_request(pair, nominate=False)
        try:
            await asyncio.wait_for(
                pair.protocol.request(
                    request, pair.remote_addr, integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=CONSENT_RETRANSMISSIONS,
                ),
                CONSENT_EXPIRY,
            )
        except (stun.TransactionError, TimeoutError, ConnectionError, OSError, AttributeError):
            return  # unanswered (or the socket is gone): the expiry below decides
        answered = max(answered, time.monotonic())

    try:
        while True:
            await asyncio.sleep(CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            if time.monotonic() - answered >= CONSENT_EXPIRY:
                logger.info("ICE: consent to send expired (no check answered for %.0f s)", CONSENT_EXPIRY)
                connection._query_consent_task = None
                await connection.close()
                return
            for pair in list(connection._nominated.values()):
                task = asyncio.ensure_future(check(pair))
                checks.add(task)
                task.add_done_callback(checks.discard)
    finally:
        for pending in list(checks):
            pending.cancel()


def _candidate_gatherer(connection: Any, policy: HostCandidatePolicy) -> Callable[..., Any]:
    async def get_component_candidates(
        component: int, addresses: Sequence[str], timeout: int = 5
    ) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        candidates = []
        for announced in policy.announced_addresses:
            sock = _bind_in_range(policy.bind_address, policy.port_min, policy.port_max)
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: _MediaStunProtocol(connection), sock=sock
                )
            except BaseException:
                sock.close()
                raise
            port = sock.getsockname()[1]
            # RtpWriter sends media on it directly while asyncio's transport has no backlog.
            protocol.hirfa_socket = sock
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", announced),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=announced,
                port=port,
                type="host",
            )
            connection._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates

    return get_component_candidates


def _connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice connections of ``pc``'s transports (one with BUNDLE), each once."""
    seen: list[Any] = []
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        if all(connection is not c for c in seen):
            seen.append(connection)
    return seen


def restart_ice(pc: RTCPeerConnection) -> None:
    """Give ``pc``'s ICE transport new local credentials: its next offer restarts ICE.

    aiortc cannot restart ICE (RFC 8445 section 9). Its offers read the local
    ufrag and password from aioice's connection, so new ones there make the
    next offer an ICE restart: the browser answers with new credentials of its
    own, gathers on the network it has now and checks from there. Everything
    above ICE stays (DTLS, SRTP, transceivers, the others' m-lines). Call
    before making the offer; :func:`ice_restart_answered` applies the answer.
    """
    for connection in _connections(pc):
        connection._local_username = random_string(4)
        connection._local_password = random_string(22)


def ice_restart_answered(pc: RTCPeerConnection, username: str, password: str) -> bool:
    """Take the remote's ICE credentials from an answer; True if they changed (an ICE restart).

    The media keeps its nominated pair until a check from the new credentials
    succeeds: aioice nominates as the controlling agent on every check, and a
    check that succeeds replaces the nominated pair in place (what
    :class:`RtpWriter` and the consent checks read). The browser checks from
    its new candidates at once (each such check starts a triggered check here,
    even after aioice's connect() ended); pairs that failed while the
    credentials were changing are checked again now.
    """
    changed = False
    for connection in _connections(pc):
        if connection.remote_username == username and connection.remote_password == password:
            continue
        changed = True
        connection.remote_username = username
        connection.remote_password = password
        for pair in list(connection._check_list):
            if pair.state is CandidatePair.State.FAILED and pair.task is None:
                pair.state = CandidatePair.State.WAITING
                connection.check_start_task(pair)
    return changed


def _nominated(pc: RTCPeerConnection) -> tuple[Any, Any] | tuple[None, None]:
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is not None and pair.protocol.transport is not None:
            return connection, pair
        break
    return None, None


async def stun_round_trip(pc: RTCPeerConnection, *, timeout: float = 1.0) -> float | None:
    """Seconds one STUN binding request on the nominated pair takes to be answered.

    The peer answers at once, so the time is his link's round trip with
    whatever waits in its queues: it grows when what is sent to him no longer
    fits (the allocator's delay signal, :meth:`DownlinkEstimate.on_delay`).
    Timed from its sending to the kernel's arrival time of the answer (where the
    media socket knows it: Linux), not to when the event loop read it: a busy
    worker's loop is not his link. ``timeout`` when no answer came in that time
    (lost, or queued longer); ``None`` when there is no nominated pair yet (or any more).
    """
    connection, pair = _nominated(pc)
    if connection is None or pair is None:
        return None
    protocol = pair.protocol
    request = connection.build_request(pair, nominate=False)
    timed = getattr(protocol, "hirfa_timed", None)
    if isinstance(protocol, _MediaStunProtocol):
        if timed is None:
            timed = protocol.hirfa_timed = {}
        timed[request.transaction_id] = None
    sent, started = time.time(), time.monotonic()
    try:
        # In this task (asyncio.timeout, not wait_for's task of its own): the request leaves now.
        async with asyncio.timeout(timeout):
            await protocol.request(
                request, pair.remote_addr, integrity_key=connection.remote_password.encode("utf8"), retransmissions=0
            )
    except (TimeoutError, stun.TransactionError):
        return timeout
    except (ConnectionError, OSError, AttributeError):
        return None
    finally:
        arrived = timed.pop(request.transaction_id, None) if timed is not None else None
    elapsed = time.monotonic() - started
    if arrived is not None and 0.0 <= arrived - sent <= elapsed:
        return arrived - sent
    return elapsed


class LivenessWatch:
    """Notices within seconds that a peer went silent (RFC 7675 consent, made quick).

    aioice checks consent every 5 s and gives up after 6 failures: a phone
    that lost its network stays "connected" for about 30 s. Here, every
    ``interval`` seconds the time since the last datagram from the peer (any:
    RTP, RTCP, STUN, DTLS) is looked at; after ``probe_after`` seconds of
    silence a STUN binding request is sent on the nominated pair (the peer
    answers at once if it is there), and after ``lost_after`` seconds the
    peer counts as lost: ``on_change(False)``; the first datagram after that
    gives ``on_change(True)``. aioice's own consent checks keep running and
    still close the connection for good after their 30 s.

    ``on_moved()`` is called when the nominated pair's remote address changes
    (an ICE restart moved the media to where the peer is now): what was sent
    to the old address meanwhile is lost.
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        on_change: Callable[[bool], None],
        on_moved: Callable[[], None] | None = None,
        interval: float = 0.5,
        probe_after: float = 1.0,
        lost_after: float = 3.0,
    ) -> None:
        self._pc = pc
        self._on_change = on_change
        self._on_moved = on_moved
        self._remote: tuple[Any, ...] | None = None
        self._interval = interval
        self._probe_after = probe_after
        self._lost_after = lost_after
        self._alive = True
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[Any]] = set()
        self.probes_sent = 0

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def _connection(self) -> Any:
        for transceiver in self._pc.getTransceivers():
            return transceiver.receiver.transport.transport._connection
        return None

    async def _run(self) -> None:
        tick = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            previous, tick = tick, time.monotonic()
            if tick - previous > 3 * self._interval:
                # The event loop itself stalled (a busy server): the peer's datagrams may be
                # waiting in the socket. Judge silence on the next round, not now.
                continue
            connection = self._connection()
            pair = connection._nominated.get(1) if connection is not None else None
            last = getattr(connection, "_hirfa_last_rx", None)
            if pair is None or last is None or pair.protocol.transport is None:
                continue  # not connected yet (or any more): aiortc's states say so
            self.check_moved(pair)
            idle = time.monotonic() - last
            if idle >= self._probe_after:
                self._probe(connection, pair)
            alive = idle < self._lost_after
            if alive != self._alive:
                self._alive = alive
                self._on_change(alive)

    def check_moved(self, pair: Any) -> None:
        """Note ``pair`` (the nominated one); ``on_moved()`` if its remote address changed."""
        remote = tuple(pair.remote_addr)
        previous, self._remote = self._remote, remote
        if previous is not None and previous != remote and self._on_moved is not None:
            self._on_moved()

    def _probe(self, connection: Any, pair: Any) -> None:
        async def probe() -> None:
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request, pair.remote_addr, integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=0,
                )
            except (stun.TransactionError, ConnectionError, OSError, AttributeError):
                pass  # no answer: the silence goes on counting

        self.probes_sent += 1
        task = asyncio.ensure_future(probe())
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._probes) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
