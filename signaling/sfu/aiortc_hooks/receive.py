"""A publisher's packets: taken in the socket's callback, never decoded.

:func:`tap_receiver_packets` (the server) hands every RTP packet of a receiver
to a sink as it arrives, after RTX unwrapping, with NACKs scheduled by a
:class:`NackScheduler`: retried about once per round trip, at most
``max_retries`` times and for at most ``max_age`` seconds, after which the
packet is given up (and the forwarder asks for a keyframe). Duplicates (a
retransmission of a packet that came after all) never reach the sink.

:func:`tap_receiver` (test clients, tools) assembles whole frames instead,
with :class:`FrameAssembler`.

Private names used: ``RTCRtpReceiver.__kind/__started/__codecs/__rtx_ssrc/
__remote_streams/__nack_generator/__active_ssrc/__jitter_buffer/
__decoder_queue``, ``_send_rtcp_nack``, ``_send_rtcp_pli``,
``_handle_rtp_packet``, ``_enabled``, ``__rtcp_ssrc``, ``_send_rtcp``; ``RTCDtlsTransport._state/_rx_srtp/
_rtp_router/_rtp_header_extensions_map/__rx_bytes/__rx_packets``;
``HeaderExtensionsMap.__ids`` (with ``mid``/``rtp_stream_id``/
``repaired_rtp_stream_id``); ``RtpRouter.ssrc_table/payload_type_table/
mid_table/route_rtp``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, clock
from aiortc.codecs import depayload, is_rtx
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)
from aiortc.utils import uint16_add, uint16_gt

from .srtp import srtp_unprotector

logger = logging.getLogger(__name__)

_background: set[asyncio.Future[Any]] = set()


def spawn(coroutine: Any) -> None:
    """Run an RTCP send (or aiortc's own packet handler) in a task kept until it ends."""
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


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
            if (
                packet is not None
                and previous is not None
                and (previous.marker or previous.timestamp != packet.timestamp)
            ):
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
    receiver._hirfa_receive = _SyncRtpReceive(receiver, _assembling_handler(receiver, assembler), None)  # type: ignore[attr-defined]
    return assembler






PacketSink = Callable[[RtpPacket], None]


class NackScheduler:
    """Which lost packets of one publisher stream to NACK, and when to give up.

    Guarantees: a gap in the sequence numbers is NACKed at once, then again
    every ``max(rtt, min_interval)`` seconds while it stays open (``rtt`` is
    measured from the NACKs' own round trips, or taken from ``rtt_hint``, else
    ``default_rtt``), at most ``max_retries`` times and no longer than
    ``max_age`` seconds after the gap was seen; then ``on_give_up`` is called
    once with the packets given up. :meth:`add` answers ``False`` for a packet
    already received (a duplicate, or a retransmission that crossed the
    original) so that it is not forwarded twice. At most ``max_missing``
    packets are tracked: a bigger jump restarts the stream's state.
    """

    def __init__(
        self,
        *,
        send_nack: Callable[[list[int]], None],
        on_give_up: Callable[[list[int]], None],
        rtt_hint: Callable[[], float | None] = lambda: None,
        max_retries: int = 10,
        max_age: float = 1.5,
        default_rtt: float = 0.1,
        min_interval: float = 0.02,
        max_missing: int = 512,
        clock: Callable[[], float] = time.monotonic,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self._send_nack = send_nack
        self._on_give_up = on_give_up
        self._rtt_hint = rtt_hint
        self._max_retries = max_retries
        self._max_age = max_age
        self._default_rtt = default_rtt
        self._min_interval = min_interval
        self._max_missing = max_missing
        self._clock = clock
        self._call_later = call_later
        self._timer: Any = None
        self._max_seq: int | None = None
        #: seq -> [first seen, last NACK sent, NACKs sent]
        self._missing: dict[int, list[float]] = {}
        self._measured_rtt: float | None = None
        self.nacks_sent = 0
        self.recovered = 0
        self.given_up = 0
        self.duplicates = 0

    @property
    def rtt(self) -> float:
        hint = self._rtt_hint()
        if hint:
            return hint
        return self._measured_rtt if self._measured_rtt is not None else self._default_rtt

    @property
    def missing(self) -> frozenset[int]:
        return frozenset(self._missing)

    def add(self, seq: int) -> bool:
        """Note packet ``seq`` as received; answers whether it is new."""
        max_seq = self._max_seq
        if max_seq is None:
            self._max_seq = seq
            return True
        ahead = (seq - max_seq) & 0xFFFF
        if ahead == 0:
            self.duplicates += 1
            return False
        if ahead < 0x8000:
            self._max_seq = seq
            if ahead == 1:
                return True
            if ahead > self._max_missing:
                self._missing.clear()  # the stream jumped: nothing to recover
                return True
            now = self._clock()
            lost = []
            for offset in range(1, ahead):
                missing = (max_seq + offset) & 0xFFFF
                self._missing[missing] = [now, now, 1.0]
                lost.append(missing)
            self.nacks_sent += 1
            self._send_nack(lost)
            self._arm(now)
            return True
        entry = self._missing.pop(seq, None)
        if entry is None:
            self.duplicates += 1
            return False  # older than the newest and not missing: already had it
        self.recovered += 1
        if entry[2] == 1:  # answered to the first NACK: a clean round trip
            sample = self._clock() - entry[1]
            previous = self._measured_rtt
            self._measured_rtt = sample if previous is None else 0.8 * previous + 0.2 * sample
        return True

    def _interval(self) -> float:
        return max(self.rtt, self._min_interval)

    def _arm(self, now: float) -> None:
        if self._timer is not None or not self._missing:
            return
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._timer = call_later(self._interval(), self.poll)

    def poll(self) -> None:
        """Retry or give up what is due (called by the scheduler's timer)."""
        self._timer = None
        if not self._missing:
            return
        now = self._clock()
        interval = self._interval()
        due: list[int] = []
        dropped: list[int] = []
        for seq, entry in list(self._missing.items()):
            if now - entry[1] < interval * 0.9:
                continue
            if entry[2] >= self._max_retries or now - entry[0] + interval > self._max_age:
                del self._missing[seq]
                dropped.append(seq)
                continue
            entry[1] = now
            entry[2] += 1
            due.append(seq)
        if due:
            self.nacks_sent += 1
            self._send_nack(due)
        if dropped:
            self.given_up += len(dropped)
            self._on_give_up(dropped)
        self._arm(now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._missing.clear()


class NackSchedulers:
    """One :class:`NackScheduler` per SSRC of a receiver (a simulcast track has one per layer).

    The counters add up every stream's; ``for_ssrc`` makes a stream's scheduler
    on its first packet.
    """

    def __init__(self, make: Callable[[int], NackScheduler]) -> None:
        self._make = make
        self.by_ssrc: dict[int, NackScheduler] = {}

    def for_ssrc(self, ssrc: int) -> NackScheduler:
        scheduler = self.by_ssrc.get(ssrc)
        if scheduler is None:
            scheduler = self.by_ssrc[ssrc] = self._make(ssrc)
        return scheduler

    @property
    def nacks_sent(self) -> int:
        return sum(s.nacks_sent for s in self.by_ssrc.values())

    @property
    def recovered(self) -> int:
        return sum(s.recovered for s in self.by_ssrc.values())

    @property
    def given_up(self) -> int:
        return sum(s.given_up for s in self.by_ssrc.values())

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.by_ssrc.values())

    @property
    def missing(self) -> frozenset[int]:
        return frozenset(seq for s in self.by_ssrc.values() for seq in s.missing)

    @property
    def rtt(self) -> float:
        return next(iter(self.by_ssrc.values())).rtt if self.by_ssrc else 0.0

    def close(self) -> None:
        for scheduler in self.by_ssrc.values():
            scheduler.close()


def tap_receiver_packets(
    receiver: RTCRtpReceiver,
    *,
    sink: PacketSink,
    on_give_up: Callable[[list[int], int], None] = lambda lost, ssrc: None,
    rtt_hint: Callable[[], float | None] = lambda: None,
    max_retries: int = 10,
    max_age: float = 1.5,
) -> NackSchedulers | None:
    """Make ``receiver`` hand every RTP packet to ``sink`` as it arrives and never decode.

    Must be called before the receiver starts. Packets reach ``sink`` after
    RTX unwrapping, with their payload as the publisher packetized it,
    duplicates removed. For video, lost packets are NACKed by one
    :class:`NackScheduler` per SSRC (the returned :class:`NackSchedulers`;
    ``None`` for audio, which browsers never retransmit), and
    ``on_give_up(lost, ssrc)`` hears about packets it gave up.
    """
    kind = receiver._RTCRtpReceiver__kind  # type: ignore[attr-defined]
    if receiver._RTCRtpReceiver__started:  # type: ignore[attr-defined]
        raise RuntimeError(f"cannot tap {kind} receiver {receiver!r}: it already started")
    scheduler: NackSchedulers | None = None
    handle: Callable[[RtpPacket], None]
    if kind == "video":

        def make(ssrc: int) -> NackScheduler:
            def send_nack(lost: list[int]) -> None:
                spawn(receiver._send_rtcp_nack(ssrc, sorted(lost)))

            def give_up(lost: list[int]) -> None:
                on_give_up(lost, ssrc)

            return NackScheduler(
                send_nack=send_nack, on_give_up=give_up, rtt_hint=rtt_hint, max_retries=max_retries, max_age=max_age
            )

        schedulers = scheduler = NackSchedulers(make)
        by_ssrc = schedulers.by_ssrc
        for_ssrc = schedulers.for_ssrc

        def nack_then_sink(packet: RtpPacket) -> None:
            stream = by_ssrc.get(packet.ssrc) or for_ssrc(packet.ssrc)
            if stream.add(packet.sequence_number):
                sink(packet)

        handle = nack_then_sink

    else:
        handle = sink
    receiver._RTCRtpReceiver__jitter_buffer = _PacketBuffer(handle)  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__decoder_queue = _NoDecoderQueue()  # type: ignore[attr-defined]
    receiver._hirfa_receive = _SyncRtpReceive(receiver, handle, scheduler)  # type: ignore[attr-defined]
    return scheduler


def set_stream_id_extensions(pc: Any, *, rid: int | None, repaired_rid: int | None) -> None:
    """Read the RID and repaired-RID header extensions (RFC 8852) under these ids on ``pc``'s transports.

    aiortc negotiates neither (it leaves them out of its answers' common
    extensions), so a simulcast publisher's answer is read by the SFU and the
    ids given here: then the first packets of each layer name their RID, and
    RTX packets the layer they repair.
    """
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport is None:
            continue
        ids = transport._rtp_header_extensions_map._HeaderExtensionsMap__ids
        ids.rtp_stream_id = rid
        ids.repaired_rtp_stream_id = repaired_rid


class _PacketBuffer:
    """Stands in for aiortc's ``JitterBuffer`` should a packet take aiortc's own path
    (e.g. routed by payload type alone): it goes to the same handler, nothing is kept."""

    def __init__(self, handle: PacketSink) -> None:
        self._handle = handle

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self._handle(packet)
        return False, None


def _assembling_handler(receiver: RTCRtpReceiver, assembler: FrameAssembler) -> PacketSink:
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    def handle(packet: RtpPacket) -> None:
        try:
            packet._data = depayload(codecs[packet.payload_type], packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except (ValueError, KeyError):
            return
        send_pli, _ = assembler.add(packet)
        if send_pli:
            spawn(receiver._send_rtcp_pli(packet.ssrc))

    return handle


class _SyncRtpReceive:
    """What a tapped receiver does with one RTP packet, called from the socket's callback.

    The same steps as ``RTCRtpReceiver._handle_rtp_packet`` of aiortc 1.16,
    on the receiver's own state, but synchronous (no coroutine, no task, no
    queue per packet): drop if disabled, note the SSRC as active, feed the
    RTCP statistics (so receiver reports stay right), unwrap RTX, note the
    packet for NACKs (the given :class:`NackScheduler`, or else aiortc's own
    generator, which NACKs each gap once) and hand it to ``handle``. One step
    is left out on purpose: the remote bitrate estimator (REMB) is not fed,
    which was the costliest part of receiving video in Python; publishers then
    adapt their rate from loss in the receiver reports (and their own caps).
    """

    __slots__ = ("_active", "_codecs", "_handle", "_nack", "_receiver", "_rid_ssrc", "_rtx_ssrc", "_streams", "packets")

    def __init__(self, receiver: RTCRtpReceiver, handle: PacketSink, scheduler: NackSchedulers | None) -> None:
        self._receiver = receiver
        self._handle = handle
        # aiortc fills these dicts in place (never rebinds them), so they can be held.
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        # Our scheduler replaces aiortc's generator; without one, aiortc's NACKs each gap once.
        self._nack = None if scheduler is not None else receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        self._active: dict[int, Any] = receiver._RTCRtpReceiver__active_ssrc  # type: ignore[attr-defined]
        # Simulcast layers announce no SSRC in the SDP: RID -> SSRC, learnt from the packets,
        # maps an RTX stream (which names the RID it repairs) onto its layer.
        self._rid_ssrc: dict[str, int] = {}
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
        rid = packet.extensions.rtp_stream_id
        if rid is not None and not is_rtx(codec):
            self._rid_ssrc[rid] = packet.ssrc
        if is_rtx(codec):
            original_ssrc = self._rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None:
                repaired = packet.extensions.repaired_rtp_stream_id or packet.extensions.rtp_stream_id
                original_ssrc = self._rid_ssrc.get(repaired) if repaired is not None else None
                if original_ssrc is not None:
                    self._rtx_ssrc[packet.ssrc] = original_ssrc
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nack = self._nack
        if nack is not None and nack.add(packet):
            spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing)))
        self._handle(packet)


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
            ids = extensions_map._HeaderExtensionsMap__ids
            level_id = ids.audio_level
            # Read only by the first packets of a stream (browsers stop sending them once
            # acknowledged): MID routes a stream the SDP announced no SSRC for, RID names
            # its simulcast layer, repaired RID the layer an RTX stream repairs.
            sdes_ids = (ids.mid, ids.rtp_stream_id, ids.repaired_rtp_stream_id)
            index = pos
            while index < end:
                byte = data[index]
                index += 1
                if byte == 0:
                    continue  # padding
                length = (byte & 0x0F) + 1
                if index + length > end:
                    raise ValueError("RTP one-byte header extension value is truncated")
                element = byte >> 4
                if element == level_id:
                    value = data[index]
                    packet.extensions.audio_level = (value & 0x80 == 0x80, value & 0x7F)
                elif element in sdes_ids:
                    text = data[index : index + length].decode("ascii", "replace")
                    if element == sdes_ids[0]:
                        packet.extensions.mid = text
                    elif element == sdes_ids[1]:
                        packet.extensions.rtp_stream_id = text
                    else:
                        packet.extensions.repaired_rtp_stream_id = text
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


