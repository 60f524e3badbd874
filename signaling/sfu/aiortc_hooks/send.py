"""A subscription's sender: the publisher's packets under the subscription's header.

:func:`make_forwarding_sender` replaces an aiortc sender's RTP loop (which
would read its track and encode or packetize every frame) by an
:class:`RtpWriter`; NACKs and PLI/FIR from the subscriber go to callbacks.

Packets written while the socket callback handles a burst of incoming
datagrams (:func:`begin_burst` … :func:`end_burst`, called by the media
socket's protocol) are held per writer and leave together at the end of the
burst, batched with UDP GSO where the sizes allow: a packet is forwarded in
the same event-loop wake-up that received it, at the cost of one ``sendmsg``
per frame rather than one per packet.

Private names used: ``RTCRtpSender._ssrc/_rtx_ssrc/__rtx_payload_type/
__rtp_header_extensions_map/__mid/__rtp_started/__rtp_exited/__packet_count/
__octet_count/__rtp_timestamp/__ntp_timestamp/__rtt/_run_rtp/_retransmit/
_send_keyframe/_handle_rtcp_packet``; ``RTCDtlsTransport._state/_tx_srtp/transport``;
``RTCIceTransport._connection``; ``aioice.Connection._nominated``;
``HeaderExtensionsMap.__ids``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import RTCRtpCodecParameters, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, unpack_remb_fci

from .srtp import SrtpProcessor, srtp_protector

_RTP_HEADER = struct.Struct("!BBHII")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
#: How old the (RTP, NTP) pair a sender report announces may be (seconds): any pair of the
#: publisher's clock will do for lip sync, and reports go every 0.5-1.5 s, so the mapping is not
#: asked for every packet (0.5 us each, at ~15,500 packets a second in an assembly of 100).
REPORT_REFRESH = 0.05

#: Writers holding packets of the current burst (``None``: not in a burst, send at once).
_burst: list[RtpWriter] | None = None
_burst_now = 0.0


def begin_burst() -> bool:
    """Hold written packets until :func:`end_burst`; answers whether this call opened the burst."""
    global _burst, _burst_now
    if _burst is not None:
        return False
    _burst = []
    _burst_now = time.time()
    return True


def end_burst() -> None:
    """Send every packet held since :func:`begin_burst`, each writer's in order."""
    global _burst
    writers, _burst = _burst, None
    if writers:
        for writer in writers:
            writer.flush()


_abs_send_time_at = -1.0
_abs_send_time_bytes = b"\x00\x00\x00"


