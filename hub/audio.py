"""Validate an uploaded voice message by decoding it, and rewrite its container.

Guarantees of `voice_validate`:

- the container is recognised by its first bytes (WebM/Matroska, Ogg or MP4), never by the
  file name or the client's content type, and only that one demuxer is opened: no playlist
  or concatenation demuxer ever reads another file or a URL;
- exactly the first audio stream is kept, and only Opus (what Chrome, Firefox and Android
  record) or AAC (what Safari records, in MP4) is accepted;
- every packet is decoded: a file that does not decode to the end is refused, and the
  duration is counted from the decoded samples, never read from the container (WebM from
  `MediaRecorder` declares none); decoding stops as soon as the cap is passed;
- the stored file is a fresh container holding the same compressed packets (Opus in WebM,
  AAC in MP4), with the uploaded metadata and other streams left out,
  and it declares its duration, so players show it before playing;
- a waveform of `WAVEFORM_BARS` bars (0–31, the loudest bar is 31) comes with it.

Every refusal is a `HirfaError`: `invalid` for what is not a supported voice recording,
`too_long` for too many bytes or seconds.
"""

from __future__ import annotations

import io
from array import array
from dataclasses import dataclass

import av
import av.error
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, read_bounded

WAVEFORM_BARS = 48
WAVEFORM_TOP = 31
# The waveform is measured on 8 kHz mono, in 20 ms windows.
_RATE = 8000
_WINDOW = _RATE // 50
# A recording stopped by hand runs a little past the cap the recorder enforces.
_SLACK_SECONDS = 1.5
_MIN_MILLISECONDS = 300

# First bytes -> PyAV demuxer.
_MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
_OGG_MAGIC = b"OggS"
# Codec -> (muxer, content type, file extension) of the stored file.
_OUTPUT = {
    "opus": ("webm", "audio/webm", "webm"),
    "aac": ("mp4", "audio/mp4", "m4a"),
}


@dataclass(frozen=True)
class ProcessedVoice:
    """A validated voice recording in a container of ours."""

    data: bytes
    content_type: str
    extension: str
    codec: str
    duration_ms: int
    waveform: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.data)


def _not_a_voice() -> HirfaError:
    return HirfaError(
        ErrorCode.INVALID,
        _("This file is not a supported voice recording (Opus in WebM or Ogg, or AAC in MP4)."),
    )


def _too_many_bytes(max_bytes: int) -> HirfaError:
    return HirfaError(
        ErrorCode.TOO_LONG,
        _("The voice message is too large: at most %(mb).1f MB.") % {"mb": max_bytes / 1_000_000},
        max_bytes=max_bytes,
    )


def _too_many_seconds(max_seconds: int) -> HirfaError:
    return HirfaError(
        ErrorCode.TOO_LONG,
        _("The voice message is too long: at most %(seconds)d seconds.") % {"seconds": max_seconds},
        max_seconds=max_seconds,
    )


def _demuxer_of(data: bytes) -> str | None:
    if data.startswith(_MATROSKA_MAGIC):
        return "matroska"
    if data.startswith(_OGG_MAGIC):
        return "ogg"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


def _waveform(peaks: list[int]) -> tuple[int, ...]:
    """`WAVEFORM_BARS` bars from per-window peaks, scaled so that the loudest is the top."""
    if not peaks:
        return (0,) * WAVEFORM_BARS
    bars = []
    for i in range(WAVEFORM_BARS):
        start = i * len(peaks) // WAVEFORM_BARS
        end = max(start + 1, (i + 1) * len(peaks) // WAVEFORM_BARS)
        bars.append(max(peaks[start:end]))
    loudest = max(bars) or 1
    return tuple(round(bar * WAVEFORM_TOP / loudest) for bar in bars)


def voice_validate(upload: Upload, *, max_bytes: int, max_seconds: int) -> ProcessedVoice:
    """Check that `upload` is a voice recording of at most `max_seconds`, and rewrite it.

    Raises `HirfaError` (`invalid` or `too_long`) with a message for people; never lets
    a PyAV error out.
    """
    data = read_bounded(upload, max_bytes, too_large=_too_many_bytes)
    demuxer = _demuxer_of(data)
    if demuxer is None:
        raise _not_a_voice()
    max_samples = int((max_seconds + _SLACK_SECONDS) * _RATE)
    try:
        source = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise _not_a_voice() from exc
    with source:
        audio = next(iter(source.streams.audio), None)
        codec = audio.codec_context.name if audio is not None else ""
        if audio is None or codec not in _OUTPUT:
            raise _not_a_voice()
        muxer, content_type, extension = _OUTPUT[codec]
        out = io.BytesIO()
        resampler = av.AudioResampler(format="s16", layout="mono", rate=_RATE)
        samples = array("h")
        peaks: list[int] = []
        total = 0
        try:
            with av.open(out, mode="w", format=muxer) as target:
                stream = target.add_stream_from_template(audio)
                stream.metadata.clear()
                for packet in source.demux(audio):
                    frames = packet.decode()
                    if packet.dts is not None:
                        packet.stream = stream
                        target.mux(packet)
                    for frame in frames:
                        for mono in resampler.resample(frame):
                            samples.frombytes(bytes(mono.planes[0])[: mono.samples * 2])
                            total += mono.samples
                    if total > max_samples:
                        raise _too_many_seconds(max_seconds)
                    whole = len(samples) - len(samples) % _WINDOW
                    for start in range(0, whole, _WINDOW):
                        window = samples[start : start + _WINDOW]
                        peaks.append(max(max(window), -min(window)))
                    del samples[:whole]
        except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
            raise _not_a_voice() from exc
    duration_ms = total * 1000 // _RATE
    if duration_ms < _MIN_MILLISECONDS:
        raise HirfaError(ErrorCode.INVALID, _("The voice message is empty."))
    return ProcessedVoice(
        data=out.getvalue(),
        content_type=content_type,
        extension=extension,
        codec=codec,
        duration_ms=duration_ms,
        waveform=_waveform(peaks),
    )