def receive_srtp(connection: Any, data: bytes) -> bool:
    """Handle one SRTP packet in the socket's callback if it is for a tapped receiver.

    Answers ``False`` (nothing done, nothing consumed: the caller queues the
    datagram for aiortc as aioice would) unless the connection's DTLS transport
    is connected with SRTP keys and the packet's clear header (SSRC, payload
    type) names a tapped receiver whose ``_handle_rtp_packet`` is aiortc's own
    (not replaced on the instance). Otherwise unprotects it (a packet failing
    authentication is dropped, as aiortc does), parses it and routes it with
    aiortc's router, after authentication, and hands it to the receiver's
    :class:`_SyncRtpReceive`. SRTCP always takes aiortc's path.

    A packet whose SSRC is not known yet goes by its MID extension when it has one (the
    m-line it belongs to), never by its payload type alone: a new m-line's first packets
    arrive before its receiver starts (between the publisher's answer and the server's
    applying it), and aiortc's router would learn their SSRC onto the one started receiver
    of that payload type for good — a second camera's unannounced simulcast layers were
    all taken for the first camera's. Such packets are dropped until their m-line receives.
    """
    dtls = connection._hirfa_dtls
    if dtls is None or dtls._state is not DtlsState.CONNECTED or 192 <= data[1] <= 208:
        return False
    srtp = dtls._rx_srtp
    if srtp is None:
        return False
    router = dtls._rtp_router
    target = router.ssrc_table.get(int.from_bytes(data[8:12], "big"))
    by_mid = False
    if target is None:
        candidates = router.payload_type_table.get(data[1] & 0x7F)
        if not candidates:
            return False
        if all(_tapped(c) for c in candidates):
            # A stream whose SSRC is not known yet (a simulcast layer the SDP did not announce,
            # or a new m-line's first packets): its MID extension says which m-line.
            by_mid = True
        elif len(candidates) == 1:
            (target,) = candidates
        else:
            return False
    if not by_mid and not _tapped(target):
        return False  # not tapped, or its handler was replaced on purpose (a test's probe): aiortc's path
    dtls._RTCDtlsTransport__rx_bytes += len(data)
    dtls._RTCDtlsTransport__rx_packets += 1
    unprotect = connection._hirfa_unprotect
    if unprotect is None or unprotect.session is not srtp:
        unprotect = connection._hirfa_unprotect = srtp_unprotector(srtp)
    try:
        packet = _parse_rtp(unprotect(data), dtls._rtp_header_extensions_map)
    except (pylibsrtp.Error, ValueError):
        return True  # not authentic, or not RTP: dropped, like aiortc does
    mid = packet.extensions.mid if by_mid else None
    if mid is not None:
        receiver = router.mid_table.get(mid)
        if receiver is None:
            return True  # its m-line does not receive yet
        router.ssrc_table[packet.ssrc] = receiver
    else:
        receiver = router.route_rtp(packet)
        if receiver is None:
            return True
    handle = getattr(receiver, "_hirfa_receive", None)
    if handle is None or "_handle_rtp_packet" in receiver.__dict__:  # pragma: no cover - routed elsewhere after all
        spawn(receiver._handle_rtp_packet(packet, arrival_time_ms=clock.current_ms()))
        return True
    try:
        handle(packet)
    except Exception:  # a bug must not stop the socket; aiortc's loop would log it too
        logger.exception("SFU: handling an RTP packet failed")
    return True


