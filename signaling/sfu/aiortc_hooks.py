"""Every place where the SFU reaches into aiortc/aioice internals.

aiortc decodes what a receiver gets and encodes what a sender sends. A
forwarding server must do neither, so this module swaps four private pieces
of one peer connection's objects, and nothing else in the package touches
aiortc privates:

* a receiver's jitter buffer is replaced by :class:`FrameAssembler`, which
  hands every complete encoded frame to a callback and never lets one reach the
  decoder queue (so ``aiortc.codecs.get_decoder`` is never called), and which
  gives up on a lost packet after ``loss_timeout`` instead of waiting for 512
  more packets;
* a sender's RTP loop (which reads its track, then encodes or packetizes each
  frame per subscriber) is replaced by an :class:`RtpWriter`: the publisher's
  RTP payloads are forwarded as they arrived, each subscriber's packets only
  get their own header (SSRC, sequence number, timestamp, extensions) and SRTP,
  and go straight to the socket (``aiortc.codecs.get_encoder`` is never
  called); NACKs are answered from the writer's history and the keyframe hook
  is redirected to a callback;
* an ICE socket's datagram callback hands SRTP packets meant for a tapped
  receiver straight to it (:func:`_receive_srtp`): unprotected, parsed and
  assembled in the callback itself, instead of through aioice's queue, the
  DTLS transport's task and the receiver's coroutine; RTCP statistics (receiver
  reports), NACKs and PLIs stay aiortc's, but the receiver-side bandwidth
  estimator (REMB) is not fed, so the server sends no REMB to publishers;
* an ICE connection's host-candidate gathering is replaced by
  :func:`configure_host_candidates`, which binds inside a configured UDP port
  range and announces configured addresses (aioice never offers 127.0.0.1 and
  has no port range of its own).

The names used here are private to aiortc 1.16.0 and aioice 0.13; importing
this module with another version fails at once rather than misbehaving later.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aiortc
import pylibsrtp
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs import depayload, is_rtx
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket, unwrap_rtx
from aiortc.utils import uint16_add, uint16_gt
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"
PYLIBSRTP_VERSION = "1.0.0"

if aiortc.__version__ != AIORTC_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on aiortc {AIORTC_VERSION} internals, "
        f"found aiortc {aiortc.__version__}"
    )
if aioice.__version__ != AIOICE_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on aioice {AIOICE_VERSION} internals, "
        f"found aioice {aioice.__version__}"
    )
if pylibsrtp.__version__ != PYLIBSRTP_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on pylibsrtp {PYLIBSRTP_VERSION} internals, "
        f"found pylibsrtp {pylibsrtp.__version__}"
    )

logger = logging.getLogger(__name__)

# Largest gap (in packets) the assembler will wait on; anything older is lost.
_VIDEO_CAPACITY = 512


@dataclass(frozen=True, slots=True)
class AssembledFrame:
    """One encoded frame as the publisher's encoder produced it.

    ``data`` is the depacketized bitstream (VP8 frame, H.264 Annex B access
    unit or Opus packet); ``timestamp`` is the RTP timestamp of the publisher;
    ``audio_level`` is the RFC 6464 level (0 loudest, 127 silent) when the
    publisher sent the header extension.
    """

    data: bytes
    timestamp: int
    audio_level: int | None
    after_loss: bool
    #: The publisher's RTP payloads of the frame, in order (its own packetization,
    #: e.g. with the VP8 payload descriptor): what the server forwards as is.
    payloads: tuple[bytes, ...] = ()


FrameSink = Callable[[AssembledFrame], None]


class FrameAssembler:
    """Stand-in for aiortc's ``JitterBuffer`` in a forwarding receiver.

    Guarantees: each complete frame is passed to ``sink`` exactly once, in RTP
    order, as soon as its last packet (marker bit for video, every packet for
    audio) arrives; no frame is ever returned to the receiver, so its decoder
    never runs. When a hole in the sequence numbers is still open after
    ``loss_timeout`` seconds (NACK retransmission had its chance), the
    incomplete frames are discarded, the next frame delivered is flagged
    ``after_loss`` and the receiver is told to send a PLI at once.
    """

    def __init__(
        self,
        *,
        is_video: bool,
        sink: FrameSink,
        starts_frame: Callable[[RtpPacket], bool] = lambda packet: False,
        loss_timeout: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._is_video = is_video
        self._sink = sink
        self._starts_frame = starts_frame
        self._loss_timeout = loss_timeout
        self._clock = clock
        self._packets: dict[int, RtpPacket] = {}
        self._next_seq: int | None = None  # first sequence number not yet delivered
        self._max_seq: int | None = None  # newest sequence number buffered
        self._hole_since: float | None = None
        self._after_loss = False
        self._level: int | None = None
        #: SSRC of the media stream (after RTX unwrapping), for PLIs.
        self.media_ssrc: int | None = None
        self.frames_delivered = 0
        self.losses = 0

    @property
    def capacity(self) -> int:
        return _VIDEO_CAPACITY if self._is_video else 16

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Take one depayloaded packet; answer ``(send_pli, None)``."""
        self.media_ssrc = packet.ssrc
        if packet.extensions.audio_level is not None:
            self._level = packet.extensions.audio_level[1]
        if not self._is_video:
            return self._add_audio(packet)
        seq = packet.sequence_number
        if self._next_seq is None:
            # Synchronise on a packet that starts a frame, or else right after a marker.
            if self._starts_frame(packet):
                self._next_seq = seq
            else:
                if packet.marker:
                    self._next_seq = uint16_add(seq, 1)
                return False, None
        if not uint16_gt(uint16_add(seq, 1), self._next_seq):
            return False, None  # a late duplicate or retransmission of a delivered packet
        if uint16_add(seq, -self._next_seq) >= _VIDEO_CAPACITY:
            # Far ahead of the hole: stop waiting and resynchronise on a marker.
            self._packets.clear()
            self._max_seq = None
            self._next_seq = uint16_add(seq, 1) if packet.marker else None
            self._mark_loss()
            return True, None
        self._packets[seq] = packet
        if self._max_seq is None or uint16_gt(seq, self._max_seq):
            self._max_seq = seq
        self._deliver_complete()
        if self._has_hole():
            now = self._clock()
            if self._hole_since is None:
                self._hole_since = now
            elif now - self._hole_since >= self._loss_timeout:
                self._skip_hole()
                self._mark_loss()
                self._deliver_complete()
                return True, None
        else:
            self._hole_since = None
        return False, None

    def _has_hole(self) -> bool:
        if not self._packets or self._next_seq is None or self._max_seq is None:
            return False
        return len(self._packets) < uint16_add(self._max_seq, -self._next_seq) + 1

    def _add_audio(self, packet: RtpPacket) -> tuple[bool, None]:
        seq = packet.sequence_number
        if self._next_seq is not None and not uint16_gt(uint16_add(seq, 1), self._next_seq):
            return False, None  # older than what was forwarded: reordering would hurt more
        after_loss = self._next_seq is not None and seq != self._next_seq
        self._next_seq = uint16_add(seq, 1)
        self._emit(packet._data, packet.timestamp, after_loss, (packet.payload,))  # type: ignore[attr-defined]
        return False, None

    def _mark_loss(self) -> None:
        self.losses += 1
        self._after_loss = True
        self._hole_since = None

    def _deliver_complete(self) -> None:
        while True:
            assert self._next_seq is not None
            seq = self._next_seq
            first = self._packets.get(seq)
            if first is None:
                return
            parts = []
            payloads = []
            while True:
                packet = self._packets.get(seq)
                if packet is None or packet.timestamp != first.timestamp:
                    return  # frame not complete yet
                parts.append(packet._data)  # type: ignore[attr-defined]
                payloads.append(packet.payload)
                if packet.marker:
                    break
                seq = uint16_add(seq, 1)
            for done in range(uint16_add(seq, -self._next_seq) + 1):
                self._packets.pop(uint16_add(self._next_seq, done), None)
            self._next_seq = uint16_add(seq, 1)
            after_loss, self._after_loss = self._after_loss, False
            self._emit(b"".join(parts), first.timestamp, after_loss, tuple(payloads))

    def _skip_hole(self) -> None:
        """Drop everything up to the first packet known to start a frame."""
        assert self._next_seq is not None
        seq = self._next_seq
        previous: RtpPacket | None = None
        for _ in range(_VIDEO_CAPACITY):
            packet = self._packets.get(seq)
            if packet is not None and previous is not None:
                if previous.marker or previous.timestamp != packet.timestamp:
                    break
            previous = packet
            seq = uint16_add(seq, 1)
        self._drop_through(uint16_add(seq, -1))

    def _drop_through(self, last: int) -> None:
        assert self._next_seq is not None
        for offset in range(min(uint16_add(last, -self._next_seq) + 1, _VIDEO_CAPACITY)):
            self._packets.pop(uint16_add(self._next_seq, offset), None)
        self._next_seq = uint16_add(last, 1)
        for seq in [s for s in self._packets if not uint16_gt(uint16_add(s, 1), self._next_seq)]:
            del self._packets[seq]

    def _emit(self, data: bytes, timestamp: int, after_loss: bool, payloads: tuple[bytes, ...]) -> None:
        self.frames_delivered += 1
        self._sink(AssembledFrame(data, timestamp, self._level, after_loss, payloads))

    # aiortc's JitterBuffer API, kept for tools that introspect the receiver.
    def remove(self, count: int) -> None:  # pragma: no cover - never called by aiortc 1.16
        self._packets.clear()


