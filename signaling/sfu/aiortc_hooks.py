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
* a sender's encoder is replaced by :class:`FramePacketizer`, which only splits
  an already encoded frame into RTP payloads (``aiortc.codecs.get_encoder`` is
  never called), and its keyframe hook is redirected to a callback;
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

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
        self._emit(packet._data, packet.timestamp, after_loss)  # type: ignore[attr-defined]
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
            while True:
                packet = self._packets.get(seq)
                if packet is None or packet.timestamp != first.timestamp:
                    return  # frame not complete yet
                parts.append(packet._data)  # type: ignore[attr-defined]
                if packet.marker:
                    break
                seq = uint16_add(seq, 1)
            for done in range(uint16_add(seq, -self._next_seq) + 1):
                self._packets.pop(uint16_add(self._next_seq, done), None)
            self._next_seq = uint16_add(seq, 1)
            after_loss, self._after_loss = self._after_loss, False
            self._emit(b"".join(parts), first.timestamp, after_loss)

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

    def _emit(self, data: bytes, timestamp: int, after_loss: bool) -> None:
        self.frames_delivered += 1
        self._sink(AssembledFrame(data, timestamp, self._level, after_loss))

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


@dataclass(frozen=True, slots=True)
class EncodedPayload:
    """What a forwarding track yields to its sender: one frame, already encoded."""

    data: bytes
    timestamp: int


class FramePacketizer:
    """Stand-in for a sender's encoder: only packetizes :class:`EncodedPayload`."""

    def __init__(self, mime_type: str) -> None:
        self._mime_type = mime_type.lower()
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError(f"forwarding sender for {self._mime_type} got a raw frame {frame!r}")

    def pack(self, payload: EncodedPayload) -> tuple[list[bytes], int]:
        """Split ``payload`` into RTP payloads the way aiortc's encoder would."""
        if self._mime_type == "video/vp8":
            payloads = Vp8Encoder._packetize(payload.data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        elif self._mime_type == "video/h264":
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(payload.data))
        else:
            payloads = [payload.data]
        return payloads, payload.timestamp


def make_forwarding_sender(
    sender: RTCRtpSender, *, mime_type: str, on_keyframe_request: Callable[[], None]
) -> FramePacketizer:
    """Make ``sender`` packetize encoded frames and report PLI/FIR to a callback.

    Must be called before the sender's first frame. The sender then never
    creates an encoder; a PLI or FIR from the remote peer calls
    ``on_keyframe_request`` instead of flagging an encoder.
    """
    packetizer = FramePacketizer(mime_type)
    sender._RTCRtpSender__encoder = packetizer  # type: ignore[attr-defined]
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
    return packetizer


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


def _bind_in_range(address: str, port_min: int, port_max: int) -> socket.socket:
    ports = list(range(port_min, port_max + 1))
    random.shuffle(ports)
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
