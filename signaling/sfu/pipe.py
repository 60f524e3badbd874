"""Pipes between SFU processes: one meeting spread over several workers.

A worker holding a publisher sends his tracks' RTP packets, as they arrive,
to each worker that asked for them (as mediasoup's pipe transports do):
plain UDP between the workers, no ICE, DTLS or SRTP, each datagram a small
typed header, the publisher's payload unchanged and a tag: keyed BLAKE2b
(RFC 7693's MAC mode) of the rest under the pipe's key, a secret of the two
workers for that meeting that one of them drew and told the other over the
channel layer (`signaling.messages.PipeOpen`). A datagram whose tag does not
hold (forged, altered, or of someone without the key) is refused and counted
(:attr:`PipeEndpoint.datagrams_refused`) before anything of it is read further.
The receiving worker feeds the packets into a :class:`PipedTrackForwarder`,
which its meeting treats as any published track (slots, allocation, NACKs
answered from its cache, speaker detection); its keyframe requests go back over
the pipe to the publisher's worker, which asks the publisher (one request
pending per track, as for local subscribers), and so do the NACKs its cache
cannot answer (a packet lost on the pipe): the publisher's worker resends it
from its own cache.

The data plane keeps soft state: the sending side announces each piped track
(its meeting, publisher and source) every second, and its sender reports with
it; a track its worker stopped announcing (while announcing others) for
:data:`TRACK_TIMEOUT` seconds, or whose worker went silent for :data:`SILENCE_TIMEOUT`
seconds (it died; the engine drops its tracks sooner, when its heartbeat expires), is
unpublished on the receiving side. Which worker pipes
to which is decided elsewhere (the engine, through the channel layer): this
module only accepts announces from the workers it was told to accept
(:meth:`PipeEndpoint.accept`) for the meetings it was told.

Datagrams (network byte order), version 2, each followed by its 16-byte tag::

    RTP       ver type track(u16) layer layers flags pt seq(u16) ts(u32) ssrc(u32) level | payload
    REPORT    ver type track(u16) layer ntp(u64) rtp(u32) ssrc(u32)
    KEYFRAME  ver type track(u16) layer
    ANNOUNCE  ver type track(u16) source(u8) | meeting utf-8 \\0 publisher utf-8
    GONE      ver type track(u16)
    NACK      ver type track(u16) layer seq(u16)

A datagram's key is found before its tag is checked: an ANNOUNCE names its
meeting; the others name a track, piped to or from the sender, of one meeting.
Not refused: a genuine datagram sent again (replayed) while the pipe lives;
a duplicate RTP packet is dropped by the forwarding as any duplicate.

``flags``: 1 marker, 2 RED (the payload type is the publisher's RED one),
4 an audio level is present (``level``: its value, bit 7 the voice flag).
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import hashlib
import hmac
import itertools
import logging
import socket
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.rtp import RtpPacket

from .forwarding import TrackForwarder
from .types import TrackSource

logger = logging.getLogger(__name__)

VERSION = 2
#: Bytes of each datagram's tag (keyed BLAKE2b), and of a pipe's key.
TAG_SIZE = 16
KEY_SIZE = 32
#: A piped track not announced for this long (s) while its worker announces others is gone.
TRACK_TIMEOUT = 3.0
#: A worker none of whose tracks was announced for this long (s) is gone. Longer than
#: TRACK_TIMEOUT: a loaded worker's loop stalls for seconds (its announces late, as everything
#: else), and dropping its tracks then only made more work; a dead worker's tracks go when its
#: heartbeat expires (6 s, the engine's `peer_gone`).
SILENCE_TIMEOUT = 10.0
#: How often (s) the sending side announces its tracks and their sender reports.
ANNOUNCE_INTERVAL = 1.0
#: A packet lost on the pipe is asked of its worker at most once in this long (s): its
#: retransmission may still be on its way (a round trip between two workers of one network,
#: each with a busy loop), and each of its subscribers NACKs it too.
NACK_INTERVAL = 0.1
#: At most this many packets asked per piped track and second (a burst of loss on the pipe).
MAX_NACKS_PER_SECOND = 400
_BUFFER = 4 * 1024 * 1024
_BURST = 64  # datagrams read per wake-up of the loop
_MAX_DATAGRAM = 4096

RTP_HEADER = struct.Struct("!BBHBBBBHIIB")
REPORT = struct.Struct("!BBHBQII")
KEYFRAME = struct.Struct("!BBHB")
ANNOUNCE = struct.Struct("!BBHB")
GONE = struct.Struct("!BBH")
NACK = struct.Struct("!BBHBH")

_MARKER, _RED, _LEVEL = 1, 2, 4
_SOURCES = tuple(TrackSource)

Address = tuple[str, int]


class Datagram(enum.IntEnum):
    RTP = 1
    REPORT = 2
    KEYFRAME = 3
    ANNOUNCE = 4
    GONE = 5
    NACK = 6


def tag(key: bytes, data: bytes) -> bytes:
    """The tag that authenticates ``data`` on a pipe whose key is ``key``."""
    return hashlib.blake2b(data, key=key, digest_size=TAG_SIZE).digest()


@dataclass(frozen=True, slots=True)
class PipedTrackInfo:
    """A remote track as its worker announced it."""

    meeting_id: str
    publisher_id: str
    source: TrackSource


class PipedTrackForwarder(TrackForwarder):
    """A track published on another worker, fed by its pipe; keyframe requests go back
    over the pipe (the publisher's worker throttles them again), and so do the packets a
    subscriber NACKs that never came through the pipe (:meth:`on_missing`)."""

    def __init__(
        self,
        *,
        info: PipedTrackInfo,
        ask_keyframe: Callable[[int], None],
        ask_packet: Callable[[int, int], None],
        **kwargs: object,
    ) -> None:
        super().__init__(participant_id=info.publisher_id, source=info.source, receiver=None, **kwargs)  # type: ignore[arg-type]
        self.info = info
        self._ask_keyframe = ask_keyframe
        self._ask_packet = ask_packet
        self.heard = time.monotonic()
        self._asked: dict[tuple[int, int], float] = {}  # (layer, seq) -> when
        self._asked_window = 0.0
        self._asked_in_window = 0
        #: Packets asked of the publisher's worker (lost on the pipe), and NACKs held back.
        self.packets_asked = 0
        self.asks_throttled = 0

    def _send_keyframe_request(self, ssrc: int, layer: int) -> None:
        self._ask_keyframe(layer)

    def on_missing(self, sequence_number: int, layer: int = 0) -> None:
        """A subscriber here NACKed a packet that never came through the pipe: ask the
        publisher's worker for it (its cache answers), once per :data:`NACK_INTERVAL` and
        at most :data:`MAX_NACKS_PER_SECOND` a second."""
        now = self._clock()
        key = (layer, sequence_number)
        last = self._asked.get(key)
        if last is not None and now - last < NACK_INTERVAL:
            self.asks_throttled += 1
            return
        if now - self._asked_window >= 1.0:
            self._asked_window, self._asked_in_window = now, 0
            # What was asked over a second ago no longer holds anything back.
            self._asked = {k: t for k, t in self._asked.items() if now - t < NACK_INTERVAL}
        if self._asked_in_window >= MAX_NACKS_PER_SECOND:
            self.asks_throttled += 1
            return
        self._asked[key] = now
        self._asked_in_window += 1
        self.packets_asked += 1
        self._ask_packet(sequence_number, layer)


class PipeSink:
    """What a meeting offers a pipe's receiving side: it adds and removes remote tracks."""

    def __init__(
        self,
        *,
        make: Callable[[PipedTrackInfo, Callable[[int], None], Callable[[int, int], None]], PipedTrackForwarder],
        remove: Callable[[PipedTrackForwarder], None],
    ) -> None:
        self.make = make
        self.remove = remove


class _Outgoing:
    """One local track piped to one worker."""

    __slots__ = ("forwarder", "meeting_id", "number", "tap", "to")

    def __init__(self, meeting_id: str, forwarder: TrackForwarder, number: int, to: Address) -> None:
        self.meeting_id = meeting_id
        self.forwarder = forwarder
        self.number = number
        self.to = to
        self.tap: Callable[[RtpPacket, bool, int], None] | None = None


class PipeEndpoint:
    """A worker's one UDP socket for pipes, both ways: read in bursts (up to
    :data:`_BURST` datagrams per wake-up of the loop, as the ICE sockets are), written
    with a non-blocking ``sendto`` (a datagram the kernel cannot take is dropped and counted).

    Every datagram to or from a worker, for a meeting, is tagged under the key given for that
    pair (:meth:`set_key`, before piping either way); one without a key or whose tag does not
    hold is refused (:attr:`datagrams_refused`).

    Sending side: :meth:`pipe_track` taps a local track and sends its packets to a worker;
    :meth:`unpipe_track` stops it (and tells the worker). Receiving side: :meth:`accept`
    lets a worker's announces for a meeting create tracks through the meeting's
    :class:`PipeSink`; :meth:`refuse` drops them.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.address: Address = ("", 0)
        self._numbers = itertools.count(1)
        self._out: dict[tuple[int, Address], _Outgoing] = {}  # (id(forwarder), to)
        self._out_by_number: dict[int, _Outgoing] = {}
        self._accepted: dict[tuple[Address, str], PipeSink] = {}
        self._in: dict[tuple[Address, int], PipedTrackForwarder] = {}
        self._keys: dict[tuple[Address, str], bytes] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.datagrams_dropped = 0
        self.datagrams_unsent = 0
        #: Datagrams whose tag did not hold under their pipe's key, or that no key was given for.
        self.datagrams_refused = 0
        #: Packets resent from this worker's cache to a worker that lost them on the pipe.
        self.packets_resent = 0
        #: Remote tracks dropped for want of an announce (:meth:`tick`).
        self.tracks_timed_out = 0

    async def start(self, bind_address: str, port: int = 0) -> Address:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
        sock.bind((bind_address, port))
        sock.setblocking(False)
        self._sock = sock
        loop.add_reader(sock.fileno(), self._readable)
        host, bound = sock.getsockname()[:2]
        self.address = (host, bound)
        self._ticker = loop.create_task(self._tick_forever())
        return self.address

    def _readable(self) -> None:
        sock = self._sock
        for _ in range(_BURST):
            if sock is None:
                return
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error of an earlier sendto, reported here
                continue
            self.datagram_received(data, addr)
            sock = self._sock

    def set_key(self, meeting_id: str, worker: Address, key: bytes) -> None:
        """Tag what goes to ``worker`` for ``meeting_id`` with ``key``, and take from it only
        what is tagged so (the pair's secret, the same both ways; a new one replaces it)."""
        if len(key) != KEY_SIZE:
            raise ValueError(f"a pipe's key has {KEY_SIZE} bytes, not {len(key)}")
        self._keys[(worker, meeting_id)] = key

    # ------------------------------------------------------------ sending side

    def pipe_track(self, meeting_id: str, forwarder: TrackForwarder, to: Address) -> None:
        """Send ``forwarder``'s packets to the worker at ``to`` (idempotent; its key set)."""
        key = (id(forwarder), to)
        if key in self._out:
            return
        out = _Outgoing(meeting_id, forwarder, next(self._numbers) % 0xFFFF + 1, to)

        def tap(packet: RtpPacket, keyframe: bool, layer: int) -> None:
            self._send_rtp(out, packet, layer)

        out.tap = tap
        forwarder.taps = (*forwarder.taps, tap)
        self._out[key] = out
        self._out_by_number[out.number] = out
        self._announce(out)
        forwarder.request_keyframe()  # the remote subscribers start at a keyframe

    def _send_rtp(self, out: _Outgoing, packet: RtpPacket, layer: int) -> None:
        forwarder = out.forwarder
        flags = _MARKER if packet.marker else 0
        if packet.payload_type == forwarder.red_payload_type:
            flags |= _RED
        level = packet.extensions.audio_level
        value = 0
        if level is not None:
            flags |= _LEVEL
            value = (0x80 if level[0] else 0) | (level[1] & 0x7F)
        self._send(
            RTP_HEADER.pack(
                VERSION, Datagram.RTP, out.number, layer, max(1, len(forwarder.rids)), flags, packet.payload_type,
                packet.sequence_number, packet.timestamp, packet.ssrc, value,
            ) + packet.payload,
            out.to,
            out.meeting_id,
        )

    def unpipe_track(self, forwarder: TrackForwarder, to: Address) -> None:
        out = self._out.pop((id(forwarder), to), None)
        if out is None:
            return
        self._out_by_number.pop(out.number, None)
        forwarder.taps = tuple(t for t in forwarder.taps if t is not out.tap)
        self._send(GONE.pack(VERSION, Datagram.GONE, out.number), to, out.meeting_id)

    def piped(self, to: Address | None = None) -> tuple[TrackForwarder, ...]:
        """The local tracks piped (to ``to``, or anywhere)."""
        return tuple(out.forwarder for out in self._out.values() if to is None or out.to == to)

    def _announce(self, out: _Outgoing) -> None:
        forwarder = out.forwarder
        body = out.meeting_id.encode() + b"\0" + forwarder.participant_id.encode()
        self._send(
            ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, out.number, _SOURCES.index(forwarder.source)) + body,
            out.to,
            out.meeting_id,
        )
        for layer in range(max(1, len(forwarder.rids))):
            report = forwarder.layer_sender_report(layer)
            ssrc = forwarder.layer_ssrc(layer)
            if report is not None and ssrc is not None:
                self._send(
                    REPORT.pack(VERSION, Datagram.REPORT, out.number, layer, report[0], report[1], ssrc),
                    out.to,
                    out.meeting_id,
                )

    # ------------------------------------------------------------ receiving side

    def accept(self, meeting_id: str, worker: Address, sink: PipeSink) -> None:
        """Take the tracks of ``meeting_id`` that the worker at ``worker`` pipes here."""
        self._accepted[(worker, meeting_id)] = sink

    def refuse(self, meeting_id: str, worker: Address) -> None:
        """Stop taking them; the tracks already made are removed, the pair's key forgotten."""
        self._accepted.pop((worker, meeting_id), None)
        self._keys.pop((worker, meeting_id), None)
        for key, forwarder in list(self._in.items()):
            if key[0] == worker and forwarder.info.meeting_id == meeting_id:
                self._drop(key)

    def remote_tracks(self) -> tuple[PipedTrackForwarder, ...]:
        return tuple(self._in.values())

    def _drop(self, key: tuple[Address, int]) -> None:
        forwarder = self._in.pop(key, None)
        if forwarder is None:
            return
        sink = self._accepted.get((key[0], forwarder.info.meeting_id))
        if sink is not None:
            sink.remove(forwarder)
        task = asyncio.ensure_future(forwarder.close())
        task.add_done_callback(lambda t: t.exception())

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self._received(data, (str(addr[0]), int(addr[1])))
        except (struct.error, ValueError, IndexError, UnicodeDecodeError):
            self.datagrams_dropped += 1

    def _genuine(self, data: bytes, sender: Address, meeting_id: str) -> bool:
        """Whether ``data``'s tag holds under the key of ``sender`` for ``meeting_id`` (else counted)."""
        key = self._keys.get((sender, meeting_id))
        if key is None or not hmac.compare_digest(data[-TAG_SIZE:], tag(key, data[:-TAG_SIZE])):
            self.datagrams_refused += 1
            return False
        return True

    def _received(self, data: bytes, sender: Address) -> None:
        if len(data) < 4 + TAG_SIZE or data[0] != VERSION:
            self.datagrams_dropped += 1
            return
        kind = data[1]
        number = (data[2] << 8) | data[3]
        if kind in (Datagram.RTP, Datagram.REPORT, Datagram.GONE):
            forwarder = self._in.get((sender, number))
            if forwarder is None:
                self.datagrams_dropped += 1
                return
            if not self._genuine(data, sender, forwarder.info.meeting_id):
                return
            if kind == Datagram.RTP:
                self._rtp_received(forwarder, data)
            elif kind == Datagram.REPORT:
                _, _, _, layer, ntp, rtp, ssrc = REPORT.unpack_from(data)
                forwarder.on_sender_report(ntp, rtp, ssrc if forwarder.layered else None)
            else:
                self._drop((sender, number))
        elif kind in (Datagram.KEYFRAME, Datagram.NACK):
            out = self._out_by_number.get(number)
            if out is None or out.to != sender:
                self.datagrams_dropped += 1
                return
            if not self._genuine(data, sender, out.meeting_id):
                return
            if kind == Datagram.KEYFRAME:
                out.forwarder.request_keyframe(data[4])
            else:
                _, _, _, layer, seq = NACK.unpack_from(data)
                packet = out.forwarder.cached(seq, layer)
                if packet is not None and not out.forwarder.muted:
                    self.packets_resent += 1
                    self._send_rtp(out, packet, layer)
        elif kind == Datagram.ANNOUNCE:
            _, _, _, source = ANNOUNCE.unpack_from(data)
            meeting_id, publisher_id = data[ANNOUNCE.size:-TAG_SIZE].decode().split("\0", 1)
            if (sender, meeting_id) not in self._accepted:
                self.datagrams_dropped += 1
                return
            if self._genuine(data, sender, meeting_id):
                self._announced(sender, number, PipedTrackInfo(meeting_id, publisher_id, _SOURCES[source]))
        else:
            self.datagrams_dropped += 1

    def _rtp_received(self, forwarder: PipedTrackForwarder, data: bytes) -> None:
        _, _, _, layer, layers, flags, pt, seq, timestamp, ssrc, value = RTP_HEADER.unpack_from(data)
        packet = RtpPacket(
            payload_type=pt, marker=bool(flags & _MARKER), sequence_number=seq, timestamp=timestamp, ssrc=ssrc,
            payload=data[RTP_HEADER.size:-TAG_SIZE],
        )
        if flags & _LEVEL:
            packet.extensions.audio_level = (bool(value & 0x80), value & 0x7F)
        if flags & _RED:
            forwarder.red_payload_type = pt
        if layers > 1:
            if len(forwarder.rids) != layers:
                forwarder.set_rids(tuple(str(i) for i in range(layers)))
            packet.extensions.rtp_stream_id = str(layer)
        forwarder.on_packet(packet)

    def _announced(self, sender: Address, number: int, info: PipedTrackInfo) -> None:
        key = (sender, number)
        existing = self._in.get(key)
        if existing is not None:
            if existing.info == info:
                existing.heard = time.monotonic()
                return
            self._drop(key)
        sink = self._accepted[(sender, info.meeting_id)]
        meeting_id = info.meeting_id

        def ask_keyframe(layer: int) -> None:
            self._send(KEYFRAME.pack(VERSION, Datagram.KEYFRAME, number, layer), sender, meeting_id)

        def ask_packet(seq: int, layer: int) -> None:
            self._send(NACK.pack(VERSION, Datagram.NACK, number, layer, seq), sender, meeting_id)

        self._in[key] = sink.make(info, ask_keyframe, ask_packet)

    # ------------------------------------------------------------ both

    def _send(self, data: bytes, to: Address, meeting_id: str) -> None:
        sock = self._sock
        key = self._keys.get((to, meeting_id))
        if sock is None or key is None:
            return
        try:
            sock.sendto(data + tag(key, data), to)
        except OSError:  # full (BlockingIOError) or refused: UDP, the next one may pass
            self.datagrams_unsent += 1

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_INTERVAL)
            try:
                self.tick(time.monotonic())
            except Exception:  # a bug must not stop every pipe of the worker
                logger.exception("SFU pipes: announce round failed")

    def tick(self, now: float) -> None:
        """Announce every piped track again; drop remote tracks not announced lately.

        Not while datagrams wait unread in the socket: a loop that is behind (a loaded
        worker) would drop tracks whose announces are in there, each would come back at its
        next announce, and every drop and return switches the slots of the worker's
        participants and asks a keyframe — more work, the loop later still (512 drops in one
        run of the assembly at 100 over two workers). A worker silent for SILENCE_TIMEOUT is
        gone (its tracks go at the first tick that finds the socket read through); a track its
        worker stopped announcing while announcing others goes once their announces are
        TRACK_TIMEOUT newer."""
        for out in tuple(self._out.values()):
            self._announce(out)
        if not self._in:
            return
        newest: dict[Address, float] = {}
        for (sender, _number), forwarder in self._in.items():
            newest[sender] = max(newest.get(sender, 0.0), forwarder.heard)
        behind = self.unread()
        for key, forwarder in list(self._in.items()):
            latest = newest[key[0]]
            silent = now - latest > SILENCE_TIMEOUT and not behind
            if silent or latest - forwarder.heard > TRACK_TIMEOUT:
                self.tracks_timed_out += 1
                self._drop(key)

    def unread(self) -> bool:
        """Whether a datagram waits in the pipe socket (FIONREAD: the next one's size, Linux)."""
        sock = self._sock
        if sock is None:
            return False
        try:
            return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0] > 0
        except OSError:
            return False

    def kill(self) -> None:
        """Go silent as a crashed worker does (tests): no goodbye, no more announces."""
        if self._ticker is not None:
            self._ticker.cancel()
        self._close_socket()

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    async def close(self) -> None:
        """Stop piping (the workers are told), drop every remote track, close the socket."""
        for out in tuple(self._out.values()):
            self.unpipe_track(out.forwarder, out.to)
        for key in list(self._in):
            self._drop(key)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        self._close_socket()
