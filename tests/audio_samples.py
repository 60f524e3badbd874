"""Voice recordings made on the spot, as browsers would upload them (no files in the repository)."""

from __future__ import annotations

import io
import math
from array import array
from typing import Any

import av

# container -> (PyAV muxer, encoder, sample rate)
KINDS = {
    "webm": ("webm", "libopus", 48000),  # Chrome, Firefox, Android
    "ogg": ("ogg", "libopus", 48000),  # Firefox's other choice
    "mp4": ("mp4", "aac", 44100),  # Safari
}


def voice_bytes(seconds: float = 2.0, *, container: str = "webm", tone: float = 440.0, video: bool = False) -> bytes:
    """A mono recording of `seconds`: a tone whose loudness rises then falls."""
    muxer, encoder, rate = KINDS[container]
    out = io.BytesIO()
    with av.open(out, mode="w", format=muxer) as target:
        stream: Any = target.add_stream(encoder, rate=rate)
        stream.layout = "mono"
        if video:
            picture: Any = target.add_stream("mpeg4" if container == "mp4" else "libvpx", rate=10)
            picture.width, picture.height = 64, 64
        total = int(seconds * rate)
        chunk = 1024
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            pcm = array(
                "h",
                (
                    int(12000 * math.sin(math.pi * (start + i) / total) * math.sin(2 * math.pi * tone * (start + i) / rate))
                    for i in range(n)
                ),
            )
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(pcm.tobytes() + bytes(frame.planes[0].buffer_size - n * 2))
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
        if video:
            for packet in picture.encode(av.VideoFrame(64, 64, "yuv420p")):
                target.mux(packet)
            for packet in picture.encode(None):
                target.mux(packet)
    return out.getvalue()
