"""hub.audio: voice recordings are recognised by decoding them, whatever they claim to be."""

from __future__ import annotations

import io

import av
import pytest

from hub.audio import WAVEFORM_BARS, WAVEFORM_TOP, voice_validate
from hub.errors import ErrorCode, HirfaError
from tests.audio_samples import voice_bytes

LIMITS = {"max_bytes": 2_000_000, "max_seconds": 10}


@pytest.mark.parametrize(
    ("container", "content_type", "codec"),
    [("webm", "audio/webm", "opus"), ("ogg", "audio/webm", "opus"), ("mp4", "audio/mp4", "aac")],
)
def test_chrome_firefox_and_safari_recordings_are_kept_in_a_container_of_ours(container, content_type, codec):
    voice = voice_validate(voice_bytes(3.0, container=container), **LIMITS)
    assert (voice.content_type, voice.codec) == (content_type, codec)
    assert 2900 <= voice.duration_ms <= 3100
    with av.open(io.BytesIO(voice.data)) as stored:
        assert [s.codec_context.name for s in stored.streams] == [codec]
        # The container declares its duration (MediaRecorder's WebM does not).
        assert stored.duration is not None and abs(stored.duration / 1000 - voice.duration_ms) < 100


def test_waveform_follows_the_loudness():
    voice = voice_validate(voice_bytes(3.0), **LIMITS)
    bars = voice.waveform
    assert len(bars) == WAVEFORM_BARS and max(bars) == WAVEFORM_TOP
    # The sample rises to the middle and falls again.
    middle = bars[WAVEFORM_BARS // 2]
    assert bars[0] < middle // 2 and bars[-1] < middle // 2


def test_other_streams_are_left_out():
    voice = voice_validate(voice_bytes(2.0, video=True), **LIMITS)
    with av.open(io.BytesIO(voice.data)) as stored:
        assert [s.type for s in stored.streams] == ["audio"]


def test_longer_than_the_cap_is_refused():
    with pytest.raises(HirfaError) as caught:
        voice_validate(voice_bytes(13.0), **LIMITS)
    assert caught.value.code is ErrorCode.TOO_LONG
    assert caught.value.details["max_seconds"] == 10


def test_too_many_bytes_is_refused_before_decoding():
    with pytest.raises(HirfaError) as caught:
        voice_validate(b"\x1a\x45\xdf\xa3" + bytes(3_000_000), **LIMITS)
    assert caught.value.code is ErrorCode.TOO_LONG


@pytest.mark.parametrize(
    "data",
    [
        b"not audio at all",
        b"\x1a\x45\xdf\xa3" + b"\x00" * 200,  # a Matroska header and nothing
        b"OggS" + bytes(500),
        b"\x00\x00\x00\x18ftypmp42" + bytes(300),
        # An HLS playlist would make a permissive probe open other files.
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n",
        b"\x89PNG\r\n\x1a\n" + bytes(100),
    ],
)
def test_what_is_not_a_recording_is_invalid(data):
    with pytest.raises(HirfaError) as caught:
        voice_validate(data, **LIMITS)
    assert caught.value.code is ErrorCode.INVALID


def test_a_video_only_file_is_invalid():
    out = io.BytesIO()
    with av.open(out, mode="w", format="webm") as target:
        stream = target.add_stream("libvpx", rate=10)
        stream.width, stream.height = 64, 64
        for packet in stream.encode(av.VideoFrame(64, 64, "yuv420p")):
            target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    with pytest.raises(HirfaError) as caught:
        voice_validate(out.getvalue(), **LIMITS)
    assert caught.value.code is ErrorCode.INVALID


def test_a_corrupted_recording_is_invalid_or_shorter_never_an_error_escaping():
    data = bytearray(voice_bytes(3.0))
    for i in range(200, len(data), 97):
        data[i] ^= 0x5A
    try:
        voice = voice_validate(bytes(data), **LIMITS)
    except HirfaError as exc:
        assert exc.code is ErrorCode.INVALID
    else:
        assert voice.duration_ms <= 3100


def test_an_empty_recording_is_invalid():
    with pytest.raises(HirfaError) as caught:
        voice_validate(voice_bytes(0.1), **LIMITS)
    assert caught.value.code is ErrorCode.INVALID
