"""The allocator and the downlink estimate alone (no network), then one meeting of aiortc peers
whose subscriber's REMB says his link is narrow."""

from __future__ import annotations

import pytest

from signaling.sfu import Reception, Sfu, SfuConfig, TrackSource, VideoQuality
from signaling.sfu.allocation import DownlinkEstimate, VideoDemand, allocate, layer_name

from .peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all, join

LAYERS = (150_000.0, 500_000.0, 1_200_000.0)


class PinnedEstimate(DownlinkEstimate):
    """A subscriber's estimate pinned by the test (his aiortc client's own REMB and receiver
    reports are ignored): ``remb`` for the delay-based figure, ``loss_based`` for the other."""

    def on_remb(self, bitrate: float, now: float) -> None:
        pass

    def on_loss(self, fraction: float, now: float) -> None:
        pass


def video(key: str, rank: int, layers: tuple[float | None, ...] = LAYERS, spoke: float = 0.0) -> VideoDemand:
    return VideoDemand(key=key, rank=(rank, -spoke), layers=layers)


def test_audio_comes_first_then_each_video_low_then_up_by_priority() -> None:
    videos = [video("other", 3), video("speaker", 2), video("pinned", 0)]
    narrow = allocate(300_000, 60_000, videos)
    assert narrow.layers == {"pinned": 0, "speaker": None, "other": None} and not narrow.audio_only
    assert narrow.cost == 210_000
    wide = allocate(2_500_000, 60_000, videos)
    # Every video low first (450k), then the pinned up to 720p, the speaker to 360p (720p does
    # not fit), the other to 360p...
    assert wide.layers == {"pinned": 2, "speaker": 1, "other": 1}
    assert wide.cost <= 2_500_000
    # ...and a third video never takes the top layer (a small tile).
    assert allocate(10_000_000, 0, videos).layers == {"pinned": 2, "speaker": 2, "other": 1}


def test_lower_layers_before_suspension_and_unavailable_layers_are_skipped() -> None:
    videos = [video("a", 3, spoke=10.0), video("b", 3, spoke=5.0), video("c", 3, (None, 500_000.0, None))]
    decision = allocate(700_000, 0, videos)
    assert decision.layers == {"a": 1, "b": 0, "c": None}, "a spoke last; c has no low layer to fall back on"


def test_audio_only_when_no_video_fits_and_a_margin_to_leave_it() -> None:
    videos = [video("a", 2)]
    assert allocate(180_000, 60_000, videos).audio_only
    assert allocate(220_000, 60_000, videos, audio_only=False).layers == {"a": 0}
    still = allocate(220_000, 60_000, videos, audio_only=True)
    assert still.audio_only and still.layers == {"a": None}, "no flapping at the edge"
    assert not allocate(260_000, 60_000, videos, audio_only=True).audio_only
    assert not allocate(100_000, 60_000, []).audio_only, "nothing to see is not audio-only"


def test_the_first_video_keeps_its_lowest_layer_unless_loss_says_the_link_cannot_carry_it() -> None:
    videos = [video("speaker", 2), video("other", 3)]
    # REMB (``budget``) below audio + the lowest layer, but no loss: the first video stays, low.
    narrow = allocate(120_000, 60_000, videos, loss_budget=800_000)
    assert narrow.layers == {"speaker": 0, "other": None} and not narrow.audio_only
    assert allocate(120_000, 60_000, videos, audio_only=True, loss_budget=800_000).layers["speaker"] == 0
    # The loss-based figure itself too small: audio only, and a margin to leave it.
    assert allocate(120_000, 60_000, videos, loss_budget=180_000).audio_only
    assert allocate(120_000, 60_000, videos, audio_only=True, loss_budget=220_000).audio_only
    assert not allocate(120_000, 60_000, videos, audio_only=True, loss_budget=260_000).audio_only


def test_a_remb_that_echoes_what_arrives_never_keeps_the_camera_away() -> None:
    """A browser's REMB starts from what its first second brought (about half of what is
    sent), rises at most 8 % a second and to 1.5 times what arrives; over TURN/TCP or TLS the
    bursts of a probe's padding, queued on the TCP path, make its delay detector cut it. The
    allocation rounds of a meeting's participant (``Participant._allocate``) with such a REMB and
    no loss, over two minutes: the camera is never paused. On REMB alone the subscriber went
    audio-only at his first REMB and never saw the camera again: every probe failed, and his
    REMB, echoing the audio he received, never showed room for it (the deploy check's participant
    relayed over TLS)."""
    estimate = DownlinkEstimate()
    audio = 90_000.0  # Opus in RED
    camera = video("nadia", 2, layers=(110_000.0, 280_000.0, None))
    audio_only, layers, remb = False, [], None
    for tick in range(240):
        now = tick * 0.5
        probe = estimate.round(now, allocate(float("inf"), audio, [camera]).cost)
        decision = allocate(estimate.value(now), audio, [camera], audio_only=audio_only, loss_budget=estimate.loss_value())
        audio_only, layer = decision.audio_only, decision.layers["nadia"]
        layers.append(layer)
        estimate.sending = arriving = audio + (0.0 if layer is None else camera.layers[layer] or 0.0)
        if tick % 2 == 1:  # his REMB and receiver reports, once a second
            if remb is None:
                remb = 0.5 * arriving
            elif probe is not None:
                remb *= 0.85
            else:
                remb = min(1.5 * arriving + 10_000, remb * 1.08)
            estimate.on_remb(remb, now)
            estimate.on_loss(0.0, now)
    assert estimate.probes_failed, "the probes failed, as over TCP"
    assert None not in layers, f"the camera was paused in {layers.count(None)} of {len(layers)} rounds"


