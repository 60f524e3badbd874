"""Fan-out of RTP packets: one :class:`TrackForwarder` per published track,
one :class:`ForwardTrack` per subscription.

Guarantees:

* every packet of the publisher is forwarded to each subscriber as it
  arrives (late and out-of-order packets too, audio included, up to 1023
  packets behind the newest: further back the subscriber's SRTP replay
  window refuses it), never held back to wait for the rest of its frame;
  the publisher's payloads are sent unchanged, only the header is the
  subscription's own (SSRC, sequence number shifted by a constant per run,
  timestamp by a constant per source), so a loss upstream reaches the
  subscriber as the same gap and the retransmission that fills it upstream
  fills it downstream too;
* a subscriber's video starts at the first packet of a keyframe, and after a
  deliberate gap (a full socket backlog, a moderator unmute, a new source)
  it resumes only at one, with sequence numbers that continue without a hole
  (nothing to NACK for what was dropped on purpose);
* a subscription's sequence numbers never go back more than 1023 behind the
  highest it sent, however long a run lasts and whatever sources, layers and
  pauses it goes through (libsrtp refuses an index further back: replay_old);
* one subscriber's failure to write (his SRTP refusing a packet) never costs
  another subscriber of the track that packet;
* a subscriber's NACKs are answered from the publisher's packet cache,
  each packet at most once per round trip of that subscriber, never while
  its socket backlog is over the bound, and within a per-second budget;
* a publisher is asked for a keyframe only when recovery truly failed (a
  packet given up after the NACK retries, a subscriber of that track who
  sent PLI/FIR, a start or a resync): one request pending per published
  track, whoever asks, until the keyframe arrives (or ``keyframe_timeout``
  passes), and no two within ``keyframe_interval``;
* a subscriber whose socket backlog exceeds ``max_backlog`` bytes loses
  video until the next keyframe; audio is dropped only past twice that bound
  (it is never the victim of video filling the queue);
* a track muted by a moderator forwards nothing, whatever its client sends;
* a simulcast track (several layers, one SSRC each, named by RID) is
  forwarded one layer per subscription: the subscription's target layer is
  set by the allocator (:mod:`.allocation`), and a switch happens only at a
  keyframe of the target layer, the old layer being forwarded until then;
  sequence numbers continue without a hole, timestamps continue (aligned on
  the publisher's sender reports when both layers have one), and VP8 picture
  ids and TL0PICIDX continue too (:func:`vp8_rewrite`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from .aiortc_hooks import NackSchedulers, send_pli
from .red import MAX_LENGTH, MAX_OFFSET, red_payload, red_primary
from .types import MediaKind, TrackSource, VideoCodec

logger = logging.getLogger(__name__)

# RTP clock ticks between two frames, used to keep timestamps moving forward
# when a subscription switches to another source.
_FRAME_TICKS = {MediaKind.AUDIO: 960, MediaKind.VIDEO: 3000}
#: What a forwarded packet carries besides its payload, in bits: RTP header with its
#: extensions (~20 bytes), SRTP tag (10), UDP (8) and IPv4 (20) headers.
WIRE_OVERHEAD_BITS = 58 * 8
#: The weight of each new second in a layer's steady rate (:meth:`TrackForwarder.steady_bitrates`):
#: about the last four seconds.
STEADY_WEIGHT = 0.25
_CACHE = 1024  # packets of each published track kept for subscribers' NACKs (> 1 s of 1 Mbps video)
#: How far behind the newest packet of a run a late one is still written (and a NACK answered):
#: within the 1024-packet SRTP replay window of aiortc's and Chromium's libsrtp sessions.
_LATEST = _CACHE - 1
_NTP_ONE_SECOND = 1 << 32


def is_keyframe(codec: VideoCodec | None, data: bytes) -> bool:
    """Whether ``data`` (a depacketized frame) can be decoded on its own.

    ``codec`` is ``None`` for audio, where every frame stands alone.
    """
    if codec is None:
        return True
    if codec is VideoCodec.VP8:
        # RFC 6386 section 9.1: bit 0 of the frame tag is 0 for key frames.
        return len(data) >= 3 and data[0] & 0x01 == 0
    # H.264 Annex B: an IDR slice (5) or a sequence parameter set (7).
    index = data.find(b"\x00\x00\x01")
    while index != -1 and index + 3 < len(data):
        if data[index + 3] & 0x1F in (5, 7):
            return True
        index = data.find(b"\x00\x00\x01", index + 3)
    return False


def starts_keyframe(codec: VideoCodec, payload: bytes) -> bool:
    """Whether an RTP payload (as packetized by the publisher) is the first packet of a keyframe."""
    size = len(payload)
    if not size:
        return False
    first = payload[0]
    if codec is VideoCodec.VP8:
        # RFC 7741 section 4.2: S bit, partition 0; then the payload header's P bit (0: key).
        if first & 0x17 != 0x10:
            return False
        index = 1
        if first & 0x80:  # X: extension byte
            if size < 2:
                return False
            extension = payload[1]
            index = 2
            if extension & 0x80:  # I: picture id, 7 or 15 bits
                if size <= index:
                    return False
                index += 2 if payload[index] & 0x80 else 1
            if extension & 0x40:  # L: TL0PICIDX
                index += 1
            if extension & 0x30:  # T or K: TID/KEYIDX byte
                index += 1
        return size > index and payload[index] & 0x01 == 0
    nal = first & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: aggregated NAL units, each with a 16-bit size
        index = 1
        while index + 2 < size:
            if payload[index + 2] & 0x1F in (5, 7):
                return True
            index += 2 + ((payload[index] << 8) | payload[index + 1])
        return False
    if nal == 28:  # FU-A: the start fragment of an IDR slice
        return size > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F in (5, 7)
    return False


def vp8_picture_ids(payload: bytes) -> tuple[int | None, int | None]:
    """The (picture id, TL0PICIDX) of a VP8 payload descriptor (RFC 7741), ``None`` where absent."""
    size = len(payload)
    if size < 2 or not payload[0] & 0x80:
        return None, None
    extension = payload[1]
    index = 2
    picture_id = None
    if extension & 0x80:
        if size <= index:
            return None, None
        if payload[index] & 0x80:
            if size <= index + 1:
                return None, None
            picture_id = ((payload[index] & 0x7F) << 8) | payload[index + 1]
            index += 2
        else:
            picture_id = payload[index] & 0x7F
            index += 1
    tl0 = payload[index] if extension & 0x40 and size > index else None
    return picture_id, tl0


def vp8_rewrite(payload: bytes, picture_offset: int, tl0_offset: int) -> bytes:
    """``payload`` with its VP8 picture id and TL0PICIDX shifted (modulo their width)."""
    if (not picture_offset and not tl0_offset) or len(payload) < 2 or not payload[0] & 0x80:
        return payload
    out = bytearray(payload)
    extension = out[1]
    index = 2
    if extension & 0x80 and len(out) > index:
        if out[index] & 0x80 and len(out) > index + 1:
            value = ((((out[index] & 0x7F) << 8) | out[index + 1]) + picture_offset) & 0x7FFF
            out[index], out[index + 1] = 0x80 | value >> 8, value & 0xFF
            index += 2
        else:
            out[index] = ((out[index] & 0x7F) + picture_offset) & 0x7F
            index += 1
    if extension & 0x40 and len(out) > index:
        out[index] = (out[index] + tl0_offset) & 0xFF
    return bytes(out)


class _Layer:
    """One RTP stream of a published track (its only one, or one simulcast layer)."""

    __slots__ = (
        "bitrate", "bytes", "cache", "index", "keyframes", "last_packet", "last_request", "loss",
        "max_seq", "packet_rate", "pending_since", "rid", "sender_report", "ssrc", "steady", "window_packets",
        "window_seq", "window_start",
    )

    def __init__(self, index: int, rid: str | None) -> None:
        self.index = index
        self.rid = rid
        self.ssrc: int | None = None
        self.cache: list[RtpPacket | None] = [None] * _CACHE
        self.last_request: float | None = None
        self.pending_since: float | None = None
        self.sender_report: tuple[int, int] | None = None
        self.keyframes = 0
        self.bytes = 0
        self.window_start: float | None = None
        #: Payload bits, and packets, per second over the last full second (0 until one passed).
        self.bitrate = 0.0
        self.packet_rate = 0.0
        #: The rate on a subscriber's link (bit/s, wire bytes included) smoothed over the seconds
        #: (:data:`STEADY_WEIGHT` of each new one; 0 until one passed).
        self.steady = 0.0
        self.last_packet: float | None = None
        # Loss over the last full second: packets that came (retransmissions included)
        # against the sequence numbers that went by.
        self.max_seq: int | None = None
        self.window_seq: int | None = None
        self.window_packets = 0
        self.loss = 0.0


class TrackForwarder:
    """One published track: receives its RTP packets and fans them out.

    Holds the set of :class:`ForwardTrack` it feeds, the last packets (for
    subscribers' NACKs) and the one keyframe request that may be pending.
    """

    def __init__(
        self,
        *,
        participant_id: str,
        source: TrackSource,
        codec: VideoCodec | None,
        receiver: RTCRtpReceiver | None,
        keyframe_interval: float,
        keyframe_timeout: float = 1.0,
        on_audio_level: Callable[[str, int | None, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = source.kind
        self.codec = codec if self.kind is MediaKind.VIDEO else None
        self._receiver = receiver
        self._keyframe_interval = keyframe_interval
        self._keyframe_timeout = keyframe_timeout
        self._on_audio_level = on_audio_level
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribers: tuple[ForwardTrack, ...] = ()
        #: The track's RTP streams, lowest layer first (one unless simulcast).
        self._layers: tuple[_Layer, ...] = (_Layer(0, None),)
        self._by_ssrc: dict[int, _Layer] = {}
        #: Simulcast RIDs, lowest layer first (empty: one stream).
        self.rids: tuple[str, ...] = ()
        #: Called with every packet forwarded, of every layer (``packet, starts_keyframe,
        #: layer``): the recorder's hook, which keeps the one layer it records.
        self.taps: tuple[Callable[[RtpPacket, bool, int], None], ...] = ()
        self._muted = False
        self._closed = False
        #: The receiver's NACK scheduler (video), for diagnostics.
        self.nack: NackSchedulers | None = None
        #: Payload type of the publisher's RED packets (audio), once negotiated.
        self.red_payload_type: int | None = None
        self.clock_rate = 90000 if self.kind is MediaKind.VIDEO else 48000
        self.packets_received = 0
        self.frames_received = 0
        self.keyframes_received = 0
        self.keyframe_requests_sent = 0
        self.keyframe_requests_absorbed = 0
        self.recovery_failures = 0
        self.red_packets_received = 0
        self.packets_unrouted = 0
        #: The last REMB sent to the publisher about this track (bit/s).
        self.remb_sent: int | None = None

    def __repr__(self) -> str:
        return f"TrackForwarder({self.participant_id!r}, {self.source.value})"

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def receiver(self) -> RTCRtpReceiver | None:
        """The publisher's receiver (``None`` for a track piped from another worker)."""
        return self._receiver

    @property
    def subscribers(self) -> frozenset[ForwardTrack]:
        return frozenset(self._subscribers)

    @property
    def keyframe_pending(self) -> bool:
        """Whether a keyframe request is pending for any layer."""
        return any(layer.pending_since is not None for layer in self._layers)

    @property
    def last_keyframe_request(self) -> float | None:
        """When a keyframe of the lowest layer was last asked for (the forwarder's clock)."""
        return self._layers[0].last_request

    @property
    def media_ssrc(self) -> int | None:
        """SSRC of the (lowest) media stream (after RTX unwrapping), once it sent a packet."""
        return self._layers[0].ssrc

    @property
    def sender_report(self) -> tuple[int, int] | None:
        """The publisher's last sender report (NTP time, RTP timestamp) of the lowest layer."""
        return self._layers[0].sender_report

    @property
    def layered(self) -> bool:
        """Whether the track is simulcast (several layers, one per RID)."""
        return len(self._layers) > 1

    def set_rids(self, rids: tuple[str, ...]) -> None:
        """The track's simulcast layers, lowest first, as the publisher's answer names them.

        A track with layers routes each packet by its SSRC, learnt from the RID
        header extension of the first packets; a packet of an SSRC not learnt
        yet is dropped. Subscriptions go back to their lowest layer.
        """
        if rids == self.rids:
            return
        self.rids = rids
        self._layers = tuple(_Layer(i, rid) for i, rid in enumerate(rids)) if len(rids) > 1 else (_Layer(0, None),)
        self._by_ssrc = {}
        for track in self._subscribers:
            track.set_target_layer(0)
            track.resync()

    def layer_bitrates(self, *, now: float | None = None, stale: float = 1.5) -> tuple[float | None, ...]:
        """Each layer's rate on a subscriber's link (bit/s: payloads and each packet's RTP, SRTP,
        UDP and IP bytes, which weigh as much as an Opus payload), ``None`` for a layer that sent
        nothing for ``stale`` s."""
        now = self._clock() if now is None else now
        return tuple(
            (layer.bitrate + layer.packet_rate * WIRE_OVERHEAD_BITS or 1.0)
            if layer.last_packet is not None and now - layer.last_packet < stale else None
            for layer in self._layers
        )

    def steady_bitrates(self, *, now: float | None = None, stale: float = 1.5) -> tuple[float | None, ...]:
        """Each layer's rate on a subscriber's link as :meth:`layer_bitrates`, smoothed over the
        seconds: one second's swings with the keyframes (the lab's 500 kbit/s camera read
        200-830 kbit/s second by second) are not what a link must carry over a few."""
        now = self._clock() if now is None else now
        return tuple(
            (layer.steady or layer.bitrate + layer.packet_rate * WIRE_OVERHEAD_BITS or 1.0)
            if layer.last_packet is not None and now - layer.last_packet < stale else None
            for layer in self._layers
        )

    def audio_rates(self, *, now: float | None = None, red_distance: int = 0) -> tuple[float, float | None]:
        """An audio track's rate on a link as it comes (RED included) and, when it comes as RED,
        with its primary Opus only (about half the payload); when it comes as plain Opus and is
        sent as RED carrying ``red_distance`` earlier packets (:meth:`ForwardTrack._red`), that
        rate and the plain one. Bit/s, wire bytes included."""
        layer = self._layers[0]
        rate = self.layer_bitrates(now=now)[0] or 0.0
        if self.red_payload_type is None or not self.red_packets_received:
            if not red_distance or not rate:
                return rate, None
            headers = (1 + 4 * red_distance) * 8 * layer.packet_rate
            return rate + red_distance * layer.bitrate + headers, rate
        return rate, layer.bitrate / 2 + layer.packet_rate * WIRE_OVERHEAD_BITS

    def upstream(self, *, now: float | None = None, stale: float = 1.5) -> tuple[float, float, list[int]]:
        """(bit/s arriving, worst layer loss 0..1, SSRCs) of the layers sending now: for the REMB."""
        now = self._clock() if now is None else now
        live = [layer for layer in self._layers
                if layer.ssrc is not None and layer.last_packet is not None and now - layer.last_packet < stale]
        return (
            sum(layer.bitrate for layer in live),
            max((layer.loss for layer in live), default=0.0),
            [layer.ssrc for layer in live if layer.ssrc is not None],
        )

    def layer_of_ssrc(self, ssrc: int) -> int | None:
        layer = self._by_ssrc.get(ssrc)
        return layer.index if layer is not None else None

    def _learn_layer(self, packet: RtpPacket) -> _Layer | None:
        if not self.rids:
            layer = self._layers[0]
        else:
            rid = packet.extensions.rtp_stream_id
            if rid not in self.rids:
                return None
            layer = self._layers[self.rids.index(rid)]
            if layer.ssrc is not None:
                self._by_ssrc.pop(layer.ssrc, None)
        layer.ssrc = packet.ssrc
        self._by_ssrc[packet.ssrc] = layer
        return layer

    def set_muted(self, muted: bool) -> None:
        """Stop (or resume) forwarding; resuming video waits for a keyframe."""
        if muted == self._muted:
            return
        self._muted = muted
        if not muted:
            for track in self._subscribers:
                track.resync()
            if self.kind is MediaKind.VIDEO:
                for layer in {track.target_layer for track in self._subscribers}:
                    self.request_keyframe(layer)

    def on_packet(self, packet: RtpPacket) -> None:
        """Sink for the receiver's packets (RTX unwrapped, duplicates removed)."""
        if self._closed:
            return
        layer = self._by_ssrc.get(packet.ssrc)
        if layer is None:
            layer = self._learn_layer(packet)
            if layer is None:
                self.packets_unrouted += 1
                return
        self.packets_received += 1
        layer.cache[packet.sequence_number % _CACHE] = packet
        now = self._clock()
        layer.last_packet = now
        layer.bytes += len(packet.payload)
        layer.window_packets += 1
        seq = packet.sequence_number
        newest = layer.max_seq
        if newest is None or 0 < (seq - newest) & 0xFFFF < 0x8000:
            layer.max_seq = seq
        start = layer.window_start
        if start is None:
            layer.window_start, layer.window_seq = now, seq
        elif now - start >= 1.0:
            layer.bitrate = layer.bytes * 8 / (now - start)
            layer.packet_rate = layer.window_packets / (now - start)
            wire = layer.bitrate + layer.packet_rate * WIRE_OVERHEAD_BITS
            layer.steady = wire if not layer.steady else layer.steady + STEADY_WEIGHT * (wire - layer.steady)
            newest = layer.max_seq
            first = layer.window_seq
            if newest is not None and first is not None:
                expected = ((newest - first) & 0xFFFF) + 1
                layer.loss = max(0.0, 1.0 - layer.window_packets / expected) if expected < 0x8000 else 0.0
            layer.bytes, layer.window_start, layer.window_packets = 0, now, 0
            layer.window_seq = (newest + 1) & 0xFFFF if newest is not None else None
        codec = self.codec
        if codec is not None:
            keyframe = starts_keyframe(codec, packet.payload)
            if keyframe:
                self.keyframes_received += 1
                layer.keyframes += 1
                layer.pending_since = None
            if packet.marker and layer.index == 0:
                self.frames_received += 1
        else:
            keyframe = False
            self.frames_received += 1
            if packet.payload_type == self.red_payload_type:
                self.red_packets_received += 1
            if self._on_audio_level is not None and not self._muted:
                level = packet.extensions.audio_level
                self._on_audio_level(self.participant_id, level[1] if level else None, len(packet.payload))
        if self._muted:
            return
        index = layer.index
        for track in self._subscribers:
            try:
                track.forward(packet, keyframe, index)
            except Exception:  # one subscriber's failure (his SRTP refusing a packet) costs the others nothing
                track.write_errors += 1
                if track.write_errors == 1:
                    logger.exception("SFU: forwarding to %r failed (logged once per subscription)", track)
        for tap in self.taps:
            tap(packet, keyframe, index)

    def cached(self, sequence_number: int, layer: int = 0) -> RtpPacket | None:
        """The publisher's packet of ``layer`` with that sequence number, if still cached."""
        layers = self._layers
        if layer >= len(layers):
            return None
        packet = layers[layer].cache[sequence_number % _CACHE]
        return packet if packet is not None and packet.sequence_number == sequence_number else None

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int, ssrc: int | None = None) -> None:
        """The publisher's sender report for this track (for ``ssrc``'s layer): its NTP↔RTP mapping."""
        layer = self._layers[0] if ssrc is None else self._by_ssrc.get(ssrc)
        if layer is not None:
            layer.sender_report = (ntp_timestamp, rtp_timestamp)

    def layer_ssrc(self, layer: int) -> int | None:
        layers = self._layers
        return layers[layer].ssrc if layer < len(layers) else None

    def layer_sender_report(self, layer: int) -> tuple[int, int] | None:
        layers = self._layers
        return layers[layer].sender_report if layer < len(layers) else None

    def ntp_time(self, rtp_timestamp: int, layer: int = 0) -> int | None:
        """The publisher's NTP time of ``rtp_timestamp`` (his clock), once he sent a report."""
        report = self.layer_sender_report(layer)
        if report is None:
            return None
        ntp, base = report
        ticks = (rtp_timestamp - base) & 0xFFFFFFFF
        if ticks >= 0x80000000:
            ticks -= 0x100000000
        return (ntp + ticks * _NTP_ONE_SECOND // self.clock_rate) & 0xFFFFFFFFFFFFFFFF

    def on_missing(self, sequence_number: int, layer: int = 0) -> None:
        """A subscriber NACKed a packet this track never had. Nothing to do here: the
        receiver's NACK scheduler asks the publisher already (a piped track asks its worker)."""

    def on_recovery_failed(self, lost: list[int], ssrc: int | None = None) -> None:
        """The NACK retries for ``lost`` (of ``ssrc``) gave up: only a keyframe repairs the picture."""
        self.recovery_failures += 1
        layer = self._by_ssrc.get(ssrc) if ssrc is not None else None
        index = layer.index if layer is not None else 0
        # A recorder's tap asks for its own keyframe when it gives a hole up (recorder.py).
        if self._subscribers and (
            not self.layered or any(track.forwarded_layer == index for track in self._subscribers)
        ):
            self.request_keyframe(index)

    def request_keyframe(self, layer: int = 0) -> bool:
        """Ask the publisher for a keyframe of ``layer`` unless one is pending or was asked for recently.

        Answers whether a PLI was sent. Audio tracks never send one.
        """
        if self.kind is not MediaKind.VIDEO or self._closed or layer >= len(self._layers):
            return False
        state = self._layers[layer]
        now = self._clock()
        pending = state.pending_since
        last = state.last_request
        if (pending is not None and now - pending < self._keyframe_timeout) or (
            last is not None and now - last < self._keyframe_interval
        ):
            self.keyframe_requests_absorbed += 1
            return False
        ssrc = state.ssrc
        if ssrc is None:
            return False  # no media yet: the first packets start at a keyframe anyway
        state.last_request = state.pending_since = now
        self.keyframe_requests_sent += 1
        self._send_keyframe_request(ssrc, layer)
        return True

    def _send_keyframe_request(self, ssrc: int, layer: int) -> None:
        """Send the publisher a PLI for ``ssrc`` (a piped track asks its worker instead: `.pipe`)."""
        assert self._receiver is not None
        task = asyncio.ensure_future(send_pli(self._receiver, ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _attach(self, track: ForwardTrack) -> None:
        if track not in self._subscribers:
            self._subscribers = (*self._subscribers, track)

    def _detach(self, track: ForwardTrack) -> None:
        self._subscribers = tuple(t for t in self._subscribers if t is not track)

    async def close(self) -> None:
        """Detach every subscription (they go idle) and stop pending requests."""
        self._closed = True
        for track in self._subscribers:
            track.attach(None)
        if self.nack is not None:
            self.nack.close()
        for layer in self._layers:
            layer.cache = [None] * _CACHE
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class PacketWriter(Protocol):
    """Where a subscription's packets go (an :class:`~.aiortc_hooks.RtpWriter` in production)."""

    clock_mapping: Callable[[int], int | None] | None
    #: The payload type of the subscriber's negotiated codec (his Opus, for audio).
    payload_type: int

    def send(
        self,
        payload: bytes,
        seq: int,
        timestamp: int,
        marker: bool,
        audio_level: int | None = None,
        payload_type: int | None = None,
    ) -> bool: ...

    def resend(self, payload: bytes, seq: int, timestamp: int, marker: bool) -> bool: ...

    def send_padding(self, count: int, size: int = 255) -> int: ...

    def backlog(self) -> int: ...

    def rtt(self) -> float | None: ...


class ForwardTrack(MediaStreamTrack):
    """The track of one subscription: the packets of one source, forwarded as they come.

    Packets are written to the subscriber synchronously, as the publisher's
    packets arrive (no queue, no task per packet): the only backlog is the
    subscriber socket's. The track survives its source: :meth:`attach` points
    it at another forwarder (or at nothing, when it idles), so an m-line can
    be reused when participants come and go; sequence numbers and
    timestamps keep increasing across such switches. Nothing is written
    before the sender started (:meth:`start_sending`).
    """

    def __init__(
        self,
        kind: MediaKind,
        *,
        max_backlog: int,
        max_resends_per_second: int = 400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.kind = kind.value
        self._media_kind = kind
        self._video = kind is MediaKind.VIDEO
        self._max_backlog = max_backlog
        self._max_resends = max_resends_per_second
        self._clock = clock
        self._stopped = asyncio.Event()
        self._source: TrackForwarder | None = None
        self._writer: PacketWriter | None = None
        # Publisher seq + _seq_offset = our seq, from _start_seq on; None: waiting for a start.
        self._seq_offset: int | None = None
        self._start_seq = 0
        self._next_seq = random.randint(0, 0xFFFF)
        self._ts_offset: int | None = None
        self._last_ts: int | None = None
        # The source layer of the current run (meaningful while _seq_offset is set), the one
        # the allocator wants, and the layer the timestamp offset was computed for.
        self._layer = 0
        self._target = 0
        self._ts_layer = 0
        self._paused = False
        # VP8 picture id / TL0PICIDX continuity across layer switches (layered VP8 sources only).
        self._rewrite_vp8 = False
        #: A slot (one m-line, sources switched into it): VP8 picture ids go on across sources.
        self.continuous = False
        #: A slot's partner (audio slot k with video slot k, one msid stream): the sender
        #: reports carry the publisher's NTP time only while both carry the same publisher.
        self.partner: ForwardTrack | None = None
        self._picture_offset = 0
        self._tl0_offset = 0
        self._last_picture_id: int | None = None
        self._last_tl0: int | None = None
        self._resent_seq = [-1] * _CACHE
        self._resent_at = [0.0] * _CACHE
        self._resend_window = 0.0
        self._resends_in_window = 0
        #: Payload type of RED towards this subscriber, if he accepted it (else RED is unwrapped).
        self.red_payload_type: int | None = None
        #: Whether RED goes to him as it comes (the allocator turns it off when his link is
        #: too narrow for the redundancy: he then gets the primary Opus packet).
        self.send_red = True
        #: RED built by the SFU when the publisher sends plain Opus (and he took RED): each
        #: packet goes with this many packets before it (0: plain Opus; the allocator sets it
        #: from his link's loss, :func:`.allocation.red_distance`).
        self.red_distance = 0
        #: Packets sent to him as RED built here (plain Opus with the packets before it).
        self.red_built = 0
        self.packets_forwarded = 0
        self.bytes_forwarded = 0
        self.packets_dropped = 0
        self.frames_forwarded = 0
        self.retransmissions = 0
        #: Bits resent to him on the wire (the allocator counts them in what he is sent).
        self.resent_bits = 0
        #: Padding-only packets sent to him (probes).
        self.padding_sent = 0
        self.nacks_refused = 0
        self.keyframe_requests_received = 0
        self.layer_switches = 0
        #: Packets whose writing raised (the fan-out goes on to the next subscriber).
        self.write_errors = 0
        #: Our sequence numbers this subscription skipped and never sent since (lost before the
        #: SFU, or dropped by it): his receiver reports count them lost, his link did not
        #: (:meth:`downlink_lost`). ``_holes``: those a late packet may still fill (extended, as
        #: ``_sent_through``, our last sequence number counted from the first: ``_next_seq - 1``).
        self.seqs_skipped = 0
        self._holes: set[int] = set()
        self._sent_through = self._next_seq - 1

    def __repr__(self) -> str:
        return f"ForwardTrack({self.kind}, source={self._source!r})"

    @property
    def forwarded_layer(self) -> int | None:
        """The source layer being forwarded now (``None``: waiting for a start, or paused)."""
        return self._layer if self._seq_offset is not None else None

    @property
    def target_layer(self) -> int:
        return self._target

    @property
    def paused(self) -> bool:
        return self._paused

    def set_target_layer(self, layer: int) -> None:
        """Forward ``layer`` of a simulcast source from its next keyframe on.

        Until that keyframe the current layer goes on, so the picture never
        freezes for a switch; the keyframe is asked for at once.
        """
        if layer == self._target:
            return
        self._target = layer
        source = self._source
        if source is not None and self._writer is not None and self._video and not self._paused:
            source.request_keyframe(layer)

    def set_paused(self, paused: bool) -> None:
        """Suspend (or resume) this subscription: nothing is forwarded while paused; resuming
        starts at a keyframe of the target layer, with sequence numbers continuing."""
        if paused == self._paused:
            return
        self._paused = paused
        self.resync()
        source = self._source
        if not paused and source is not None and self._writer is not None and self._video:
            source.request_keyframe(self._target)

    @property
    def source(self) -> TrackForwarder | None:
        return self._source

    @property
    def sending(self) -> bool:
        return self._writer is not None

    @property
    def waiting(self) -> bool:
        """Whether nothing is forwarded until the next start point (a keyframe for video)."""
        return self._seq_offset is None

    def attach(self, source: TrackForwarder | None) -> None:
        """Forward ``source`` from now on (``None``: idle), starting at its next keyframe."""
        if self._source is source:
            return
        if self._source is not None:
            self._source._detach(self)
        self._source = source
        self._ts_offset = None
        self._target = 0
        self._rewrite_vp8 = self._vp8_continuity(source)
        self.resync()
        if self._writer is not None:
            self._writer.clock_mapping = self._clock_mapping()
        if source is not None:
            source._attach(self)
            if self._writer is not None and self._video and not self._paused:
                source.request_keyframe(self._target)

    def _vp8_continuity(self, source: TrackForwarder | None) -> bool:
        """Whether VP8 picture ids must be rewritten to go on: across layers of a simulcast
        source, and across sources for a slot (``continuous``)."""
        return bool(
            source is not None
            and (self.continuous or getattr(source, "layered", False))
            and source.codec is VideoCodec.VP8
        )

    def resync(self) -> None:
        """Forward nothing more until the next start point (video: a keyframe)."""
        self._seq_offset = None
        source = self._source
        self._rewrite_vp8 = self._vp8_continuity(source)

    def start_sending(self, writer: PacketWriter) -> None:
        """The subscriber's sender started: write to ``writer`` from the next keyframe on."""
        self._writer = writer
        writer.clock_mapping = self._clock_mapping()
        self.resync()
        if self._source is not None and self._video and not self._paused:
            self._source.request_keyframe(self._target)

    def stop_sending(self) -> None:
        self._writer = None

    def rtt(self) -> float | None:
        """The subscriber's round-trip time (s), once his receiver reports gave one."""
        writer = self._writer
        return writer.rtt() if writer is not None else None

    def pad(self, count: int, size: int) -> int:
        """Send ``count`` padding-only packets to the subscriber (a bandwidth probe); answers how many."""
        writer = self._writer
        if writer is None or writer.backlog() > self._max_backlog // 4:
            return 0
        sent = writer.send_padding(count, size)
        self.padding_sent += sent
        return sent

    def _clock_mapping(self) -> Callable[[int], int | None] | None:
        """Our timestamp -> the publisher's NTP time, for the sender reports (lip sync)."""
        source = self._source
        if source is None:
            return None

        def mapping(timestamp: int) -> int | None:
            offset = self._ts_offset
            if offset is None or self._source is not source:
                return None
            partner = self.partner
            held = partner._source if partner is not None else None
            if held is not None and held.participant_id != source.participant_id:
                return None  # NTP 0: a pair of two people is not to be synchronised
            if self._ts_layer:
                return source.ntp_time((timestamp - offset) & 0xFFFFFFFF, self._ts_layer)
            return source.ntp_time((timestamp - offset) & 0xFFFFFFFF)

        return mapping

    def on_remote_keyframe_request(self) -> None:
        """The subscriber sent PLI or FIR: pass it on if he does receive this track (not while
        it is paused: his browser, left with a frame it cannot finish, asks again and again, and
        resuming asks for the keyframe it starts at anyway)."""
        self.keyframe_requests_received += 1
        if self._source is not None and self._writer is not None and self.packets_forwarded and not self._paused:
            current = self.forwarded_layer
            self._source.request_keyframe(self._target if current is None else current)

    def forward(self, packet: RtpPacket, keyframe: bool, layer: int = 0) -> None:
        """Write one packet of the source's ``layer`` to the subscriber, keeping the guarantees above."""
        writer = self._writer
        if writer is None:
            return  # the sender has not started: stale packets would only add delay
        seq = packet.sequence_number
        offset = self._seq_offset
        if offset is None or layer != self._layer:
            if self._paused or layer != self._target:
                return  # another layer (or none) is wanted: not a drop, nothing to NACK
            if self._video and not keyframe:
                if offset is None:
                    self.packets_dropped += 1
                    if packet.marker and self._source is not None:
                        self._source.request_keyframe(layer)  # still waiting: no-op while one is pending
                return  # the current layer goes on until the target's keyframe
            if offset is not None:
                self.layer_switches += 1
            offset = self._seq_offset = (self._next_seq - seq) & 0xFFFF
            self._start_seq = seq
            if self._ts_offset is None or layer != self._ts_layer:
                self._ts_offset = self._layer_ts_offset(layer, packet.timestamp)
                self._ts_layer = layer
            self._layer = layer
            if self._rewrite_vp8:
                self._start_vp8_run(packet.payload)
        else:
            if (seq - self._start_seq) & 0xFFFF >= 0x8000:
                self.packets_dropped += 1
                return  # from before this run started (he never had its frame), or too late
            if (seq - self._start_seq) & 0xFFFF > _LATEST:
                # The run's start follows its newest packet, _LATEST behind: it never ages into
                # "before the run" (half the sequence space on), and what is written stays within
                # the subscriber's SRTP replay window (libsrtp refuses an index further back).
                self._start_seq = (seq - _LATEST) & 0xFFFF
        backlog = writer.backlog()
        if backlog > self._max_backlog and (self._video or backlog > 2 * self._max_backlog):
            self.packets_dropped += 1
            if self._video:
                self.resync()
                if self._source is not None:
                    self._source.request_keyframe(self._layer)
            return
        out_seq = (seq + offset) & 0xFFFF
        ahead = (out_seq - self._next_seq) & 0xFFFF
        if ahead < 0x8000:
            if ahead:
                self._skip(ahead)
            self._next_seq = (out_seq + 1) & 0xFFFF
            self._sent_through += ahead + 1
        elif self._holes:
            self._fill(out_seq)
        timestamp = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF  # type: ignore[operator]
        last = self._last_ts
        if last is None or (timestamp - last) & 0xFFFFFFFF < 0x80000000:
            self._last_ts = timestamp
        level = packet.extensions.audio_level
        payload, payload_type = packet.payload, None
        if not self._video and self._source is not None:
            if packet.payload_type == self._source.red_payload_type:
                if self.red_payload_type is not None and self.send_red:
                    payload_type = self.red_payload_type
                else:
                    primary = red_primary(payload)  # a subscriber without RED gets the Opus inside
                    if primary is None:
                        self.packets_dropped += 1
                        return
                    payload = primary
            elif self.red_payload_type is not None and self.send_red and self.red_distance:
                payload_type = self.red_payload_type
                payload = self._red(packet, writer.payload_type)
                self.red_built += 1
        if self._rewrite_vp8:
            payload = self._vp8_payload(payload)
        if writer.send(payload, out_seq, timestamp, bool(packet.marker), level[1] if level else None, payload_type):
            self.packets_forwarded += 1
            self.bytes_forwarded += len(payload)
            if packet.marker or not self._video:
                self.frames_forwarded += 1
        else:
            self.packets_dropped += 1

    def _red(self, packet: RtpPacket, payload_type: int) -> bytes:
        """``packet`` (plain Opus) as a RED payload carrying the ``red_distance`` packets before it
        that the subscriber was sent in this run and that a RED header can describe (one lost
        upstream, too long, or too far back is left out)."""
        source = self._source
        seq, timestamp = packet.sequence_number, packet.timestamp
        redundancy = []
        for back in range(self.red_distance, 0, -1):
            earlier_seq = (seq - back) & 0xFFFF
            if (earlier_seq - self._start_seq) & 0xFFFF >= 0x8000:
                continue  # before this run: he never had it
            earlier = source.cached(earlier_seq) if source is not None else None
            if earlier is None or earlier.payload_type != packet.payload_type:
                continue
            offset = (timestamp - earlier.timestamp) & 0xFFFFFFFF
            if 0 < offset <= MAX_OFFSET and len(earlier.payload) <= MAX_LENGTH:
                redundancy.append((offset, earlier.payload))
        return red_payload(packet.payload, payload_type, redundancy)

    def downlink_lost(self, highest: int, lost: int) -> int:
        """``lost`` (a receiver report's cumulative packets lost about this subscription, up to its
        extended ``highest`` sequence number) less the sequence numbers up to ``highest`` that we
        skipped (:attr:`seqs_skipped`): what his own link lost, for his estimate. (Reports count
        from his first packet, ours from our first: a constant apart, and only differences are read.)"""
        # His highest, a few reports behind ours at most (its cycle count is his own).
        last = self._sent_through - ((self._next_seq - 1 - highest) & 0xFFFF)
        return lost - self.seqs_skipped + sum(1 for hole in self._holes if hole > last)

    def _skip(self, count: int) -> None:
        """Our next ``count`` sequence numbers go unsent (lost upstream, or dropped here) for now."""
        self.seqs_skipped += count
        holes = self._holes
        first = self._sent_through + 1
        if len(holes) > 2 * _CACHE:  # what is older than _LATEST is never written any more
            self._holes = holes = {hole for hole in holes if hole >= first - _CACHE}
        if count == 1:
            holes.add(first)  # the usual gap: one packet lost upstream
        else:
            holes.update(range(max(first, first + count - _CACHE), first + count))

    def _fill(self, out_seq: int) -> None:
        """A packet late by ``out_seq`` (a retransmission from the publisher) fills its hole."""
        hole = self._sent_through - ((self._next_seq - 1 - out_seq) & 0xFFFF)
        if hole in self._holes:
            self._holes.discard(hole)
            self.seqs_skipped -= 1

    def on_nack(self, sequence_number: int) -> None:
        """The subscriber reports our packet ``sequence_number`` lost: resend it if we may."""
        writer, source, offset = self._writer, self._source, self._seq_offset
        if writer is None or source is None or offset is None:
            return
        if (self._next_seq - 1 - sequence_number) & 0xFFFF >= _CACHE:
            self.nacks_refused += 1
            return  # not sent yet, or too old to matter
        published = (sequence_number - offset) & 0xFFFF
        if (published - self._start_seq) & 0xFFFF >= 0x8000:
            self.nacks_refused += 1
            return  # before this run: another source's, or another layer's
        packet = source.cached(published, self._layer) if self._layer else source.cached(published)
        if packet is None:
            self.nacks_refused += 1
            # Never had it: lost upstream, and its retransmission is forwarded when it comes
            # (a local track's receiver NACKs its publisher; a piped one asks its worker).
            source.on_missing(published, self._layer)
            return
        now = self._clock()
        slot = sequence_number % _CACHE
        interval = max(min(writer.rtt() or 0.05, 0.5), 0.02)
        if self._resent_seq[slot] == sequence_number and now - self._resent_at[slot] < interval:
            self.nacks_refused += 1
            return  # resent less than a round trip ago: that copy may still be on its way
        if now - self._resend_window >= 1.0:
            self._resend_window, self._resends_in_window = now, 0
        if self._resends_in_window >= self._max_resends or writer.backlog() > self._max_backlog:
            self.nacks_refused += 1
            return
        timestamp = (packet.timestamp + (self._ts_offset or 0)) & 0xFFFFFFFF
        payload = vp8_rewrite(packet.payload, self._picture_offset, self._tl0_offset) if self._rewrite_vp8 else packet.payload
        if writer.resend(payload, sequence_number, timestamp, bool(packet.marker)):
            self._resent_seq[slot], self._resent_at[slot] = sequence_number, now
            self._resends_in_window += 1
            self.retransmissions += 1
            self.resent_bits += (len(payload) + 2) * 8 + WIRE_OVERHEAD_BITS  # the RTX header's 2 bytes

    def _layer_ts_offset(self, layer: int, timestamp: int) -> int:
        """The timestamp offset of a run starting with ``timestamp`` of ``layer``.

        Across a layer switch of one source, both layers' sender reports (when
        there are) map the new layer's clock onto the old one's, so the output
        timeline goes on as the publisher captured it; otherwise, or if that
        would not move forward, one frame after the last timestamp sent.
        """
        source, old_offset, last = self._source, self._ts_offset, self._last_ts
        if source is not None and old_offset is not None and last is not None and layer != self._ts_layer:
            old = source.layer_sender_report(self._ts_layer)
            new = source.layer_sender_report(layer)
            if old is not None and new is not None:
                ntp_delta = (new[0] - old[0]) & 0xFFFFFFFFFFFFFFFF
                if ntp_delta >= 1 << 63:
                    ntp_delta -= 1 << 64
                old_at_new = old[1] + ntp_delta * source.clock_rate // _NTP_ONE_SECOND
                offset = (old_offset + old_at_new - new[1]) & 0xFFFFFFFF
                ahead = (timestamp + offset - last) & 0xFFFFFFFF
                if 0 < ahead < source.clock_rate:
                    return offset
        return self._new_ts_offset(timestamp)

    def _start_vp8_run(self, payload: bytes) -> None:
        picture_id, tl0 = vp8_picture_ids(payload)
        last_picture, last_tl0 = self._last_picture_id, self._last_tl0
        self._picture_offset = (last_picture + 1 - picture_id) & 0x7FFF if picture_id is not None and last_picture is not None else 0
        self._tl0_offset = (last_tl0 + 1 - tl0) & 0xFF if tl0 is not None and last_tl0 is not None else 0

    def _vp8_payload(self, payload: bytes) -> bytes:
        payload = vp8_rewrite(payload, self._picture_offset, self._tl0_offset)
        picture_id, tl0 = vp8_picture_ids(payload)
        if picture_id is not None:
            last = self._last_picture_id
            if last is None or 0 < (picture_id - last) & 0x7FFF < 0x4000:
                self._last_picture_id = picture_id
        if tl0 is not None:
            last_tl0 = self._last_tl0
            if last_tl0 is None or 0 < (tl0 - last_tl0) & 0xFF < 0x80:
                self._last_tl0 = tl0
        return payload

    def _new_ts_offset(self, timestamp: int) -> int:
        if self._last_ts is None:
            return random.randint(0, 0xFFFFFFFF)
        wanted = self._last_ts + _FRAME_TICKS[self._media_kind]
        return (wanted - timestamp) & 0xFFFFFFFF

    async def recv(self) -> RtpPacket:  # type: ignore[override]
        """Never yields anything (packets are written, not read): raises once the track ends."""
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track for good: the sender forwarding it stops."""
        self.attach(None)
        self._writer = None
        super().stop()
        self._stopped.set()
