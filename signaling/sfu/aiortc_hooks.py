"""Every place where the SFU reaches into aiortc/aioice internals.

aiortc decodes what a receiver gets and encodes what a sender sends. A
forwarding server must do neither, so this module swaps three private pieces
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
* an ICE connection's host-candidate gathering is replaced by
  :func:`configure_host_candidates`, which binds inside a configured UDP port
  range and announces configured addresses (aioice never offers 127.0.0.1 and
  has no port range of its own).

The names used here are private to aiortc 1.16.0 and aioice 0.13; importing
this module with another version fails at once rather than misbehaving later.
"""

from __future__ import annotations

import asyncio
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
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket
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
    return assembler


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
    start = 0
    while start < count:
        if sock is None:
            for data in datagrams[start:]:
                transport.sendto(data, address)
            return
        size = len(datagrams[start])
        end = start + 1
        if _gso_enabled:
            limit = min(count, start + _GSO_MAX_SEGMENTS)
            while end < limit and len(datagrams[end]) == size:
                end += 1
            if end < limit and len(datagrams[end]) < size:
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


class _SrtpProtector:
    """``Session.protect`` without the per-call allocation and checks of pylibsrtp's wrapper.

    Uses the session's own 1500-byte buffer (so it is only valid between two
    awaits, like the wrapper) and raises :class:`pylibsrtp.Error` on failure.
    """

    _LIMIT = 1500 - 16 - 128  # pylibsrtp's SRTP_MAX_TRAILER_LEN

    def __init__(self, session: pylibsrtp.Session) -> None:
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._length = _srtp_ffi.new("int *")

    def __call__(self, packet: bytes) -> bytes:
        size = len(packet)
        if size > self._LIMIT:
            raise ValueError(f"RTP packet of {size} bytes is too long to protect")
        self._buffer[0:size] = packet
        self._length[0] = size
        status = _srtp_lib.srtp_protect(self._srtp, self._cdata, self._length)
        if status:
            raise pylibsrtp.Error(f"srtp_protect failed with status {status}")
        return self._buffer[0 : self._length[0]]


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
        #: seq % _HISTORY -> (seq, timestamp, marker, payload) of sent packets
        self._history: dict[int, tuple[int, int, bool, bytes]] = {}
        self._srtp: pylibsrtp.Session | None = None
        self._protect: Callable[[bytes], bytes] = bytes
        self.packets_sent = 0
        self.retransmissions = 0

    def _route(self) -> tuple[Callable[[bytes], bytes], Any] | None:
        """The SRTP protection and the nominated ICE pair to send on, if connected."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return None
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return None
        srtp = dtls._tx_srtp
        if srtp is not self._srtp:
            self._srtp, self._protect = srtp, _SrtpProtector(srtp)
        return self._protect, pair

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
        pack, history = _RTP_HEADER.pack, self._history
        now = time.time()
        extensions = self._extensions(now, audio_level)
        timestamp = (timestamp + self._timestamp_origin) & 0xFFFFFFFF
        seq, ssrc, payload_type = self._sequence_number, self._ssrc, self._payload_type
        last = len(payloads) - 1
        octets = 0
        datagrams = []
        try:
            for index, payload in enumerate(payloads):
                marker = index == last
                datagrams.append(protect(
                    pack(0x90, payload_type | 0x80 if marker else payload_type, seq, timestamp, ssrc)
                    + extensions + payload
                ))
                history[seq % _HISTORY] = (seq, timestamp, marker, payload)
                octets += len(payload)
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
            sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
            sender._RTCRtpSender__ntp_timestamp = int((now + _NTP_EPOCH_OFFSET) * 4294967296)  # type: ignore[attr-defined]
        return True

    async def retransmit(self, sequence_number: int) -> None:
        """Resend a packet a NACK reported lost, if still in the history (replaces aiortc's)."""
        entry = self._history.get(sequence_number % _HISTORY)
        route = self._route()
        if entry is None or entry[0] != sequence_number or route is None:
            return
        seq, timestamp, marker, payload = entry
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
                    lambda: StunProtocol(connection), sock=sock
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