def test_layer_names() -> None:
    assert [layer_name(i, 3) for i in (0, 1, 2)] == ["low", "medium", "high"]
    assert [layer_name(i, 2) for i in (0, 1)] == ["low", "high"]
    assert layer_name(0, 1) == "high" and layer_name(None, 3) == "paused"


def test_estimate_follows_remb_and_loss_and_probes_up_when_calm() -> None:
    estimate = DownlinkEstimate(initial=800_000)
    estimate.on_remb(300_000, 0.0)
    assert estimate.value(1.0) == 300_000
    assert estimate.value(10.0) == 800_000, "a stale REMB is forgotten"
    estimate.on_remb(300_000, 10.0)
    estimate.sending = 280_000
    estimate.on_loss(0.3, 10.0)
    assert estimate.value(10.0) == pytest.approx(280_000 * 0.85)
    estimate.on_loss(0.0, 10.5)
    assert estimate.value(10.5) == pytest.approx(280_000 * 0.85 * 1.08)

    # Wanting more than the estimate, calm for probe_after seconds: a probe pads up to a target...
    estimate = DownlinkEstimate(initial=10_000_000)
    estimate.on_remb(150_000, 0.0)
    assert estimate.round(0.0, wanted=700_000) is None
    assert estimate.round(1.0, wanted=700_000) is None, "not calm long enough"
    assert estimate.round(2.0, wanted=700_000) == 450_000 and estimate.probing
    assert estimate.value(2.5) == 150_000, "nothing is spent before the probe held"
    assert estimate.round(2.5, wanted=700_000) == 450_000
    # ...which held: the link carries it, and the next probe comes sooner.
    assert estimate.round(3.0, wanted=700_000) is None and estimate.value(3.0) == 450_000
    assert estimate.round(4.0, wanted=700_000) == pytest.approx(750_000 * 1.1 * 700_000 / 750_000)
    # A falling REMB stops a probe at once; the proven rate is forgotten; the next waits longer.
    estimate.on_remb(120_000, 4.5)
    assert not estimate.probing and estimate.value(4.5) == 120_000 and estimate.probes_failed == 1
    assert estimate.round(6.4, wanted=700_000) is None
    assert estimate.round(8.5, wanted=700_000) is not None, "after probe_after + the back-off"
    estimate.on_loss(0.2, 8.6)
    assert not estimate.probing and estimate.probes_failed == 2
    # Nothing more wanted: no probe; a tap on "try video again" probes at once.
    estimate.on_remb(120_000, 30.0)
    assert estimate.round(30.0, wanted=100_000) is None
    estimate.retry()
    assert estimate.round(30.1, wanted=700_000) is not None


@pytest.fixture
async def adapting_sfu():
    server = Sfu(SfuConfig(port_min=42000, port_max=42999, allocation_interval=0.2))
    yield server
    await server.close()


async def test_a_subscriber_whose_remb_is_narrow_keeps_a_video_and_goes_audio_only_on_loss(adapting_sfu: Sfu) -> None:
    sfu = adapting_sfu
    meeting = sfu.meeting("guild-narrow")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    receptions: list[Reception] = []
    sessions.append(await join(meeting, karim, on_reception=lambda _p, r: receptions.append(r)))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    participant = meeting.participant("karim")
    (video,) = [t for t in participant.subscription_tracks() if t.kind == "video"]

    # His browser's REMB says 40 kbit/s and no probe holds (as over TURN/TLS, where the padding's
    # bursts queue on the TCP path), but nothing is lost: the video stays, at its lowest layer (a
    # REMB echoes what arrives: it cannot show room for a video he does not get).
    def measured() -> bool:
        return all(rate and rate > 1 for forwarder in meeting.forwarders() for rate in forwarder.layer_bitrates())

    await wait_until(measured, what="the publisher's rates measured")
    participant._downlink = downlink = PinnedEstimate(remb=40_000, remb_at=0.0, remb_ttl=1e9, probe_after=1e9)
    await wait_until(lambda: participant.reception.estimate == downlink.floor, what="the estimate spent")
    frames = len(karim.frames_from("amina", TrackSource.CAMERA))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= frames + 25, what="video going on")
    assert not participant.reception.audio_only and not video.paused

    # His receiver reports say his link loses: the video stops, the audio goes on.
    downlink.loss_based = 40_000
    await wait_until(lambda: participant.reception.audio_only, what="audio only")
    assert receptions[-1].audio_only and receptions[-1].videos[0].quality is VideoQuality.PAUSED
    assert video.paused
    frames = len(karim.frames_from("amina", TrackSource.CAMERA))
    audio = len(karim.frames_from("amina", TrackSource.MICROPHONE))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.MICROPHONE)) >= audio + 25, what="audio going on")
    assert len(karim.frames_from("amina", TrackSource.CAMERA)) <= frames + 1

    # His link recovers (3 Mbit/s) and he taps "try video again": the video resumes
    # at a keyframe, and nothing was renegotiated.
    offers = sessions[1].negotiations
    downlink.remb = downlink.loss_based = 3_000_000
    participant.retry_video()
    await wait_until(lambda: not participant.reception.audio_only and not video.paused, what="video back")
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= frames + 10, what="frames again")
    assert receptions[-1].videos[0].quality is VideoQuality.HIGH and not receptions[-1].audio_only
    assert sessions[1].negotiations == offers
    await close_all(sfu, sessions)