def _payload_starts_frame(mime_type: str, payload: bytes) -> bool:
    """Whether an RTP payload is the first of a video frame (VP8 or H.264)."""
    if not payload:
        return False
    if mime_type == "video/vp8":
        # RFC 7741 section 4.2: S bit set and partition index 0.
        return payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0
    if mime_type == "video/h264":
        nal_type = payload[0] & 0x1F
        if nal_type == 28:  # FU-A: start bit
            return len(payload) > 1 and payload[1] & 0x80 != 0
        return 1 <= nal_type <= 24
    return False


class _NoDecoderQueue:
    """Replaces a receiver's decoder queue: the decoder thread stops at once.

    ``get`` answers ``None`` (aiortc's "stop" token) so the thread exits before
    it ever creates a decoder; ``put`` ignores everything.
    """

    def put(self, item: object) -> None:
        pass

    def get(self) -> None:
        return None


def tap_receiver(receiver: RTCRtpReceiver, *, sink: FrameSink, loss_timeout: float) -> FrameAssembler:
    """Make ``receiver`` hand encoded frames to ``sink`` and never decode.

    Must be called before the receiver starts (that is, right after the
    transceiver is created). Returns the assembler, whose ``media_ssrc`` names
    the stream to send PLIs about.
    """
    kind = receiver._RTCRtpReceiver__kind  # type: ignore[attr-defined]
    if receiver._RTCRtpReceiver__started:  # type: ignore[attr-defined]
        raise RuntimeError(f"cannot tap {kind} receiver {receiver!r}: it already started")
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    def starts_frame(packet: RtpPacket) -> bool:
        codec = codecs.get(packet.payload_type)
        return codec is not None and _payload_starts_frame(codec.mimeType.lower(), packet.payload)

    assembler = FrameAssembler(
        is_video=kind == "video", sink=sink, starts_frame=starts_frame, loss_timeout=loss_timeout
    )
    receiver._RTCRtpReceiver__jitter_buffer = assembler  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__decoder_queue = _NoDecoderQueue()  # type: ignore[attr-defined]
    receiver._hirfa_receive = _SyncRtpReceive(receiver, assembler)  # type: ignore[attr-defined]
    return assembler