def _abs_send_time(now: float) -> bytes:
    """``abs-send-time`` of ``now``: 6.18 fixed-point seconds (the NTP time's middle 24 bits).
    One value per burst, whichever writers ask it."""
    global _abs_send_time_at, _abs_send_time_bytes
    if now != _abs_send_time_at:
        _abs_send_time_at = now
        _abs_send_time_bytes = (int((now + NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF).to_bytes(3, "big")
    return _abs_send_time_bytes


def ntp_time(unix: float) -> int:
    """64-bit NTP timestamp of a Unix time."""
    return int((unix + NTP_EPOCH_OFFSET) * 4294967296)


def _extension_element(ext_id: int | None, value: bytes) -> bytes:
    """One RFC 8285 one-byte-header element, or nothing if the extension was not negotiated."""
    if not ext_id or not value or len(value) > 16:
        return b""
    return bytes([(ext_id << 4) | (len(value) - 1)]) + value


# UDP generic segmentation offload (Linux >= 4.18): the packets of a frame, all of one
# size but the last, leave in one sendmsg and cross the network stack once.
_SOL_UDP = 17
_UDP_SEGMENT = 103
_GSO_MAX_SEGMENTS = 32
_gso_enabled = hasattr(socket.socket, "sendmsg")


def send_datagrams(sock: socket.socket | None, transport: Any, address: Any, datagrams: list[bytes]) -> None:
    """Send ``datagrams`` in order to ``address``.

    Straight on ``sock`` (batched with UDP GSO where possible) while it takes
    them; through asyncio's ``transport`` (which buffers) when there is no
    socket or it would block, so the order is kept.
    """
    global _gso_enabled
    count = len(datagrams)
    sizes = list(map(len, datagrams))
    start = 0
    while start < count:
        if sock is None:
            for data in datagrams[start:]:
                transport.sendto(data, address)
            return
        size = sizes[start]
        end = start + 1
        if _gso_enabled:
            limit = min(count, start + _GSO_MAX_SEGMENTS)
            while end < limit and sizes[end] == size:
                end += 1
            if end < limit and sizes[end] < size:
                end += 1  # a shorter packet may end the batch
        try:
            if end - start > 1:
                sock.sendmsg(
                    datagrams[start:end], [(_SOL_UDP, _UDP_SEGMENT, size.to_bytes(2, sys.byteorder))], 0, address
                )
            else:
                sock.sendto(datagrams[start], address)
        except (BlockingIOError, InterruptedError):
            sock = None
            continue
        except OSError:
            if end - start == 1:
                raise
            _gso_enabled = False  # no GSO here (old kernel, device): one datagram at a time
            continue
        start = end




class RtpWriter:
    """Writes one subscription's packets straight to its transport.

    Guarantees: each payload given to :meth:`send` leaves unchanged in one
    packet with the sequence number, timestamp and marker given, this
    sender's SSRC and payload type and the ``mid`` / ``abs-send-time`` (and,
    for audio, ``ssrc-audio-level``) header extensions the sender negotiated;
    nothing is decoded, encoded or re-packetized. :meth:`resend` sends a
    packet again, over RTX when negotiated. The sender's RTCP sender reports
    count what was sent and announce ``clock_mapping``'s NTP time for the last
    timestamp sent (the publisher's clock, for lip sync; NTP 0, which
    receivers ignore, while it is unknown).
    """

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self._sender = sender
        self._dtls = sender.transport
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        assert codec.payloadType is not None  # a negotiated codec always has one
        self.payload_type: int = codec.payloadType
        self._rtx_payload_type: int | None = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
        mid = sender._RTCRtpSender__mid or ""  # type: ignore[attr-defined]
        # The header extension block, built around the parts that change (RFC 8285 one-byte
        # form): its head and the mid for each case, the send time's element id, the level's
        # element per level, the padding. A writer sends about one packet a burst, so nothing
        # is built per packet but what changed.
        static = _extension_element(ids.mid, mid.encode())
        abs_size = 4 if ids.abs_send_time else 0
        abs_head = bytes([(ids.abs_send_time << 4) | 2]) if ids.abs_send_time else b""
        self._abs_head = abs_head
        self._extension_parts: dict[bool, tuple[bytes, bytes]] = {}
        for with_level in (False, True):
            size = len(static) + abs_size + (2 if with_level and ids.audio_level else 0)
            padding = b"\x00" * (-size % 4)
            head = b"\xbe\xde" + ((size + len(padding)) // 4).to_bytes(2, "big") + static + abs_head
            self._extension_parts[with_level] = (head, padding)
        self._level_elements = (
            tuple(bytes([(ids.audio_level << 4), level]) for level in range(128)) if ids.audio_level else ()
        )
        self._rtx_sequence_number = random.randint(0, 0xFFFF)
        self._padding_timestamp = random.randint(0, 0xFFFFFFFF)
        # The ICE connection of the sender's transport (fixed for the writer's life).
        self._nominated: dict[int, Any] = self._dtls.transport._connection._nominated
        self._srtp: pylibsrtp.Session | None = None
        self._protect: SrtpProcessor | None = None
        self._pending: list[bytes] = []
        self._pending_octets = 0
        self._last_timestamp: int | None = None
        self._extension_key: tuple[float, int | None] | None = None
        self._extension_bytes = b""
        self._clock_mapping: Callable[[int], int | None] | None = None
        #: When the sender reports' (RTP, NTP) pair is next computed (`time.monotonic`).
        self._report_due = 0.0
        #: The ICE pair `send` found for the packets held (`flush` sends them on it).
        self._pair: Any = None
        self.packets_sent = 0
        self.retransmissions = 0
        self.padding_sent = 0

    @property
    def clock_mapping(self) -> Callable[[int], int | None] | None:
        """Publisher timestamp -> NTP time (64 bits) for sender reports, or None while unknown."""
        return self._clock_mapping

    @clock_mapping.setter
    def clock_mapping(self, mapping: Callable[[int], int | None] | None) -> None:
        self._clock_mapping = mapping
        self._report_due = 0.0  # another source: the next packet's report is his

    def _route(self) -> tuple[SrtpProcessor, Any] | None:
        """The SRTP protection and the nominated ICE pair to send on, if connected."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return None
        pair = self._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return None
        srtp = dtls._tx_srtp
        protect = self._protect
        if protect is None or srtp is not self._srtp:
            self._srtp, self._protect = srtp, (protect := srtp_protector(srtp))
        return protect, pair

    def _extensions(self, now: float, audio_level: int | None) -> bytes:
        key = (now, audio_level)
        if key == self._extension_key:
            return self._extension_bytes
        with_level = audio_level is not None
        head, padding = self._extension_parts[with_level]
        block = head
        if self._abs_head:
            block += _abs_send_time(now)
        if with_level and self._level_elements:
            block += self._level_elements[audio_level & 0x7F]  # type: ignore[operator]
        block += padding
        self._extension_key = key
        self._extension_bytes = block
        return block

    def backlog(self) -> int:
        """Bytes queued in user space for this subscriber's socket, or held in this burst."""
        # Asked before every forwarded packet, which send() then routes: the socket's queue is
        # all this needs, not the DTLS and SRTP checks of _route() (8 % of a busy worker's loop
        # when both did them).
        pair = self._nominated.get(1)
        transport = pair.protocol.transport if pair is not None else None
        queued = transport.get_write_buffer_size() if transport is not None else 0
        return queued + self._pending_octets

    def rtt(self) -> float | None:
        """The subscriber's round-trip time from its receiver reports (seconds), once known."""
        return self._sender._RTCRtpSender__rtt  # type: ignore[attr-defined]

    def _packet(
        self, protect: SrtpProcessor, payload_type: int, seq: int, timestamp: int, ssrc: int, extensions: bytes, payload: bytes,
        first_byte: int = 0x90,
    ) -> bytes:
        # Built in the SRTP session's buffer and protected there (no concatenation).
        buffer, length = protect._buffer, protect._length
        payload_start = 12 + len(extensions)
        size = payload_start + len(payload)
        if size > protect._limit:
            raise ValueError(f"RTP packet of {size} bytes is too long")
        _RTP_HEADER.pack_into(buffer, 0, first_byte, payload_type, seq, timestamp, ssrc)
        buffer[12:payload_start] = extensions
        buffer[payload_start:size] = payload
        length[0] = size
        status = protect._func(protect._srtp, protect._cdata, length)
        if status:
            raise pylibsrtp.Error(f"SRTP failed with status {status}")
        return buffer[0 : length[0]]

    def send(
        self,
        payload: bytes,
        seq: int,
        timestamp: int,
        marker: bool,
        audio_level: int | None = None,
        payload_type: int | None = None,
    ) -> bool:
        """Send one packet (held until the end of the current burst); answers whether it was taken."""
        route = self._route()
        if route is None:
            return False
        protect, self._pair = route
        pt = self.payload_type if payload_type is None else payload_type
        now = _burst_now if _burst is not None else time.time()
        datagram = self._packet(
            protect, pt | 0x80 if marker else pt, seq, timestamp, self._ssrc, self._extensions(now, audio_level), payload
        )
        self._last_timestamp = timestamp
        self.packets_sent += 1
        self._pending_octets += len(payload)
        pending = self._pending
        pending.append(datagram)
        if _burst is None:
            self.flush()
        elif len(pending) == 1:
            _burst.append(self)
        return True

    def flush(self) -> None:
        """Send the packets held for this writer."""
        pending, self._pending = self._pending, []
        octets, self._pending_octets = self._pending_octets, 0
        if not pending:
            return
        # Routed by send() in this burst (one synchronous callback): not checked again.
        pair, self._pair = self._pair, None
        transport = pair.protocol.transport if pair is not None else None
        if transport is None:
            return
        sock = getattr(pair.protocol, "hirfa_socket", None)
        if sock is None or transport.get_write_buffer_size():
            sock = None  # behind a backlog, asyncio's transport keeps the order
        try:
            if sock is not None and len(pending) == 1:
                sock.sendto(pending[0], pair.remote_addr)  # a voice's packet: one datagram
            else:
                send_datagrams(sock, transport, pair.remote_addr, pending)
        except (BlockingIOError, InterruptedError):
            transport.sendto(pending[0], pair.remote_addr)  # the socket's buffer is full: asyncio queues it
        except OSError:
            pass  # like any datagram: lost (ICE consent checks notice a dead path)
        # What the sender's RTCP sender reports announce.
        sender = self._sender
        sender._RTCRtpSender__packet_count += len(pending)  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        timestamp = self._last_timestamp
        if timestamp is not None:
            now = time.monotonic()
            if now < self._report_due:
                return
            self._report_due = now + REPORT_REFRESH
            mapping = self._clock_mapping
            ntp = mapping(timestamp) if mapping is not None else ntp_time(time.time())
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
            sender._RTCRtpSender__ntp_timestamp = ntp or 0  # type: ignore[attr-defined]

    def send_padding(self, count: int, size: int = 255) -> int:
        """Send ``count`` padding-only packets of ``size`` bytes on the RTX stream, at once: a
        probe of the subscriber's link (his bandwidth estimator counts them; his decoder never
        sees them). Answers how many left (0 without RTX, or before the connection is up).
        Before the first media packet they carry the timestamp the first would carry (none yet:
        an arbitrary one; a receiver drops a padding-only RTX packet once counted): a subscriber
        none of whose videos was sent yet (all paused from the start) has only video m-lines
        that never carried a packet, and his probes used to send nothing there and hold on an
        empty link."""
        route = self._route()
        rtx_pt, rtx_ssrc = self._rtx_payload_type, self._rtx_ssrc
        timestamp = self._padding_timestamp if self._last_timestamp is None else self._last_timestamp
        if route is None or rtx_pt is None or rtx_ssrc is None or count <= 0:
            return 0
        protect, pair = route
        size = max(1, min(255, size))
        padding = bytes(size - 1) + bytes([size])
        extensions = self._extensions(time.time(), None)
        datagrams = []
        for _ in range(count):
            seq, self._rtx_sequence_number = self._rtx_sequence_number, (self._rtx_sequence_number + 1) & 0xFFFF
            # V=2, P=1 (the payload is padding only, its last byte says how long), X=1.
            datagrams.append(self._packet(protect, rtx_pt, seq, timestamp, rtx_ssrc, extensions, padding, 0xB0))
        try:
            send_datagrams(None, pair.protocol.transport, pair.remote_addr, datagrams)
        except OSError:
            return 0
        self.padding_sent += count
        return count

    def resend(self, payload: bytes, seq: int, timestamp: int, marker: bool) -> bool:
        """Send a packet a NACK reported lost again (over RTX when negotiated), at once."""
        route = self._route()
        if route is None:
            return False
        protect, pair = route
        if self._rtx_payload_type is not None:
            payload_type, ssrc = self._rtx_payload_type, self._rtx_ssrc
            payload = seq.to_bytes(2, "big") + payload
            seq, self._rtx_sequence_number = self._rtx_sequence_number, (self._rtx_sequence_number + 1) & 0xFFFF
        else:
            payload_type, ssrc = self.payload_type, self._ssrc
        datagram = self._packet(
            protect, payload_type | 0x80 if marker else payload_type, seq, timestamp, ssrc,
            self._extensions(time.time(), None), payload,
        )
        try:
            pair.protocol.transport.sendto(datagram, pair.remote_addr)
        except OSError:
            return False
        self.retransmissions += 1
        return True


def make_forwarding_sender(
    sender: RTCRtpSender,
    *,
    on_start: Callable[[RtpWriter], None],
    on_stop: Callable[[], None],
    on_keyframe_request: Callable[[], None],
    on_nack: Callable[[int], None],
    on_remb: Callable[[int], None] | None = None,
    on_report: Callable[[int, int, int], None] | None = None,
) -> None:
    """Make ``sender`` forward packets and report NACK and PLI/FIR to callbacks.

    Must be called before the sender starts. When aiortc starts it (DTLS
    connected, direction sending), ``on_start`` gets the :class:`RtpWriter` to
    push packets through; the sender's own RTP loop, which would read its
    track and encode or packetize every frame, never runs (so no encoder is
    ever created). ``on_stop`` is called once when the sender stops. Each
    sequence number a NACK reports lost goes to ``on_nack``; a PLI or FIR
    from the remote peer calls ``on_keyframe_request``. RTCP (sender reports,
    receiver reports) stays aiortc's; besides, ``on_remb`` hears each REMB
    (bit/s) that names the sender's SSRC and ``on_report`` each receiver
    report block about it (SSRC, extended highest sequence number,
    cumulative packets lost): the subscriber's own view of his downlink,
    which the allocator spends.
    """

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        writer = RtpWriter(sender, codec)
        try:
            on_start(writer)
            # The track's recv() returns nothing: it only raises once the track ends.
            while sender.track is not None:
                await sender.track.recv()
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        finally:
            on_stop()
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    async def retransmit(sequence_number: int) -> None:
        on_nack(sequence_number)

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
    if on_remb is None and on_report is None:
        return
    handle_rtcp = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        await handle_rtcp(packet)
        ssrc = sender._ssrc
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP and on_remb is not None:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                on_remb(bitrate)
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)) and on_report is not None:
            for report in packet.reports:
                if report.ssrc == ssrc:
                    on_report(ssrc, report.highest_sequence, report.packets_lost)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The ``msid`` stream the next offer announces for ``sender``'s track (aiortc: one per peer)."""
    sender._stream_id = stream_id
