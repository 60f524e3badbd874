"""bench/netlab.py's media: what its publishers send must let it measure what it claims.

``av_offset_ms`` times the first publisher's beep against his flash in the subscriber's
page; with slots the subscriber is sent only the loudest voices (signaling/sfu/README.md,
"Slots"), so the beeping publisher must be the one the SFU hears speaking, as in a meeting
where one person talks and the others listen.
"""

from __future__ import annotations

import pytest

from bench import netlab
from signaling.sfu.speaker import ActiveSpeakerDetector

pytest.importorskip("av")


def test_only_the_beeping_publisher_is_heard_speaking() -> None:
    beeping, listening = netlab.encode_audio(True), netlab.encode_audio(False)
    now = [0.0]
    detector = ActiveSpeakerDetector(clock=lambda: now[0])
    # Two seconds of the meeting, 20 ms a packet; the listeners joined first.
    for index in range(100):
        now[0] = index * 0.02
        for listener in ("pub2", "pub3", "pub4", "pub5"):
            detector.observe(listener, None, len(listening[index % len(listening)]))
        detector.observe("pub1", None, len(beeping[index % len(beeping)]))

    assert detector.current == "pub1"
    assert set(detector.last_loud) == {"pub1"}
