"""Light recording: the packets a meeting already forwards, written to files as they are.

A :class:`MeetingRecorder` taps every published track of a meeting (the
:attr:`TrackForwarder.taps <signaling.sfu.forwarding.TrackForwarder.taps>` hook)
and writes each into a file of its own with PyAV's muxer: Opus into WebM, VP8
into WebM, H.264 into Matroska. Nothing is decoded or encoded: RTP payloads are
reordered, depacketized into frames and muxed with their RTP timestamps.

Guarantees:

* each published track gives one file per *segment* (from its first frame until it
  is unpublished, replaced by a new peer, or its participant opts out, or the
  recording stops); a video segment starts at a keyframe, and a keyframe is asked
  for when a video track starts being recorded;
* packets are written in sequence order: a late packet (a retransmission) fills its
  hole if it comes within ``hold`` seconds; after that the hole is given up, video
  skips to the next keyframe (one is asked for) and audio goes on;
* a participant in ``excluded`` is not written at all: none of his packets reach a file;
* a track a moderator muted is not written (the forwarder taps only what it forwards);
* of a simulcast track, one layer is written: the highest the publisher is sending.
  A recording has no downlink to fit and is watched later, so it takes the best
  picture the SFU receives anyway (no subscriber's allocation, which follows that
  subscriber's link, decides it). When that layer stops (the publisher's uplink
  dropped it) the next lower one is taken; a higher one that comes back is taken
  once the current segment is ``_UP_AFTER`` seconds old, so a flapping layer does
  not cut the recording into slivers. A switch happens at the new layer's keyframe
  (one is asked for) and starts a new segment, so every file keeps one resolution;
* :meth:`MeetingRecorder.stop` closes every file and writes ``session-<start>.json``:
  the segments (file, participant, source, codec, start and end in seconds from the
  recording's start) and the speaker timeline; the same manifest is written (without
  ``complete``) whenever a segment opens or closes, so a crash leaves what was written
  described.

Writing is synchronous in the packet path (a buffered file write per frame);
closing a segment's file (its index written) runs in a thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtp import RtpPacket

from .forwarding import TrackForwarder, is_keyframe
from .red import red_primary
from .types import MediaKind, TrackSource, VideoCodec

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
# Seconds a hole in the sequence numbers is waited for (the forwarder NACKs for 1.5 s).
_HOLD = {MediaKind.AUDIO: 0.2, MediaKind.VIDEO: 1.6}
# Packets buffered at most while waiting for a hole (about 2 s of 1 Mbps video).
_MAX_BUFFERED = 2048
# Seconds a segment runs before a simulcast layer above it is taken instead.
_UP_AFTER = 5.0


def _extend(value: int, last: int | None, bits: int) -> int:
    """``value`` (``bits`` wide, wrapping) as an unbounded counter near ``last``."""
    if last is None:
        return value
    span = 1 << bits
    candidate = (last & ~(span - 1)) | value
    if candidate < last - span // 2:
        candidate += span
    elif candidate > last + span // 2:
        candidate -= span
    return candidate


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe (RFC 6386 section 9.1), else ``None``."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


@dataclass(frozen=True, slots=True)
class Segment:
    """One file of a recording: one published track for a stretch of time."""

    file: str
    participant_id: str
    source: TrackSource
    kind: MediaKind
    codec: str
    #: Seconds from the recording's start to the segment's first frame (None: no frame yet).
    start: float | None
    end: float | None
    frames: int
    bytes: int


class TrackRecording:
    """Writes one published track into one file, from its packets."""

    def __init__(
        self,
        *,
        path: Path,
        forwarder: TrackForwarder,
        clock: Callable[[], float],
        origin: float,
        on_changed: Callable[[], None],
        layer: int = 0,
    ) -> None:
        self.path = path
        self.forwarder = forwarder
        #: The simulcast layer written (0 for a track with one stream).
        self.layer = layer
        self.opened_at = clock()
        self.kind = forwarder.kind
        self.codec = forwarder.codec
        self._clock = clock
        self._origin = origin
        self._on_changed = on_changed
        self._hold = _HOLD[self.kind]
        self._buffer: dict[int, tuple[RtpPacket, float]] = {}
        self._next_seq: int | None = None
        self._last_seq: int | None = None
        self._last_ts: int | None = None
        self._first_ts: int | None = None
        self._last_pts = -1
        # Video: the frame being assembled (payloads of one timestamp) and whether it is whole.
        self._frame: list[bytes] = []
        self._frame_ts: int | None = None
        self._frame_whole = True
        self._need_keyframe = self.kind is MediaKind.VIDEO
        self._container: Any = None
        self._stream: Any = None
        self._time_base = Fraction(1, forwarder.clock_rate)
        self.start: float | None = None
        self.end: float | None = None
        self.frames = 0
        self.bytes = 0
        self.holes = 0
        self.closed = False

    # ------------------------------------------------------------ packets

    def on_packet(self, packet: RtpPacket, keyframe: bool) -> None:
        """The forwarder's tap: one packet of the track, as forwarded."""
        if self.closed:
            return
        seq = _extend(packet.sequence_number, self._last_seq, 16)
        now = self._clock()
        if self._next_seq is None:
            self._next_seq = seq
        if seq < self._next_seq or seq in self._buffer:
            return  # a duplicate, or a retransmission of a hole already given up
        self._last_seq = max(seq, self._last_seq if self._last_seq is not None else seq)
        self._buffer[seq] = (packet, now)
        self._drain(now)

    def _drain(self, now: float) -> None:
        buffer = self._buffer
        while buffer:
            assert self._next_seq is not None
            entry = buffer.pop(self._next_seq, None)
            if entry is not None:
                self._next_seq += 1
                self._take(entry[0])
                continue
            oldest = min(buffer)
            if now - buffer[oldest][1] < self._hold and len(buffer) < _MAX_BUFFERED:
                return  # wait for the hole to be filled by a retransmission
            self.holes += 1
            self._next_seq = oldest
            self._lost()

    def flush(self) -> None:
        """Write what is buffered, giving up every hole (the recording stops)."""
        self._drain(float("inf"))  # a video frame still without its marker packet is not written

    def _lost(self) -> None:
        if self.kind is MediaKind.VIDEO:
            self._frame_whole = False
            if not self._need_keyframe:
                self._need_keyframe = True
                self.forwarder.request_keyframe(self.layer)

    def _take(self, packet: RtpPacket) -> None:
        if self.kind is MediaKind.AUDIO:
            payload: bytes | None = packet.payload
            if packet.payload_type == self.forwarder.red_payload_type:
                payload = red_primary(packet.payload)
            if payload:
                self._write(payload, packet.timestamp, keyframe=True)
            return
        if self._frame_ts is not None and packet.timestamp != self._frame_ts:
            # A new frame began before the last one's marker: that one is incomplete.
            self._frame, self._frame_whole = [], True
            self._lost()
        if not self._frame:
            self._frame_ts = packet.timestamp
        self._frame.append(packet.payload)
        if packet.marker:
            payloads, whole = self._frame, self._frame_whole
            self._frame, self._frame_ts, self._frame_whole = [], None, True
            if whole:
                self._write_video(payloads, packet.timestamp)

    def _write_video(self, payloads: list[bytes], timestamp: int) -> None:
        try:
            if self.codec is VideoCodec.H264:
                data = b"".join(h264_depayload(p) for p in payloads)
            else:
                data = b"".join(vp8_depayload(p) for p in payloads)
        except Exception:  # a malformed payload from the publisher: the frame is lost
            self._lost()
            return
        if not data:
            return
        keyframe = is_keyframe(self.codec, data)
        if self._need_keyframe:
            if not keyframe:
                return
            self._need_keyframe = False
        self._write(data, timestamp, keyframe=keyframe)

    # ------------------------------------------------------------ file

    def _open(self, first: bytes) -> bool:
        try:
            if self.kind is MediaKind.AUDIO:
                container = av.open(str(self.path), "w", format="webm")
                stream = container.add_mux_stream("opus", rate=48000)
            elif self.codec is VideoCodec.H264:
                container = av.open(str(self.path), "w", format="matroska")
                stream = container.add_mux_stream("h264")
            else:
                width, height = vp8_dimensions(first) or (640, 480)
                container = av.open(str(self.path), "w", format="webm")
                stream = container.add_mux_stream("vp8", width=width, height=height)
            stream.time_base = self._time_base
        except Exception:
            logger.exception("cannot open recording file %s", self.path)
            self.closed = True
            return False
        self._container, self._stream = container, stream
        return True

    def _write(self, data: bytes, timestamp: int, *, keyframe: bool) -> None:
        ts = _extend(timestamp, self._last_ts, 32)
        self._last_ts = ts
        if self._container is None:
            if not self._open(data):
                return
            self._first_ts = ts
            self.start = self._clock() - self._origin
            self._on_changed()
        assert self._first_ts is not None
        pts = ts - self._first_ts
        if pts <= self._last_pts:
            pts = self._last_pts + 1  # the publisher's clock went back: keep the file ordered
        self._last_pts = pts
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._time_base
        packet.stream = self._stream
        packet.is_keyframe = keyframe
        try:
            self._container.mux_one(packet)
        except Exception:
            logger.exception("writing %s failed; the segment ends", self.path)
            self.close()
            return
        self.frames += 1
        self.bytes += len(data)
        if self.start is not None:
            # Never past now: a segment whose first frame was read late (a busy loop) while the
            # media after it came on time (stale media dropped at the socket) would otherwise
            # end after the next segment of the same track starts.
            self.end = min(self.start + pts / self.forwarder.clock_rate, self._clock() - self._origin)

    def close(self) -> Any:
        """Stop taking packets; answers the container to close (None if nothing was written)."""
        self.closed = True
        container, self._container = self._container, None
        self._buffer.clear()
        return container

    def segment(self) -> Segment:
        return Segment(
            file=self.path.name,
            participant_id=self.forwarder.participant_id,
            source=self.forwarder.source,
            kind=self.kind,
            codec="opus" if self.kind is MediaKind.AUDIO else (self.codec or VideoCodec.VP8).value,
            start=self.start,
            end=self.end,
            frames=self.frames,
            bytes=self.bytes,
        )


