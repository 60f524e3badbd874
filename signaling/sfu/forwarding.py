"""Fan-out of encoded frames: one :class:`TrackForwarder` per published track,
one :class:`ForwardTrack` per subscription.

Guarantees:

* a subscriber's video starts at a keyframe, and after any gap (lost packets
  at the publisher, a full queue, a moderator unmute, a new source) it resumes
  only at a keyframe; while it waits, the publisher is asked for one;
* keyframe requests to a publisher are sent at most once per
  ``keyframe_interval`` per track, whoever asks;
* frames are forwarded as the publisher packetized them (its RTP payloads),
  written to each subscriber as soon as they are complete, with no queue of
  their own; a subscriber whose socket backlog exceeds ``max_backlog`` bytes
  loses frames (video then waits for the next keyframe), so memory stays
  bounded;
* a track muted by a moderator forwards nothing, whatever its client sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .aiortc_hooks import AssembledFrame, FrameAssembler, send_pli
from .types import MediaKind, TrackSource, VideoCodec

logger = logging.getLogger(__name__)

# RTP clock ticks between two frames, used to keep timestamps moving forward
# when a subscription switches to another source.
_FRAME_TICKS = {MediaKind.AUDIO: 960, MediaKind.VIDEO: 3000}


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


class TrackForwarder:
    """One published track: receives encoded frames and fans them out.

    Holds the set of :class:`ForwardTrack` it feeds and can ask its publisher
    for a keyframe (RTCP PLI), rate-limited to one per ``keyframe_interval``.
    """

    def __init__(
        self,
        *,
        participant_id: str,
        source: TrackSource,
        codec: VideoCodec | None,
        receiver: RTCRtpReceiver,
        keyframe_interval: float,
        on_audio_level: Callable[[str, int | None, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = source.kind
        self.codec = codec if self.kind is MediaKind.VIDEO else None
        self._receiver = receiver
        self._keyframe_interval = keyframe_interval
        self._on_audio_level = on_audio_level
        self._clock = clock
        self._last_keyframe_request: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribers: set[ForwardTrack] = set()
        self._muted = False
        self._closed = False
        self.assembler: FrameAssembler | None = None
        self.frames_received = 0
        self.keyframes_received = 0
        self.keyframe_requests_sent = 0

    def __repr__(self) -> str:
        return f"TrackForwarder({self.participant_id!r}, {self.source.value})"

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def subscribers(self) -> frozenset[ForwardTrack]:
        return frozenset(self._subscribers)

    def set_muted(self, muted: bool) -> None:
        """Stop (or resume) forwarding; resuming video waits for a keyframe."""
        if muted == self._muted:
            return
        self._muted = muted
        if not muted:
            for track in self._subscribers:
                track.resync()
            if self.kind is MediaKind.VIDEO and self._subscribers:
                self.request_keyframe()

    def on_frame(self, frame: AssembledFrame) -> None:
        """Sink for the receiver's :class:`FrameAssembler`."""
        if self._closed:
            return
        self.frames_received += 1
        if self._muted:
            return
        keyframe = is_keyframe(self.codec, frame.data)
        if keyframe and self.codec is not None:
            self.keyframes_received += 1
        if self._on_audio_level is not None and self.kind is MediaKind.AUDIO:
            self._on_audio_level(self.participant_id, frame.audio_level, len(frame.data))
        for track in tuple(self._subscribers):
            track.push(frame, keyframe=keyframe)

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe unless one was asked for recently.

        Answers whether a PLI was sent. Audio tracks never send one.
        """
        if self.kind is not MediaKind.VIDEO or self._closed:
            return False
        now = self._clock()
        if (
            self._last_keyframe_request is not None
            and now - self._last_keyframe_request < self._keyframe_interval
        ):
            return False
        ssrc = self.assembler.media_ssrc if self.assembler is not None else None
        if ssrc is None:
            return False  # no media yet: the first frames will ask again
        self._last_keyframe_request = now
        self.keyframe_requests_sent += 1
        task = asyncio.ensure_future(send_pli(self._receiver, ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _attach(self, track: ForwardTrack) -> None:
        self._subscribers.add(track)

    def _detach(self, track: ForwardTrack) -> None:
        self._subscribers.discard(track)

    async def close(self) -> None:
        """Detach every subscription (they go idle) and stop pending requests."""
        self._closed = True
        for track in tuple(self._subscribers):
            track.attach(None)
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class FrameWriter(Protocol):
    """Where a subscription's frames go (an :class:`~.aiortc_hooks.RtpWriter` in production)."""

    def write(self, payloads: Sequence[bytes], timestamp: int, audio_level: int | None = None) -> bool: ...

    def backlog(self) -> int: ...