def _tapped(receiver: Any) -> bool:
    return getattr(receiver, "_hirfa_receive", None) is not None and "_handle_rtp_packet" not in receiver.__dict__


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send one RTCP picture loss indication to the publisher of ``receiver``."""
    await receiver._send_rtcp_pli(media_ssrc)


def send_remb(receiver: RTCRtpReceiver, bitrate: int, ssrcs: list[int]) -> bool:
    """Tell the publisher of ``receiver`` the most it should send on ``ssrcs`` (REMB), in the background.

    Answers ``False`` (nothing sent) before the receiver has its RTCP SSRC.
    """
    rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    if rtcp_ssrc is None or not ssrcs:
        return False
    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))
    spawn(receiver._send_rtcp(packet))
    return True




def tap_sender_reports(receiver: RTCRtpReceiver, on_report: Callable[[int, int, int], None]) -> None:
    """Call ``on_report(ssrc, ntp_timestamp, rtp_timestamp)`` for each sender report ``receiver`` gets.

    aiortc's own handling (statistics, the LSR echoed in receiver reports)
    runs first, unchanged.
    """
    handle_rtcp = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        await handle_rtcp(packet)
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            on_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def accept_red(transceiver: Any, payload_type: int) -> bool:
    """Let ``transceiver``'s receiver take RED (RFC 2198) packets of Opus on ``payload_type``.

    aiortc knows no RED, so it leaves RED out of the negotiated codecs, and each
    ``createOffer`` and ``setRemoteDescription`` sets the transceiver's codecs anew;
    its receiver registers its payload types (in its codec table and the
    transport's router) once, when it starts. A receiver not started yet gets RED
    among the transceiver's codecs; one already started gets it in its own table
    and the router's: a renegotiation offered before the first answer's
    connection was up (two people arriving at a workshop table at once) had made
    the receiver start without RED, and every packet of that microphone was
    dropped. Answers whether RED is accepted (``False``: no Opus negotiated).
    """
    codecs = transceiver._codecs
    opus = next((c.payloadType for c in codecs if c.mimeType.lower() == "audio/opus"), None)
    if opus is None:
        return False
    red = next((c for c in codecs if c.payloadType == payload_type and c.mimeType.lower() == "audio/red"), None)
    if red is None:
        red = RTCRtpCodecParameters(
            mimeType="audio/red", clockRate=48000, channels=2, payloadType=payload_type,
            parameters={f"{opus}/{opus}": None},
        )
        codecs.append(red)
    receiver = transceiver.receiver
    if receiver._RTCRtpReceiver__started:
        receiver._RTCRtpReceiver__codecs.setdefault(payload_type, red)
        receiver.transport._rtp_router.payload_type_table.setdefault(payload_type, set()).add(receiver)
    return True
    opus = next((c.payloadType for c in codecs if c.mimeType.lower() == "audio/opus"), None)
    if opus is None or transceiver.receiver._RTCRtpReceiver__started:
        return False
    codecs.append(
        RTCRtpCodecParameters(
            mimeType="audio/red", clockRate=48000, channels=2, payloadType=payload_type,
            parameters={f"{opus}/{opus}": None},
        )
    )
    return True
