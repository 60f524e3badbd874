"""bench/netlab.py's media: what its publishers send must let it measure what it claims.

``av_offset_ms`` times the first publisher's beep against his flash in the subscriber's
page; with slots the subscriber is sent only the loudest voices (signaling/sfu/README.md,
"Slots"), so the beeping publisher must be the one the SFU hears speaking, as in a meeting
where one person talks and the others listen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import netlab
from signaling.sfu.speaker import ActiveSpeakerDetector

pytest.importorskip("av")


def test_only_the_beeping_publisher_is_heard_speaking() -> None:
    beeping, listening = netlab.encode_audio("beep"), netlab.encode_audio("silence")
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


def test_the_other_benches_speakers_are_heard_speaking(tmp_path: Path) -> None:
    """bench/assembly.py's and bench/meeting_adapt.py's speakers send the tone, not the lab's
    listeners' silence: the slot test's second speaker must take the video slot, and the narrow
    link must carry voices as loud as before."""
    import pickle

    from bench import assembly, meeting_adapt

    (tmp_path / "assembly").mkdir()
    now = [0.0]
    for clip_path in (assembly.write_clip(str(tmp_path / "assembly"), (160, 120)), meeting_adapt.write_clip(str(tmp_path))):
        with open(clip_path, "rb") as handle:
            tone: list[bytes] = pickle.load(handle)["tone"]
        detector = ActiveSpeakerDetector(clock=lambda: now[0])
        for index in range(100):
            now[0] = index * 0.02
            detector.observe("listener", None, 3)
            detector.observe("speaker", None, len(tone[index % len(tone)]))
        assert detector.current == "speaker", clip_path


def test_a_sound_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        netlab.encode_audio("noise")


@pytest.mark.parametrize(("value", "kept"), [(None, False), ("", False), ("0", False), ("no", False), ("1", True), ("yes", True)])
def test_a_runs_folder_is_kept_only_when_netlab_keep_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              value: str | None, kept: bool) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    if value is None:
        monkeypatch.delenv("NETLAB_KEEP", raising=False)
    else:
        monkeypatch.setenv("NETLAB_KEEP", value)
    netlab.finish_folder(str(folder))
    assert folder.exists() == kept