class ForwardTrack(MediaStreamTrack):
    """The track of one subscription: the frames of one source, forwarded as packets.

    Frames are written to the subscriber synchronously, as soon as the
    publisher's last packet of a frame arrives (no queue, no task per frame):
    the only backlog is the subscriber socket's, and when it holds more than
    ``max_backlog`` bytes (the subscriber does not keep up) frames are dropped,
    video until the next keyframe. The track survives its source:
    :meth:`attach` points it at another forwarder (or at nothing, when it
    idles), so an m-line can be reused when participants come and go. RTP
    timestamps are rebased so they keep increasing across such switches.
    Nothing is written before the sender started (:meth:`start_sending`).
    """

    def __init__(self, kind: MediaKind, *, max_backlog: int) -> None:
        super().__init__()
        self.kind = kind.value
        self._media_kind = kind
        self._max_backlog = max_backlog
        self._stopped = asyncio.Event()
        self._source: TrackForwarder | None = None
        self._writer: FrameWriter | None = None
        self._waiting_keyframe = kind is MediaKind.VIDEO
        self._offset: int | None = None
        self._last_timestamp: int | None = None
        self.frames_forwarded = 0
        self.frames_dropped = 0
        self.keyframe_requests_received = 0

    def __repr__(self) -> str:
        return f"ForwardTrack({self.kind}, source={self._source!r})"

    @property
    def source(self) -> TrackForwarder | None:
        return self._source

    @property
    def sending(self) -> bool:
        return self._writer is not None

    def attach(self, source: TrackForwarder | None) -> None:
        """Forward ``source`` from now on (``None``: idle), starting at its next keyframe."""
        if self._source is source:
            return
        if self._source is not None:
            self._source._detach(self)
        self._source = source
        self._offset = None
        self.resync()
        if source is not None:
            source._attach(self)
            if self._writer is not None:
                source.request_keyframe()

    def resync(self) -> None:
        """Forward nothing more until the next keyframe."""
        if self._media_kind is MediaKind.VIDEO:
            self._waiting_keyframe = True

    def start_sending(self, writer: FrameWriter) -> None:
        """The subscriber's sender started: write to ``writer`` from the next keyframe on."""
        self._writer = writer
        self.resync()
        if self._source is not None:
            self._source.request_keyframe()

    def stop_sending(self) -> None:
        self._writer = None

    def on_remote_keyframe_request(self) -> None:
        """The subscriber sent PLI or FIR: pass it on to the publisher."""
        self.keyframe_requests_received += 1
        if self._source is not None:
            self._source.request_keyframe()

    def push(self, frame: AssembledFrame, *, keyframe: bool) -> None:
        """Write one frame to the subscriber, keeping the guarantees above."""
        writer = self._writer
        if writer is None:
            return  # the sender has not started: stale frames would only add delay
        video = self._media_kind is MediaKind.VIDEO
        if video:
            if frame.after_loss:
                self._waiting_keyframe = True
            if self._waiting_keyframe and not keyframe:
                self._drop()
                return
        if writer.backlog() > self._max_backlog:
            self.resync()
            self._drop()
            return
        if writer.write(frame.payloads, self._rebase(frame.timestamp), frame.audio_level):
            self.frames_forwarded += 1
            if video:
                self._waiting_keyframe = False
        else:
            self.frames_dropped += 1

    def _drop(self) -> None:
        self.frames_dropped += 1
        if self._source is not None and self._media_kind is MediaKind.VIDEO:
            self._source.request_keyframe()

    def _rebase(self, timestamp: int) -> int:
        if self._offset is None:
            if self._last_timestamp is None:
                self._offset = 0
            else:
                wanted = self._last_timestamp + _FRAME_TICKS[self._media_kind]
                self._offset = (wanted - timestamp) & 0xFFFFFFFF
        self._last_timestamp = (timestamp + self._offset) & 0xFFFFFFFF
        return self._last_timestamp

    async def recv(self) -> AssembledFrame:  # type: ignore[override]
        """Never yields a frame (they are written, not read): raises once the track ends."""
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track for good: the sender forwarding it stops."""
        self.attach(None)
        self._writer = None
        super().stop()
        self._stopped.set()