def _layer_to_record(forwarder: TrackForwarder) -> int | None:
    """The highest layer the publisher is sending now (``None``: none sent lately)."""
    live = [i for i, rate in enumerate(forwarder.layer_bitrates()) if rate is not None]
    return live[-1] if live else None


@dataclass
class _Tapped:
    """One published track under recording: its open segment and the layer it may switch to."""

    forwarder: TrackForwarder
    recording: TrackRecording
    switch: Callable[[int], None] = field(repr=False)
    #: A layer to switch to at its next keyframe (simulcast), if any.
    pending: int | None = None

    def tap(self, packet: RtpPacket, keyframe: bool, layer: int) -> None:
        if layer == self.recording.layer:
            self.recording.on_packet(packet, keyframe)
        elif layer == self.pending and keyframe:
            self.switch(layer)
            self.recording.on_packet(packet, keyframe)


class MeetingRecorder:
    """Records the tracks of one meeting into ``directory`` until :meth:`stop`.

    Created by :meth:`signaling.sfu.Meeting.start_recording`; the meeting calls
    :meth:`track_published`, :meth:`track_unpublished` and :meth:`speaker_changed`.
    """

    def __init__(
        self,
        *,
        directory: Path,
        excluded: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._origin = clock()
        self.started_at = wall_clock()
        self._wall_clock = wall_clock
        self._name = f"session-{int(self.started_at * 1000)}"
        self._excluded = set(excluded)
        self._tapped: dict[tuple[str, TrackSource], _Tapped] = {}
        self._done: list[TrackRecording] = []
        self._closing: set[asyncio.Future[None]] = set()
        self._speakers: list[tuple[float, str | None]] = []
        self._counter = 0
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def excluded(self) -> frozenset[str]:
        return frozenset(self._excluded)

    def recordings(self) -> tuple[TrackRecording, ...]:
        """Every segment of this recording so far (open and closed)."""
        return (*self._done, *(t.recording for t in self._tapped.values()))

    # ------------------------------------------------------------ meeting hooks

    def track_published(self, forwarder: TrackForwarder) -> None:
        """A track to record from now on (a new peer's track replaces the old one's segment)."""
        if self._stopped or forwarder.participant_id in self._excluded:
            return
        key = (forwarder.participant_id, forwarder.source)
        if key in self._tapped:
            if self._tapped[key].forwarder is forwarder:
                return
            self._end(key)
        layer = _layer_to_record(forwarder)
        if layer is None:
            layer = len(forwarder.rids) - 1 if forwarder.layered else 0
        tapped = _Tapped(forwarder, self._segment(forwarder, layer), functools.partial(self._switch, key))
        forwarder.taps = (*forwarder.taps, tapped.tap)
        self._tapped[key] = tapped
        if forwarder.kind is MediaKind.VIDEO:
            forwarder.request_keyframe(layer)

    def _segment(self, forwarder: TrackForwarder, layer: int) -> TrackRecording:
        self._counter += 1
        safe = "".join(c if c.isalnum() else "_" for c in forwarder.participant_id)[:32]
        extension = "mkv" if forwarder.codec is VideoCodec.H264 else "webm"
        path = self.directory / f"{self._name}-{self._counter:03d}-{safe}-{forwarder.source.value}.{extension}"
        return TrackRecording(
            path=path,
            forwarder=forwarder,
            clock=self._clock,
            origin=self._origin,
            on_changed=self._write_manifest,
            layer=layer,
        )

    def _switch(self, key: tuple[str, TrackSource], layer: int) -> None:
        """At ``layer``'s keyframe: the open segment ends and one of ``layer`` begins."""
        tapped = self._tapped[key]
        self._finish(tapped.recording)
        tapped.recording = self._segment(tapped.forwarder, layer)
        tapped.pending = None
        self._write_manifest()

    def tick(self) -> None:
        """Follow each simulcast track's layers (called by the meeting's allocation rounds)."""
        if self._stopped:
            return
        for tapped in self._tapped.values():
            forwarder = tapped.forwarder
            if not forwarder.layered:
                continue
            wanted = _layer_to_record(forwarder)
            current = tapped.recording.layer
            if wanted is None or wanted == current:
                tapped.pending = None
                continue
            if wanted > current and self._clock() - tapped.recording.opened_at < _UP_AFTER:
                continue
            tapped.pending = wanted
            forwarder.request_keyframe(wanted)

    def track_unpublished(self, forwarder: TrackForwarder) -> None:
        key = (forwarder.participant_id, forwarder.source)
        tapped = self._tapped.get(key)
        if tapped is not None and tapped.forwarder is forwarder:
            self._end(key)

    def speaker_changed(self, participant_id: str | None) -> None:
        if not self._stopped:
            shown = participant_id if participant_id not in self._excluded else None
            self._speakers.append((round(self._clock() - self._origin, 3), shown))

    def exclude(self, participant_id: str, excluded: bool, forwarders: tuple[TrackForwarder, ...]) -> None:
        """Stop (or start again) writing ``participant_id``'s tracks; ``forwarders`` are his."""
        if excluded:
            self._excluded.add(participant_id)
            for key in [k for k in self._tapped if k[0] == participant_id]:
                self._end(key)
        else:
            self._excluded.discard(participant_id)
            for forwarder in forwarders:
                self.track_published(forwarder)

    # ------------------------------------------------------------ ending

    def _end(self, key: tuple[str, TrackSource]) -> None:
        tapped = self._tapped.pop(key)
        tapped.forwarder.taps = tuple(t for t in tapped.forwarder.taps if t != tapped.tap)
        self._finish(tapped.recording)
        self._write_manifest()

    def _finish(self, recording: TrackRecording) -> None:
        recording.flush()
        container = recording.close()
        if container is not None:
            # Closing writes the file's index (a seek and a write): off the packet path.
            future = asyncio.get_running_loop().run_in_executor(None, _close, container)
            self._closing.add(future)
            future.add_done_callback(self._closing.discard)
        self._done.append(recording)

    async def stop(self) -> dict[str, Any]:
        """End every segment, close the files (in a thread) and write the final manifest.

        Answers the manifest. Idempotent.
        """
        if self._stopped:
            return self.manifest(complete=True)
        self._stopped = True
        self._speakers.append((round(self._clock() - self._origin, 3), None))
        for key in list(self._tapped):
            self._end(key)
        if self._closing:
            await asyncio.gather(*self._closing)
        self._write_manifest(complete=True)
        return self.manifest(complete=True)

    def manifest(self, *, complete: bool = False) -> dict[str, Any]:
        duration = round(self._clock() - self._origin, 3) if not self._stopped else (
            self._speakers[-1][0] if self._speakers else 0.0
        )
        data: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "started_at": self.started_at,
            "duration": duration,
            "segments": [
                {
                    "file": s.file,
                    "participant": s.participant_id,
                    "source": s.source.value,
                    "kind": s.kind.value,
                    "codec": s.codec,
                    "start": None if s.start is None else round(s.start, 3),
                    "end": None if s.end is None else round(s.end, 3),
                    "frames": s.frames,
                    "bytes": s.bytes,
                }
                for s in (r.segment() for r in self.recordings())
                if s.frames
            ],
            "speakers": [[at, who] for at, who in self._speakers],
        }
        if complete:
            data["complete"] = True
        return data

    def _write_manifest(self, *, complete: bool = False) -> None:
        path = self.directory / f"{self._name}.json"
        try:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.manifest(complete=complete)))
            os.replace(temporary, path)
        except OSError:
            logger.exception("cannot write the manifest of %s", self.directory)


def _close(container: Any) -> None:
    try:
        container.close()
    except Exception:
        logger.exception("closing a recording file failed")
