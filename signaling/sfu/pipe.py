"""Pipes between SFU processes: one meeting spread over several workers.

A worker holding a publisher sends his tracks' RTP packets, as they arrive,
to each worker that asked for them (as mediasoup's pipe transports do):
plain UDP between the workers of one trusted network, no ICE, DTLS or SRTP,
each datagram a small typed header (:data:`HEADER`) and the publisher's
payload unchanged. The receiving worker feeds them into a
:class:`PipedTrackForwarder`, which its meeting treats as any published track
(slots, allocation, NACKs answered from its cache, speaker detection); its
keyframe requests go back over the pipe to the publisher's worker, which asks
the publisher (one request pending per track, as for local subscribers).

The data plane keeps soft state: the sending side announces each piped track
(its meeting, publisher and source) every second, and its sender reports with
it; a track not announced for :data:`TRACK_TIMEOUT` seconds (its worker died,
the pipe was closed) is unpublished on the receiving side. Which worker pipes
to which is decided elsewhere (the engine, through the channel layer): this
module only accepts announces from the workers it was told to accept
(:meth:`PipeEndpoint.accept`) for the meetings it was told.

Datagrams (network byte order), version 1::

    RTP       ver type track(u16) layer layers flags pt seq(u16) ts(u32) ssrc(u32) level | payload
    REPORT    ver type track(u16) layer ntp(u64) rtp(u32) ssrc(u32)
    KEYFRAME  ver type track(u16) layer
    ANNOUNCE  ver type track(u16) source(u8) | meeting utf-8 \\0 publisher utf-8
    GONE      ver type track(u16)

``flags``: 1 marker, 2 RED (the payload type is the publisher's RED one),
4 an audio level is present (``level``: its value, bit 7 the voice flag).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.rtp import RtpPacket

from .forwarding import TrackForwarder
from .types import TrackSource

logger = logging.getLogger(__name__)

VERSION = 1
#: A piped track not announced for this long (s) is gone (its worker died or stopped piping).
TRACK_TIMEOUT = 3.0
#: How often (s) the sending side announces its tracks and their sender reports.
ANNOUNCE_INTERVAL = 1.0
_BUFFER = 4 * 1024 * 1024
_BURST = 64  # datagrams read per wake-up of the loop
_MAX_DATAGRAM = 4096

RTP_HEADER = struct.Struct("!BBHBBBBHIIB")
REPORT = struct.Struct("!BBHBQII")
KEYFRAME = struct.Struct("!BBHB")
ANNOUNCE = struct.Struct("!BBHB")
GONE = struct.Struct("!BBH")

_MARKER, _RED, _LEVEL = 1, 2, 4
_SOURCES = tuple(TrackSource)

Address = tuple[str, int]


class Datagram(enum.IntEnum):
    RTP = 1
    REPORT = 2
    KEYFRAME = 3
    ANNOUNCE = 4
    GONE = 5


@dataclass(frozen=True, slots=True)
class PipedTrackInfo:
    """A remote track as its worker announced it."""

    meeting_id: str
    publisher_id: str
    source: TrackSource


class PipedTrackForwarder(TrackForwarder):
    """A track published on another worker, fed by its pipe; keyframe requests go back
    over the pipe (the publisher's worker throttles them again)."""

    def __init__(self, *, info: PipedTrackInfo, ask_keyframe: Callable[[int], None], **kwargs: object) -> None:
        super().__init__(participant_id=info.publisher_id, source=info.source, receiver=None, **kwargs)  # type: ignore[arg-type]
        self.info = info
        self._ask_keyframe = ask_keyframe
        self.heard = time.monotonic()

    def _send_keyframe_request(self, ssrc: int, layer: int) -> None:
        self._ask_keyframe(layer)


class PipeSink:
    """What a meeting offers a pipe's receiving side: it adds and removes remote tracks."""

    def __init__(
        self,
        *,
        make: Callable[[PipedTrackInfo, Callable[[int], None]], PipedTrackForwarder],
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
        self._ticker: asyncio.Task[None] | None = None
        self.datagrams_dropped = 0
        self.datagrams_unsent = 0

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

    # ------------------------------------------------------------ sending side

    def pipe_track(self, meeting_id: str, forwarder: TrackForwarder, to: Address) -> None:
        """Send ``forwarder``'s packets to the worker at ``to`` (idempotent)."""
        key = (id(forwarder), to)
        if key in self._out:
            return
        out = _Outgoing(meeting_id, forwarder, next(self._numbers) % 0xFFFF + 1, to)
        header = RTP_HEADER.pack
        number = out.number

        def tap(packet: RtpPacket, keyframe: bool, layer: int) -> None:
            flags = _MARKER if packet.marker else 0
            if packet.payload_type == forwarder.red_payload_type:
                flags |= _RED
            level = packet.extensions.audio_level
            value = 0
            if level is not None:
                flags |= _LEVEL
                value = (0x80 if level[0] else 0) | (level[1] & 0x7F)
            self._send(
                header(
                    VERSION, Datagram.RTP, number, layer, max(1, len(forwarder.rids)), flags, packet.payload_type,
                    packet.sequence_number, packet.timestamp, packet.ssrc, value,
                ) + packet.payload,
                to,
            )

        out.tap = tap
        forwarder.taps = (*forwarder.taps, tap)
        self._out[key] = out
        self._out_by_number[number] = out
        self._announce(out)
        forwarder.request_keyframe()  # the remote subscribers start at a keyframe

    def unpipe_track(self, forwarder: TrackForwarder, to: Address) -> None:
        out = self._out.pop((id(forwarder), to), None)
        if out is None:
            return
        self._out_by_number.pop(out.number, None)
        forwarder.taps = tuple(t for t in forwarder.taps if t is not out.tap)
        self._send(GONE.pack(VERSION, Datagram.GONE, out.number), to)

    def piped(self, to: Address | None = None) -> tuple[TrackForwarder, ...]:
        """The local tracks piped (to ``to``, or anywhere)."""
        return tuple(out.forwarder for out in self._out.values() if to is None or out.to == to)

    def _announce(self, out: _Outgoing) -> None:
        forwarder = out.forwarder
        body = out.meeting_id.encode() + b"\0" + forwarder.participant_id.encode()
        self._send(
            ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, out.number, _SOURCES.index(forwarder.source)) + body, out.to
        )
        for layer in range(max(1, len(forwarder.rids))):
            report = forwarder.layer_sender_report(layer)
            ssrc = forwarder.layer_ssrc(layer)
            if report is not None and ssrc is not None:
                self._send(REPORT.pack(VERSION, Datagram.REPORT, out.number, layer, report[0], report[1], ssrc), out.to)

    # ------------------------------------------------------------ receiving side

    def accept(self, meeting_id: str, worker: Address, sink: PipeSink) -> None:
        """Take the tracks of ``meeting_id`` that the worker at ``worker`` pipes here."""
        self._accepted[(worker, meeting_id)] = sink

    def refuse(self, meeting_id: str, worker: Address) -> None:
        """Stop taking them; the tracks already made are removed."""
        self._accepted.pop((worker, meeting_id), None)
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

    def _received(self, data: bytes, sender: Address) -> None:
        if len(data) < 4 or data[0] != VERSION:
            self.datagrams_dropped += 1
            return
        kind = data[1]
        number = (data[2] << 8) | data[3]
        if kind == Datagram.RTP:
            forwarder = self._in.get((sender, number))
            if forwarder is None:
                self.datagrams_dropped += 1
                return
            _, _, _, layer, layers, flags, pt, seq, timestamp, ssrc, value = RTP_HEADER.unpack_from(data)
            packet = RtpPacket(
                payload_type=pt, marker=bool(flags & _MARKER), sequence_number=seq, timestamp=timestamp, ssrc=ssrc,
                payload=data[RTP_HEADER.size:],
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
        elif kind == Datagram.ANNOUNCE:
            _, _, _, source = ANNOUNCE.unpack_from(data)
            meeting_id, publisher_id = data[ANNOUNCE.size:].decode().split("\0", 1)
            self._announced(sender, number, PipedTrackInfo(meeting_id, publisher_id, _SOURCES[source]))
        elif kind == Datagram.REPORT:
            forwarder = self._in.get((sender, number))
            if forwarder is not None:
                _, _, _, layer, ntp, rtp, ssrc = REPORT.unpack_from(data)
                forwarder.on_sender_report(ntp, rtp, ssrc if forwarder.layered else None)
        elif kind == Datagram.KEYFRAME:
            out = self._out_by_number.get(number)
            if out is not None and out.to == sender:
                out.forwarder.request_keyframe(data[4] if len(data) > 4 else 0)
        elif kind == Datagram.GONE:
            self._drop((sender, number))
        else:
            self.datagrams_dropped += 1

    def _announced(self, sender: Address, number: int, info: PipedTrackInfo) -> None:
        key = (sender, number)
        existing = self._in.get(key)
        if existing is not None:
            if existing.info == info:
                existing.heard = time.monotonic()
                return
            self._drop(key)
        sink = self._accepted.get((sender, info.meeting_id))
        if sink is None:
            self.datagrams_dropped += 1
            return

        def ask_keyframe(layer: int) -> None:
            self._send(KEYFRAME.pack(VERSION, Datagram.KEYFRAME, number, layer), sender)

        self._in[key] = sink.make(info, ask_keyframe)

    # ------------------------------------------------------------ both

    def _send(self, data: bytes, to: Address) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(data, to)
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
        """Announce every piped track again; drop remote tracks not announced lately."""
        for out in tuple(self._out.values()):
            self._announce(out)
        for key, forwarder in list(self._in.items()):
            if now - forwarder.heard > TRACK_TIMEOUT:
                self._drop(key)

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