_background: set[asyncio.Future[Any]] = set()


def _spawn(coroutine: Any) -> None:
    """Run an RTCP send (or aiortc's own packet handler) in a task kept until it ends."""
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


class _SyncRtpReceive:
    """What a tapped receiver does with one RTP packet, called from the socket's callback.

    The same steps as ``RTCRtpReceiver._handle_rtp_packet`` of aiortc 1.16,
    on the receiver's own state, but synchronous (no coroutine, no task, no
    queue per packet): drop if disabled, note the SSRC as active, feed the
    RTCP statistics (so receiver reports stay right), unwrap RTX, feed the NACK
    generator (a NACK is sent in a task when a gap appears), depayload, hand
    the packet to the :class:`FrameAssembler` (which calls the frame sink) and
    send a PLI (in a task) when it asks for one. One step is left out on
    purpose: the remote bitrate estimator (REMB) is not fed, which was the
    costliest part of receiving video in Python; publishers then adapt their
    rate from loss in the receiver reports (and their own caps) instead.
    """

    __slots__ = ("_receiver", "_assembler", "_codecs", "_rtx_ssrc", "_streams", "_nack", "_active", "packets")

    def __init__(self, receiver: RTCRtpReceiver, assembler: FrameAssembler) -> None:
        self._receiver = receiver
        self._assembler = assembler
        # aiortc fills these dicts in place (never rebinds them), so they can be held.
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        self._nack = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        self._active: dict[int, Any] = receiver._RTCRtpReceiver__active_ssrc  # type: ignore[attr-defined]
        #: RTP packets handled here (for tests and diagnostics).
        self.packets = 0

    def __call__(self, packet: RtpPacket) -> None:
        receiver = self._receiver
        if not receiver._enabled:
            return
        self.packets += 1
        self._active[packet.ssrc] = clock.current_datetime()
        codecs = self._codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            stream = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = self._rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        nack = self._nack
        if nack is not None and nack.add(packet):
            _spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing)))
        try:
            packet._data = depayload(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except ValueError:
            return
        send_pli, _ = self._assembler.add(packet)
        if send_pli:
            _spawn(receiver._send_rtcp_pli(packet.ssrc))


_RTP_FIXED = struct.Struct("!BBHII")
_RTP_EXTENSION = struct.Struct("!HH")


def _parse_rtp(data: bytes, extensions_map: Any) -> RtpPacket:
    """``RtpPacket.parse`` reduced to what a tapped receiver reads.

    Same checks (``ValueError`` on a malformed packet) and the same fields,
    except that of the one-byte header extensions (RFC 8285, what browsers
    and aiortc send) only the audio level is decoded: the SFU reads nothing
    else (routing is by SSRC and payload type, and the bitrate estimator that
    needed ``abs-send-time`` is not fed). Two-byte extensions go through
    aiortc's own parser. Never stricter than aiortc's: a packet it parses is
    parsed to the same values (checked against it on random and corrupted
    packets); one whose unread extensions aiortc would choke on is accepted.
    """
    size = len(data)
    if size < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, second, sequence_number, timestamp, ssrc = _RTP_FIXED.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    csrc_count = first & 0x0F
    pos = 12 + 4 * csrc_count
    if size < pos:
        raise ValueError("RTP packet has truncated CSRC")
    packet = RtpPacket(second & 0x7F, second >> 7, sequence_number, timestamp, ssrc)
    if csrc_count:
        packet.csrc = list(struct.unpack_from(f"!{csrc_count}L", data, 12))
    if first & 0x10:
        if size < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, words = _RTP_EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if size < end:
            raise ValueError("RTP packet has truncated extension value")
        if profile == 0xBEDE:
            level_id = extensions_map._HeaderExtensionsMap__ids.audio_level
            index = pos
            while index < end:
                byte = data[index]
                index += 1
                if byte == 0:
                    continue  # padding
                length = (byte & 0x0F) + 1
                if index + length > end:
                    raise ValueError("RTP one-byte header extension value is truncated")
                if byte >> 4 == level_id:
                    value = data[index]
                    packet.extensions.audio_level = (value & 0x80 == 0x80, value & 0x7F)
                index += length
        else:
            packet.extensions = extensions_map.get(profile, data[pos:end])
        pos = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[pos:-padding]
    else:
        packet.payload = data[pos:]
    return packet


def _receive_srtp(connection: Any, data: bytes) -> bool:
    """Handle one SRTP packet in the socket's callback if it is for a tapped receiver.

    Answers ``False`` (nothing done, nothing consumed: the caller queues the
    datagram for aiortc as aioice would) unless the connection's DTLS transport
    is connected with SRTP keys and the packet's clear header (SSRC, payload
    type) names a tapped receiver whose ``_handle_rtp_packet`` is aiortc's own
    (not replaced on the instance). Otherwise unprotects it (a packet failing
    authentication is dropped, as aiortc does), parses it and routes it with
    aiortc's router, after authentication, and hands it to the receiver's
    :class:`_SyncRtpReceive`. SRTCP always takes aiortc's path.
    """
    dtls = connection._hirfa_dtls
    if dtls is None or dtls._state is not DtlsState.CONNECTED or 192 <= data[1] <= 208:
        return False
    srtp = dtls._rx_srtp
    if srtp is None:
        return False
    router = dtls._rtp_router
    target = router.ssrc_table.get(int.from_bytes(data[8:12], "big"))
    if target is None:
        candidates = router.payload_type_table.get(data[1] & 0x7F)
        if not candidates or len(candidates) != 1:
            return False
        (target,) = candidates
    if getattr(target, "_hirfa_receive", None) is None or "_handle_rtp_packet" in target.__dict__:
        return False  # not tapped, or its handler was replaced on purpose (a test's probe): aiortc's path
    dtls._RTCDtlsTransport__rx_bytes += len(data)
    dtls._RTCDtlsTransport__rx_packets += 1
    unprotect = connection._hirfa_unprotect
    if unprotect is None or unprotect.session is not srtp:
        unprotect = connection._hirfa_unprotect = _SrtpProcessor(srtp, _srtp_lib.srtp_unprotect, 0)
    try:
        packet = _parse_rtp(unprotect(data), dtls._rtp_header_extensions_map)
    except (pylibsrtp.Error, ValueError):
        return True  # not authentic, or not RTP: dropped, like aiortc does
    receiver = router.route_rtp(packet)
    if receiver is None:
        return True
    handle = getattr(receiver, "_hirfa_receive", None)
    if handle is None or "_handle_rtp_packet" in receiver.__dict__:  # pragma: no cover - routed elsewhere after all
        _spawn(receiver._handle_rtp_packet(packet, arrival_time_ms=clock.current_ms()))
        return True
    try:
        handle(packet)
    except Exception:  # a bug must not stop the socket; aiortc's loop would log it too
        logger.exception("SFU: handling an RTP packet failed")
    return True


class _MediaStunProtocol(StunProtocol):
    """aioice's protocol for a host candidate, with tapped receivers' SRTP taken synchronously.

    STUN and DTLS go where aioice sends them; RTP/RTCP (first byte 128-191,
    which STUN never uses) skip aioice's attempt to parse them as STUN and go
    to :func:`_receive_srtp`, or else to the connection's queue as before.
    """

    #: The bound socket, which :class:`RtpWriter` sends on directly.
    hirfa_socket: socket.socket | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        """Handle the datagram asyncio read, then those already waiting on the socket.

        A video frame arrives as a burst of packets; reading the rest of the
        burst here (at most ``_DRAIN`` more, never blocking) saves an event-loop
        iteration and an ``epoll`` per packet. Each datagram is handled exactly
        as if asyncio had read it.
        """
        self._dispatch(data, addr)
        sock = self.hirfa_socket
        if sock is None:
            return
        for _ in range(_DRAIN):
            transport = getattr(self, "transport", None)
            if transport is None or transport.is_closing():
                return
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            self._dispatch(data, addr)

    def _dispatch(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and len(data) >= 12 and 127 < data[0] < 192:
            if not _receive_srtp(self.receiver, data):
                self.receiver.data_received(data, self.local_candidate.component)
            return
        super().datagram_received(data, addr)


# Datagrams read per wake-up beyond the first, and the largest one (as a UDP payload).
_DRAIN = 32
_MAX_DATAGRAM = 65536


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send one RTCP picture loss indication to the publisher of ``receiver``."""
    await receiver._send_rtcp_pli(media_ssrc)


# RTP header: version 2 with the extension bit (every packet carries at least abs-send-time).
_RTP_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
_HISTORY = 512  # packets kept per subscription for NACK retransmission (> 2 s of video)


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


def _send_datagrams(sock: socket.socket | None, transport: Any, address: Any, datagrams: list[bytes]) -> None:
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


class _SrtpProcessor:
    """``Session.protect``/``unprotect`` without the per-call allocation and checks of pylibsrtp's wrapper.

    Uses the session's own 1500-byte buffer (the result is copied out at
    once, as by the wrapper) and raises :class:`pylibsrtp.Error` on failure,
    :class:`ValueError` for a packet too long for the buffer.
    """

    def __init__(self, session: pylibsrtp.Session, func: Any, trailer: int) -> None:
        self.session = session
        self._func = func
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._limit = len(session._cdata) - trailer
        self._length = _srtp_ffi.new("int *")

    def __call__(self, packet: bytes) -> bytes:
        size = len(packet)
        if size > self._limit:
            raise ValueError(f"RTP packet of {size} bytes is too long")
        self._buffer[0:size] = packet
        self._length[0] = size
        status = self._func(self._srtp, self._cdata, self._length)
        if status:
            raise pylibsrtp.Error(f"SRTP failed with status {status}")
        return self._buffer[0 : self._length[0]]


def _SrtpProtector(session: pylibsrtp.Session) -> _SrtpProcessor:
    """SRTP protection of RTP packets for ``session`` (pylibsrtp's trailer allowance)."""
    return _SrtpProcessor(session, _srtp_lib.srtp_protect, 16 + 128)


class RtpWriter:
    """Writes one subscription's frames straight to its transport, already packetized.

    Guarantees: the RTP payloads given to :meth:`write` are sent unchanged, in
    order, in packets carrying this sender's SSRC, payload type, continuous
    sequence numbers and the ``mid`` / ``abs-send-time`` (and, for audio,
    ``ssrc-audio-level``) header extensions the sender negotiated; nothing is
    decoded, encoded or re-packetized. The sender's RTCP sender reports keep
    counting what was sent and NACKed packets are retransmitted (over RTX when
    negotiated) from a bounded history.
    """

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self._sender = sender
        self._dtls = sender.transport
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        self._payload_type = codec.payloadType
        self._rtx_payload_type: int | None = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
        mid = sender._RTCRtpSender__mid or ""  # type: ignore[attr-defined]
        self._static_extensions = _extension_element(ids.mid, mid.encode())
        self._abs_send_time_id = ids.abs_send_time
        self._audio_level_id = ids.audio_level
        self._sequence_number = random.randint(0, 0xFFFF)
        self._rtx_sequence_number = random.randint(0, 0xFFFF)
        self._timestamp_origin = random.randint(0, 0xFFFFFFFF)
        #: seq % _HISTORY -> (first seq, timestamp, payloads) of the frame the packet belonged to
        self._history: dict[int, tuple[int, int, Sequence[bytes]]] = {}
        # The ICE connection of the sender's transport (fixed for the writer's life).
        self._nominated: dict[int, Any] = self._dtls.transport._connection._nominated
        self._srtp: pylibsrtp.Session | None = None
        self._protect: _SrtpProcessor | None = None
        self.packets_sent = 0
        self.retransmissions = 0

    def _route(self) -> tuple[_SrtpProcessor, Any] | None:
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
            self._srtp, self._protect = srtp, (protect := _SrtpProtector(srtp))
        return protect, pair

    def _extensions(self, now: float, audio_level: int | None) -> bytes:
        elements = self._static_extensions
        if self._abs_send_time_id:
            # 6.18 fixed-point seconds (the NTP time's middle 24 bits)
            abs_send_time = int((now + _NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF
            elements += _extension_element(self._abs_send_time_id, abs_send_time.to_bytes(3, "big"))
        if audio_level is not None:
            elements += _extension_element(self._audio_level_id, bytes([audio_level & 0x7F]))
        elements += b"\x00" * (-len(elements) % 4)
        return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements

    def backlog(self) -> int:
        """Bytes queued in user space for this subscriber's socket (0 when it keeps up)."""
        route = self._route()
        return route[1].protocol.transport.get_write_buffer_size() if route is not None else 0

    def write(self, payloads: Sequence[bytes], timestamp: int, audio_level: int | None = None) -> bool:
        """Send one frame (its RTP payloads, marker on the last); answers whether it was sent."""
        route = self._route()
        if route is None or not payloads:
            return False
        protect, pair = route
        address, transport = pair.remote_addr, pair.protocol.transport
        sock = getattr(pair.protocol, "hirfa_socket", None)
        if sock is None or transport.get_write_buffer_size():
            sock = None  # behind a backlog, asyncio's transport keeps the order
        pack_into, history = _RTP_HEADER.pack_into, self._history
        now = time.time()
        extensions = self._extensions(now, audio_level)
        timestamp = (timestamp + self._timestamp_origin) & 0xFFFFFFFF
        seq, ssrc, payload_type = self._sequence_number, self._ssrc, self._payload_type
        last = len(payloads) - 1
        octets = 0
        datagrams = []
        # Each packet is built in the SRTP session's buffer and protected there
        # (what _SrtpProcessor.__call__ does, without a concatenation and a call per packet).
        buffer, length, limit = protect._buffer, protect._length, protect._limit
        srtp_protect, session, cdata = protect._func, protect._srtp, protect._cdata
        payload_start = 12 + len(extensions)
        frame = (seq, timestamp, payloads)  # one history record shared by the frame's packets
        try:
            for index, payload in enumerate(payloads):
                marker = index == last
                size = payload_start + len(payload)
                if size > limit:
                    raise ValueError(f"RTP packet of {size} bytes is too long")
                pack_into(buffer, 0, 0x90, payload_type | 0x80 if marker else payload_type, seq, timestamp, ssrc)
                buffer[12:payload_start] = extensions
                buffer[payload_start:size] = payload
                length[0] = size
                status = srtp_protect(session, cdata, length)
                if status:
                    raise pylibsrtp.Error(f"SRTP failed with status {status}")
                datagrams.append(buffer[0 : length[0]])
                history[seq % _HISTORY] = frame
                octets += size
                seq = (seq + 1) & 0xFFFF
            _send_datagrams(sock, transport, address, datagrams)
        except OSError:
            pass  # like any datagram: lost (ICE consent checks notice a dead path)
        finally:
            sent = (seq - self._sequence_number) & 0xFFFF
            self._sequence_number = seq
            self.packets_sent += sent
            # What the sender's RTCP sender reports announce.
            sender = self._sender
            sender._RTCRtpSender__packet_count += sent  # type: ignore[attr-defined]
            sender._RTCRtpSender__octet_count += octets - sent * payload_start  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
            sender._RTCRtpSender__ntp_timestamp = int((now + _NTP_EPOCH_OFFSET) * 4294967296)  # type: ignore[attr-defined]
        return True

    async def retransmit(self, sequence_number: int) -> None:
        """Resend a packet a NACK reported lost, if still in the history (replaces aiortc's)."""
        entry = self._history.get(sequence_number % _HISTORY)
        route = self._route()
        if entry is None or route is None:
            return
        first, timestamp, payloads = entry
        index = (sequence_number - first) & 0xFFFF
        if index >= len(payloads):
            return  # the slot now belongs to a newer frame: the packet is gone
        seq, payload, marker = sequence_number, payloads[index], index == len(payloads) - 1
        protect, pair = route
        if self._rtx_payload_type is not None:
            payload_type, ssrc = self._rtx_payload_type, self._rtx_ssrc
            payload = seq.to_bytes(2, "big") + payload
            seq, self._rtx_sequence_number = self._rtx_sequence_number, (self._rtx_sequence_number + 1) & 0xFFFF
        else:
            payload_type, ssrc = self._payload_type, self._ssrc
        header = _RTP_HEADER.pack(0x90, payload_type | 0x80 if marker else payload_type, seq, timestamp, ssrc)
        pair.protocol.transport.sendto(
            protect(header + self._extensions(time.time(), None) + payload), pair.remote_addr
        )
        self.retransmissions += 1


def make_forwarding_sender(
    sender: RTCRtpSender,
    *,
    on_start: Callable[[RtpWriter], None],
    on_stop: Callable[[], None],
    on_keyframe_request: Callable[[], None],
) -> None:
    """Make ``sender`` forward packetized frames and report PLI/FIR to a callback.

    Must be called before the sender starts. When aiortc starts it (DTLS
    connected, direction sending), ``on_start`` gets the :class:`RtpWriter` to
    push frames through; the sender's own RTP loop, which would read its track
    and encode or packetize every frame, never runs (so no encoder is ever
    created). ``on_stop`` is called once when the sender stops. NACKs are
    answered from the writer's history; a PLI or FIR from the remote peer calls
    ``on_keyframe_request``. RTCP (sender reports, receiver reports) stays
    aiortc's.
    """

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        writer = RtpWriter(sender, codec)
        sender._retransmit = writer.retransmit  # type: ignore[method-assign]
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

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]

# ---------------------------------------------------------------- ICE


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


# Socket buffers of the server's media sockets: a keyframe arrives (and is sent
# to every subscriber) as a burst, and the default 208 KiB overflow while the
# event loop is busy. The kernel caps them at net.core.[rw]mem_max.
_SOCKET_BUFFER = 4 * 1024 * 1024


def _bind_in_range(address: str, port_min: int, port_max: int) -> socket.socket:
    ports = list(range(port_min, port_max + 1))
    random.shuffle(ports)
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock
    raise OSError(f"no free UDP port on {address} in {port_min}-{port_max}")


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
        connection._hirfa_policy = policy
        connection._hirfa_dtls = transceiver.receiver.transport
        connection._hirfa_unprotect = None
        connection.get_component_candidates = _candidate_gatherer(connection, policy)


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
