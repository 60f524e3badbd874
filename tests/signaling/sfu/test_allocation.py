"""The allocator and the downlink estimate alone (no network), then one meeting of aiortc peers
whose subscriber's REMB says his link is narrow."""

from __future__ import annotations

import pytest

from signaling.sfu import Reception, Sfu, SfuConfig, TrackSource, VideoQuality
from signaling.sfu.allocation import (
    AudioDemand,
    DownlinkEstimate,
    VideoDemand,
    allocate,
    layer_name,
    probe_wanted,
    video_rank,
)
from tests.parallel import worker_port

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


def test_a_masterclass_presenters_video_comes_right_after_the_audio() -> None:
    """Karim, who listens, pinned Salim (a fellow listener) and Nadia speaks and shares her
    screen; Amina presents with her face and her hands: on his narrow link her videos come
    first — her hands before her face —, then the pinned, the screen, the speaker."""

    def rank(**kind: float) -> tuple[float, ...]:
        return video_rank(
            presenter=bool(kind.get("presenter")),
            pinned=bool(kind.get("pinned")),
            screen=bool(kind.get("screen")),
            speaker=bool(kind.get("speaker")),
            hands=bool(kind.get("hands")),
            spoke=kind.get("spoke", 0.0),
        )

    ranks = {
        "amina-face": rank(presenter=True),
        "amina-hands": rank(presenter=True, hands=True),
        "salim": rank(pinned=True),
        "nadia-screen": rank(screen=True, speaker=True),
        "nadia": rank(speaker=True),
        "yacine": rank(spoke=10.0),
        "walid": rank(spoke=5.0),
    }
    assert sorted(ranks, key=ranks.__getitem__) == [
        "amina-hands", "amina-face", "salim", "nadia-screen", "nadia", "yacine", "walid",
    ]
    # A pinned presenter's videos before the other presenter's.
    assert rank(presenter=True, pinned=True) < rank(presenter=True, hands=True) < rank(pinned=True, hands=True)

    videos = [VideoDemand(key=key, rank=value, layers=LAYERS) for key, value in reversed(ranks.items())]
    narrow = allocate(400_000, 60_000, videos)
    # 340k after the audio: both of her videos' lowest layers (300k), nothing else.
    assert {k for k, layer in narrow.layers.items() if layer is not None} == {"amina-hands", "amina-face"}
    # Wider: every video's lowest layer (1050k), then the room left goes up her hands first.
    wide = allocate(1_500_000, 60_000, videos)
    assert wide.layers == {**dict.fromkeys(ranks, 0), "amina-hands": 1}, wide.layers
    # Without the presenter the pinned comes first again.
    plain = [VideoDemand(key=k, rank=rank(pinned=k == "salim", speaker=k == "nadia"), layers=LAYERS) for k in ("nadia", "salim")]
    assert allocate(300_000, 60_000, plain).layers == {"nadia": None, "salim": 0}


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


@pytest.mark.parametrize("startup", [False, True])
def test_a_remb_that_echoes_what_arrives_never_keeps_the_camera_away(startup: bool) -> None:
    """A browser's REMB starts from what its first second brought (about half of what is
    sent), rises at most 8 % a second and to 1.5 times what arrives; over TURN/TCP or TLS the
    bursts of a probe's padding, queued on the TCP path, make its delay detector cut it. The
    allocation rounds of a meeting's participant (``Participant._allocate``) with such a REMB and
    no loss, over two minutes: the camera is never paused. On REMB alone the subscriber went
    audio-only at his first REMB and never saw the camera again: every probe failed, and his
    REMB, echoing the audio he received, never showed room for it (the deploy check's participant
    relayed over TLS). Likewise with the start's doubling probes."""
    estimate = DownlinkEstimate(startup=startup)
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
    assert startup or estimate.probes_failed, "the probes failed, as over TCP"
    assert None not in layers, f"the camera was paused in {layers.count(None)} of {len(layers)} rounds"


def _lossy_link(link: float, seconds: int, seed: int = 7) -> tuple[list[int | None], list[bool]]:
    """A subscriber alone with one camera (one layer, 270 kbit/s on the wire) and one voice
    (83 kbit/s: Opus with its headers) on a link of ``link`` bit/s losing 2 % at random, plus
    what does not fit; the allocation rounds of ``Participant._allocate`` every 0.5 s, his
    receiver reports (cumulative counters per stream) once a second. Answers the camera's
    layer and the audio-only state of each round."""
    import random

    rng = random.Random(seed)
    estimate = DownlinkEstimate()
    voice = [AudioDemand(key="voice", rank=(0,), rate=83_000.0)]
    camera = video("amina", 0, layers=(270_000.0,))
    audio_only, layers, states = False, [], []
    counters = {1: [0, 0], 2: [0, 0]}  # ssrc -> [highest sequence number, packets lost]
    for tick in range(seconds * 2):
        now = tick * 0.5
        estimate.round(now, allocate(float("inf"), voice, [camera]).cost)
        decision = allocate(estimate.value(now), voice, [camera], audio_only=audio_only, loss_budget=estimate.loss_value())
        audio_only, layer = decision.audio_only, decision.layers["amina"]
        layers.append(layer)
        states.append(audio_only)
        estimate.sending = sending = 83_000.0 + (0.0 if layer is None else 270_000.0)
        if tick % 2 == 1:
            overflow = max(0.0, 1 - link / sending)
            for ssrc, packets in ((1, 50), (2, 0 if layer is None else 35)):
                lost = sum(1 for _ in range(packets) if rng.random() < 0.02 or rng.random() < overflow)
                counters[ssrc][0] += packets
                counters[ssrc][1] += lost
                estimate.on_report(ssrc, counters[ssrc][0], counters[ssrc][1], now)
    return layers, states


def test_a_camera_that_fits_a_lossy_3g_link_is_never_paused_and_one_that_does_not_fit_is() -> None:
    """The lab's ``3g`` meeting: a 250 kbit/s camera and a voice on a 400 kbit/s link losing
    2 %. The subscriber's estimate starts at 300 kbit/s (a guess: a phone is not flooded before
    the first signals), under what the two cost (353 kbit/s): he was made audio-only on that
    guess alone, and leaving it needed the camera times 1.3 beside the voice (434 kbit/s, more
    than the link), reached only by the loss-based figure's 8 % steps on loss-free reports — on
    a 2 % link, tens of seconds without video (one lab run: none in its whole window). The
    first video's lowest layer answers to loss, and no loss said it does not fit; when the
    link is narrower than the camera (250 kbit/s), loss says so and audio comes first."""
    layers, _ = _lossy_link(400_000.0, 60)
    assert None not in layers, f"the camera was paused in {layers.count(None)} of {len(layers)} rounds"
    _, states = _lossy_link(250_000.0, 60)
    assert True in states[:20], "audio only within 10 s on a link the camera does not fit"
    assert states[-40:].count(True) > 30, "and mostly audio only after"


def test_a_first_video_far_over_the_starting_guess_waits_for_a_probe_and_the_3g_camera_does_not() -> None:
    """The lab's ``narrow`` join: seven single-layer 500 kbit/s cameras and their voices, on the
    300 kbit/s starting guess. The first camera used to be sent at once (the first video's lowest
    layer answered to loss only, and before any loss to nothing), so he was made audio-only only
    once its first keyframe had crossed his 300 kbit/s link and his receiver reports said so:
    2-4 s after his join in the lab, most of it his connection's set-up. Sending a video on the
    guess is a probe that never ends; it is sent unprobed only within one probe step of the
    figure (``probe_step`` times it: what the first probe would try anyway). The lab's ``3g``
    camera (270 kbit/s on the wire beside an 83 kbit/s voice, 353 in all) fits in that and is
    sent at once, as before; once a probe showed room, the big camera is sent too."""
    voices = [AudioDemand(key=f"voice{i}", rank=(i,), rate=76_000.0) for i in range(7)]
    cameras = [video(f"camera{i}", 4, layers=(520_000.0,)) for i in range(7)]
    estimate = DownlinkEstimate()
    first = allocate(estimate.value(0.0), voices, cameras, loss_budget=estimate.loss_value())
    assert first.audio_only, "audio only from his first round, before anything crossed his link"
    assert all(layer is None for layer in first.layers.values())
    voice = [AudioDemand(key="voice", rank=(0,), rate=83_000.0)]
    phone = video("amina", 0, layers=(270_000.0,))
    on_3g = allocate(estimate.value(0.0), voice, [phone], loss_budget=estimate.loss_value())
    assert not on_3g.audio_only and on_3g.layers == {"amina": 0}, "the 3G camera is sent on the guess"
    # A probe held at 900 kbit/s: the big camera is sent (with the margin that leaves audio-only).
    estimate.proven = estimate.loss_based = 900_000.0
    shown = allocate(estimate.value(1.0), voices, cameras, audio_only=True, loss_budget=estimate.loss_value())
    assert not shown.audio_only and sum(layer is not None for layer in shown.layers.values()) == 1
    # Once loss cut the figure, it is the figure itself, as before.
    estimate.cut, estimate.loss_based = True, 300_000.0
    assert estimate.loss_value() == 300_000.0


def test_whether_a_first_video_fits_the_guess_is_judged_on_its_steady_rate() -> None:
    """A camera's rate over one second swings with its keyframes (the lab's 500 kbit/s clip read
    200-830 kbit/s second by second): on a quiet second the lab's narrow subscriber, audio-only
    on the guess, was sent the 500 kbit/s camera (its 250 kbit/s second fitted the step) and his
    link overflowed. The steady rate (``VideoDemand.steady``) judges whether the first video fits
    its loss-based figure; what is spent is the rate of now."""
    voices = [AudioDemand(key=f"voice{i}", rank=(i,), rate=76_000.0) for i in range(7)]
    quiet = [VideoDemand(key=f"camera{i}", rank=(4, 0.0), layers=(250_000.0,), steady=(530_000.0,)) for i in range(7)]
    estimate = DownlinkEstimate()
    for audio_only in (False, True):
        held = allocate(estimate.value(0.0), voices, quiet, audio_only=audio_only, loss_budget=estimate.loss_value())
        assert held.audio_only, f"a quiet second of a 500 kbit/s camera is not sent (audio-only {audio_only})"
    voice = [AudioDemand(key="voice", rank=(0,), rate=83_000.0)]
    keyframe_second = VideoDemand(key="amina", rank=(4, 0.0), layers=(415_000.0,), steady=(270_000.0,))
    sent = allocate(estimate.value(0.0), voice, [keyframe_second], loss_budget=estimate.loss_value())
    assert not sent.audio_only and sent.layers == {"amina": 0}, "the 3G camera's keyframe second keeps it"
    assert sent.cost == 83_000.0 + 415_000.0, "what is spent is the rate of now"


def test_a_void_probe_ends_the_quick_start_of_a_subscriber_whose_first_video_waits() -> None:
    """The lab's narrow subscriber, audio-only from his first round (his camera waits for a
    probe): his first probe stopped on a grown round trip and the next came back down after its
    end — no verdict. At the start the next probe came half a second later, and on his 300
    kbit/s link each queued up to 300 ms with his voices in it (the lab: 1.1 % of them lost in
    one run). It now waits as after a failure's first calm (the start's quick probing is for a
    link not known to be narrow)."""
    estimate = DownlinkEstimate(initial=300_000)
    assert estimate.round(0.0, wanted=900_000, audio_only=True) is None
    estimate.on_delay(0.15, 1.5, sent=1.35)
    assert estimate.round(2.0, wanted=900_000, audio_only=True) == 450_000
    estimate.on_delay(0.15, 2.15, sent=2.0)
    estimate.on_delay(0.30, 2.6, sent=2.45)
    estimate.on_delay(0.16, 2.76, sent=2.6)
    assert not estimate.probing and not estimate.probes_failed and estimate.value(2.8) == 300_000
    assert estimate.round(3.3, wanted=900_000, audio_only=True) is None, "not half a second later"
    assert not estimate.startup
    assert estimate.round(3.8, wanted=900_000, audio_only=True) == 450_000, "the usual calm (1 s after a void)"


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

    # Wanting more than the estimate, calm for probe_after seconds: a short probe pads up to a
    # target (1.5 times the estimate, or 150 kbit/s more)...
    estimate = DownlinkEstimate(startup=False, initial=10_000_000)
    estimate.on_remb(150_000, 0.0)
    assert estimate.round(0.0, wanted=700_000) is None
    assert estimate.round(1.0, wanted=700_000) is None, "not calm long enough"
    assert estimate.round(2.0, wanted=700_000) == 300_000 and estimate.probing
    assert estimate.value(2.3) == 150_000, "nothing is spent before the probe held"
    assert estimate.round(2.3, wanted=700_000) == 300_000
    # ...which held: the link carries it, and the next probe comes sooner.
    assert estimate.round(2.5, wanted=700_000) is None and estimate.value(2.5) == 300_000
    assert estimate.round(3.5, wanted=700_000) == 450_000
    assert estimate.round(4.0, wanted=700_000) is None and estimate.value(4.0) == 450_000
    # Spending it met loss at once: that probe failed after all (the next waits longer).
    estimate.sending = 450_000
    estimate.on_loss(0.25, 4.5)
    assert estimate.probes_failed == 1 and estimate.value(4.5) < 450_000
    estimate.on_loss(0.0, 5.0)
    estimate.on_remb(150_000, 5.0)
    assert estimate.round(6.5, wanted=700_000) is None, "probe_after plus a back-off"
    target = estimate.round(8.5, wanted=700_000)
    assert target is not None
    # A falling REMB stops a probe at once; the proven rate is forgotten; the next waits longer.
    estimate.on_remb(120_000, 8.7)
    assert not estimate.probing and estimate.value(8.7) == 120_000 and estimate.probes_failed == 2
    assert estimate.round(14.6, wanted=700_000) is None
    assert estimate.round(14.8, wanted=700_000) is not None, "after probe_after + 4 s"
    estimate.on_loss(0.2, 14.9)
    assert not estimate.probing and estimate.probes_failed == 3
    # Nothing more wanted: no probe; a tap on "try video again" probes at once.
    estimate.on_remb(120_000, 30.0)
    assert estimate.round(30.0, wanted=100_000) is None
    estimate.retry()
    assert estimate.round(30.1, wanted=700_000) is not None


def _after_three_failed_probes(*, audio_only: bool) -> tuple[DownlinkEstimate, float]:
    """A subscriber whose three probes failed (no round trips measured: a falling REMB each
    time), audio-only for his link or not; (his estimate, when the third failed)."""
    estimate = DownlinkEstimate(startup=False)
    now = 0.0
    assert estimate.round(now, wanted=1_500_000, audio_only=audio_only) is None
    for failed in range(3):
        while estimate.round(now, wanted=1_500_000, audio_only=audio_only) is None:
            now = round(now + 0.1, 6)
        now = round(now + 0.1, 6)
        estimate.congested(now)
        assert estimate.probes_failed == failed + 1
    return estimate, now


def test_an_audio_only_subscriber_probes_again_within_seconds_and_climbs_by_doubling() -> None:
    """Audio-only for his link, he has most to gain from a probe, and nothing else tells him his
    link rose (no video, no REMB): after failed probes the next waits ``probe_after`` and at most
    ``audio_only_probe_wait`` (2 s) more, not 8; once one held, the next comes at once and
    doubles. Receiving video, the back-off and the climb of 1.5 stand."""
    estimate, failed = _after_three_failed_probes(audio_only=True)
    assert estimate.round(failed + 3.9, wanted=1_500_000, audio_only=True) is None
    target = estimate.round(failed + 4.0, wanted=1_500_000, audio_only=True)
    assert target is not None
    # It held (nothing said no): the next at once, twice what it showed.
    assert estimate.round(failed + 4.5, wanted=1_500_000, audio_only=True) == 2 * target
    estimate, failed = _after_three_failed_probes(audio_only=False)
    assert estimate.round(failed + 9.9, wanted=1_500_000) is None, "probe_after and 8 s"
    target = estimate.round(failed + 10.1, wanted=1_500_000)
    assert target is not None
    assert estimate.round(failed + 10.6, wanted=1_500_000) is None, "a calm second first"
    assert estimate.round(failed + 11.6, wanted=1_500_000) == 1.5 * target


def test_a_falling_remb_is_congestion_only_when_round_trips_showed_a_queue() -> None:
    """On a lossy radio link Chromium's REMB dips under what arrives with no queue anywhere: what
    probes showed is kept. A REMB that falls while our own round trips showed a queue (within
    2 s) is congestion, as is one below what is sent; with no round trip measured, REMB alone
    judges. A queue is round trips that grew and stayed (four answered in a row over 1.5 s): one
    late answer is a loaded loop's, and counting it let a REMB dip pause a camera."""
    estimate = DownlinkEstimate(initial=2_000_000, startup=False, delay_since=0.0)
    estimate.proven = 2_000_000
    estimate.on_delay(0.10, 0.1, sent=0.0)
    estimate.on_remb(2_500_000, 1.0)
    estimate.on_remb(1_000_000, 2.0)  # a dip, no queue
    estimate.sending = 2_000_000
    estimate.congested(2.0)  # below what is sent, no queue
    assert estimate.proven == 2_000_000 and estimate.value(2.0) == 2_000_000
    estimate.on_delay(estimate.ping_timeout, 3.0, sent=2.0)  # an unanswered ping is no queue
    estimate.on_remb(800_000, 3.0)
    assert estimate.value(3.0) == 2_000_000
    estimate.on_delay(0.35, 3.5, sent=3.15)  # one late answer: no queue yet
    estimate.on_remb(800_000, 3.5)
    estimate.on_remb(600_000, 3.6)
    assert estimate.proven == 2_000_000 and estimate.value(3.6) == 2_000_000
    for at in (4.0, 4.5, 5.0):  # it stays: a queue
        estimate.on_delay(0.35, at, sent=at - 0.35)
    estimate.on_remb(900_000, 5.1)
    estimate.on_remb(700_000, 5.4)
    assert estimate.proven == 0 and estimate.value(5.4) == 700_000, "a REMB falling beside a queue cuts"
    blind = DownlinkEstimate(initial=2_000_000)
    blind.proven = 2_000_000
    blind.on_remb(2_500_000, 1.0)
    blind.on_remb(1_000_000, 2.0)
    assert blind.proven == 0 and blind.value(2.0) == 1_000_000


def test_loss_is_judged_over_every_stream_sent_to_him() -> None:
    """Receiver reports about paused streams (nothing expected) weigh nothing; the loss is the
    packets lost over all streams, once enough were expected (Chromium reports each stream
    on its own)."""
    estimate = DownlinkEstimate(initial=300_000)
    estimate.sending = 300_000
    audio, video, paused = 1, 2, 3
    for ssrc in (audio, video, paused):
        estimate.on_report(ssrc, 1000, 0, 0.0)
    for second in range(1, 6):  # paused streams report no loss, again and again
        estimate.on_report(paused, 1000, 0, second)
        estimate.on_report(paused, 1000, 0, second + 0.5)
    assert estimate.value(6.0) == 300_000, "empty reports are not a calm link"
    estimate.on_report(audio, 1010, 3, 6.0)  # 10 expected: not judged yet
    assert estimate.value(6.0) == 300_000
    estimate.on_report(video, 1040, 10, 6.1)  # 50 expected in all, 13 lost: 26 %
    assert estimate.value(6.1) == pytest.approx(300_000 * (1 - 0.26 / 2))
    estimate.on_report(video, 1100, 10, 7.0)  # 60 expected, none lost
    assert estimate.value(7.0) == pytest.approx(300_000 * 0.87 * 1.08)
    estimate.on_report(video, 10, 10, 8.0)  # a restarted stream is not a loss of 64 000 packets
    estimate.on_report(video, 40, 10, 8.5)  # 30 expected from the restart on, none lost
    assert estimate.value(8.5) == pytest.approx(300_000 * 0.87 * 1.08 * 1.08)


def test_what_an_outage_swallowed_does_not_cut_the_estimate_once_he_is_back() -> None:
    """A phone whose link went dark for 3 s (a tunnel, Wi-Fi to 4G): the first reports after
    it count every packet the outage swallowed; they must not bring him to the floor."""
    estimate = DownlinkEstimate(initial=1_500_000)
    estimate.sending = 1_500_000
    video = 2
    estimate.on_report(video, 1000, 0, 0.0)
    estimate.on_report(video, 1100, 0, 1.0)
    before = estimate.value(1.0)
    estimate.outage()  # nothing heard from him for 3 s
    estimate.on_remb(100_000, 3.0)  # what his browser's estimator said in the dark
    estimate.restored(5.0)
    estimate.on_report(video, 1500, 300, 5.5)  # the outage's 300 lost packets, reported now
    assert estimate.value(5.5) == before
    estimate.on_report(video, 1600, 302, 6.5)  # then 2 % of what followed: judged as usual
    assert estimate.value(6.5) == before


def test_audio_first_the_loudest_always_the_others_while_they_fit_red_dropped_when_narrow() -> None:
    def voice(key: str, position: int, rate: float = 80_000, plain: float | None = None) -> AudioDemand:
        return AudioDemand(key=key, rank=(position,), rate=rate, plain=plain)

    seven = [voice(f"p{i}", i) for i in range(7)]
    wide = allocate(2_000_000, seven, [])
    assert all(wide.audio.values()) and wide.cost == 560_000, "on a usable link everybody is heard"
    narrow = allocate(360_000, seven, [video("a", 3)])
    assert narrow.audio == {f"p{i}": i < 3 for i in range(7)}, "the three first-ranked voices, clean"
    assert narrow.audio_only and narrow.cost == 240_000
    # On a very narrow link, the first voice alone (then as many of the three as fit).
    assert allocate(100_000, seven, []).audio == {f"p{i}": i == 0 for i in range(7)}
    assert allocate(300_000, seven, []).audio == {f"p{i}": i < 2 for i in range(7)}, "70 % of the link"
    # Silent microphones (DTX) cost almost nothing: they stay.
    mixed = [voice("talker", 0), *[voice(f"quiet{i}", i + 1, rate=1_500) for i in range(6)]]
    assert all(allocate(300_000, mixed, []).audio.values())
    # RED is kept while the first voices with it take at most half the estimate...
    red = [voice(f"r{i}", i, rate=90_000, plain=50_000) for i in range(3)]
    assert allocate(600_000, red, []).red
    # ...and dropped (the primary Opus only) when they would take more.
    squeezed = allocate(300_000, red, [])
    assert not squeezed.red and squeezed.cost == 150_000 and all(squeezed.audio.values())


@pytest.fixture
async def adapting_sfu():
    server = Sfu(SfuConfig(port_min=worker_port(42000), port_max=worker_port(42999), allocation_interval=0.2))
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
    # His link's round trip is measured (STUN to his peer): the allocator's delay signal.
    await wait_until(lambda: participant.downlink.delay_at is not None, what="a round trip to karim")

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

    # His receiver reports say his link loses (what on_loss does, pinned here): the video
    # stops, the audio goes on.
    downlink.loss_based, downlink.cut = 40_000, True
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


async def test_a_report_that_cuts_his_estimate_is_spent_at_once(adapting_sfu: Sfu) -> None:
    """Loss that cuts a subscriber's estimate pauses what no longer fits at once, not at the next
    allocation round: his voices wait in the queue meanwhile (the lab's narrow subscriber went
    audio-only 2.9-4.0 s after his join, against 3 s asked). Here the rounds stop once his video
    flows."""
    sfu = adapting_sfu
    meeting = sfu.meeting("guild-cut")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]
    sessions.append(await join(meeting, karim))
    await wait_until(lambda: len(karim.frames_from("amina", TrackSource.CAMERA)) >= 10, what="karim's video")
    participant = meeting.participant("karim")
    assert not participant.reception.audio_only
    ticker = meeting._ticker
    assert ticker is not None
    ticker.cancel()
    participant._downlink = downlink = DownlinkEstimate(initial=120_000, probe_after=1e9)
    downlink.sending = 100_000
    participant._on_report(1234, 1000, 0)
    participant._on_report(1234, 1100, 60)  # 60 of 100 lost: cut to 70 kbit/s
    await wait_until(lambda: participant.reception.estimate == 70_000, timeout=5.0, what="the cut spent")
    await close_all(sfu, sessions)


def test_round_trips_that_grow_cut_the_estimate_and_judge_probes() -> None:
    """The STUN round trip to his browser judges probes: one fails when two round trips in a row
    come back 100 ms above his link's least, and holds only once a round trip measured after its
    end came back clean."""
    estimate = DownlinkEstimate(initial=800_000)
    estimate.sending = 600_000
    for second in range(5):
        estimate.on_delay(0.15, float(second))
    estimate.on_delay(0.32, 5.0)
    estimate.on_delay(0.16, 5.5)
    estimate.on_delay(0.30, 6.0)
    estimate.on_delay(0.45, 6.5)
    assert estimate.queueing and estimate.value(6.5) == 800_000, "outside probes, round trips only inform"
    # Queueing while little is sent to him is not his downlink (his uplink is on the round trip
    # too, and a busy server's event loop): no cut, and probes go on.
    estimate = DownlinkEstimate(startup=False, initial=800_000)
    estimate.sending = 100_000
    assert estimate.round(0.0, wanted=2_000_000) is None
    for at, rtt in ((0.0, 0.15), (0.5, 0.4), (1.0, 0.45)):
        estimate.on_delay(rtt, at)
    assert estimate.queueing and estimate.value(1.0) == 800_000
    assert estimate.round(2.5, wanted=2_000_000) == 1_200_000
    # A lossy radio link (5 % lost, steadily) is not a full one: he still climbs.
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    assert estimate.round(0.0, wanted=2_000_000) is None
    estimate.on_loss(0.05, 1.0)
    assert estimate.round(2.0, wanted=2_000_000) == 450_000

    # A probe: held only when a round trip sent after its end is back, clean...
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    estimate.on_delay(0.15, 0.0)
    assert estimate.round(0.0, wanted=900_000) is None
    assert estimate.round(2.0, wanted=900_000) == 450_000
    estimate.on_delay(0.15, 2.3, sent=2.15)
    assert estimate.padding(2.3) == 450_000, "padded up to the target for probe_duration"
    assert estimate.round(2.5, wanted=900_000) == 450_000, "no round trip from its end yet: still judged"
    assert estimate.padding(2.5) is None, "but no longer padded"
    estimate.on_delay(0.16, 2.61, sent=2.45)
    assert estimate.round(2.7, wanted=900_000) is None and estimate.value(2.7) == 450_000
    # ...failed when round trips grow under it...
    assert estimate.round(3.7, wanted=900_000) == 675_000
    estimate.on_delay(0.30, 3.9, sent=3.75)
    estimate.on_delay(0.40, 4.05, sent=3.85)
    assert not estimate.probing and estimate.probes_failed == 1 and estimate.value(4.1) == 450_000, "back to before it"
    # ...and when none comes back from under it (lost, or stuck in a queue).
    # (Round trips that never come at all do not stop probes for good.)
    blind = DownlinkEstimate(initial=300_000, startup=False, delay_since=0.0)
    assert blind.round(2.0, wanted=900_000) is None and blind.round(9.0, wanted=900_000) is None
    assert blind.round(10.5, wanted=900_000) == 450_000
    estimate.on_delay(0.15, 8.0)
    estimate.on_delay(0.15, 8.5)
    target = estimate.round(8.5, wanted=900_000)
    assert target is not None
    assert estimate.round(9.6, wanted=900_000) == target
    # An unanswered ping (the SFU's reports its timeout) says nothing: the probe waits on (on a
    # 5 %-loss link one ping in ten is lost, and the next one needs a round trip to come back).
    estimate.on_delay(estimate.ping_timeout, 9.9, sent=8.9)
    assert estimate.round(10.1, wanted=900_000) == target and estimate.probes_failed == 1
    assert estimate.round(11.1, wanted=900_000) is None and estimate.probes_failed == 2


def test_a_lossy_radio_link_is_not_read_as_a_full_one_from_small_samples() -> None:
    """The lab's ``lossy`` meeting (5 % random loss, no rate limit, what is sent near the
    estimate): judged over 20 packets, a 5 % link reads 10 % and more about one time in
    thirteen, and each such reading cut the estimate: the subscriber's cameras were paused
    and resumed again and again (a keyframe each time), and one never came back. Real
    congestion (a third lost) is still seen at once."""
    import random

    rng = random.Random(7)
    estimate = DownlinkEstimate(initial=2_000_000)
    counters = {ssrc: [0, 0] for ssrc in range(1, 7)}  # 3 voices, 3 cameras
    for second in range(120):
        estimate.sending = 0.9 * estimate.value(float(second))
        for ssrc, [highest, lost] in counters.items():
            packets = 50 if ssrc <= 3 else 25  # reports come per stream, a few per second
            lost += sum(1 for _ in range(packets) if rng.random() < 0.05)
            counters[ssrc] = [highest + packets, lost]
            estimate.on_report(ssrc, highest + packets, lost, second + ssrc / 10)
    assert not estimate.cut, "5 % random loss read as congestion"
    before = estimate.value(120.0)
    for ssrc in (1, 2):
        highest, lost = counters[ssrc]
        estimate.on_report(ssrc, highest + 20, lost + 7, 120.5)
    assert estimate.cut and estimate.value(120.5) < before, "a third lost over 40 packets is congestion"


def test_a_probe_stops_padding_at_the_first_late_round_trip() -> None:
    """On the lab's 300 kbit/s link a probe's queue grows by about 0.6 s a second and each round
    trip comes back later than the last: the padding stops at the first that grew (and at the
    probe's end at the latest, while it is still judged), not at the second or at the next
    allocation round — his voices wait in that queue. The next round trip says whether it
    failed; one late answer followed by a clean one (a busy loop) pads on."""
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    assert estimate.round(0.0, wanted=900_000) is None
    estimate.on_delay(0.15, 1.5, sent=1.35)
    assert estimate.round(2.0, wanted=900_000) == 450_000 and estimate.padding(2.0) == 450_000
    estimate.on_delay(0.30, 2.3, sent=2.0)
    assert estimate.probing and estimate.padding(2.3) is None, "the first late round trip stops the padding"
    assert estimate.probes_failed == 0
    estimate.on_delay(0.35, 2.65, sent=2.3)
    assert not estimate.probing and estimate.probes_failed == 1 and estimate.value(2.7) == 300_000

    # A busy loop's hiccup: padding pauses for one round trip, then goes on, and the probe holds.
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    assert estimate.round(0.0, wanted=900_000) is None
    estimate.on_delay(0.15, 1.5, sent=1.35)
    assert estimate.round(2.0, wanted=900_000) == 450_000
    estimate.on_delay(0.30, 2.3, sent=2.0)
    assert estimate.padding(2.3) is None
    estimate.on_delay(0.15, 2.45, sent=2.3)
    assert estimate.padding(2.45) == 450_000, "a clean round trip after it: pad on"
    estimate.on_delay(0.15, 2.6, sent=2.45)
    assert estimate.round(2.6, wanted=900_000) is None and estimate.value(2.6) == 450_000 and not estimate.probes_failed

    # On a link that lost already, late once after its end and clean after: no verdict —
    # nothing taken back, no back-off, and the start's next probe is the usual step, not a
    # doubling one (the queue it left drained before the next answer: not a held probe).
    estimate = DownlinkEstimate(initial=300_000, cut=True)
    assert estimate.round(0.0, wanted=2_000_000) is None
    estimate.on_delay(0.15, 1.5, sent=1.35)
    assert estimate.round(2.0, wanted=2_000_000) == 450_000
    estimate.on_delay(0.15, 2.15, sent=2.0)
    estimate.on_delay(0.30, 2.6, sent=2.45)
    estimate.on_delay(0.16, 2.76, sent=2.6)
    assert not estimate.probing and not estimate.probes_failed and estimate.value(2.8) == 300_000
    assert estimate.round(3.3, wanted=2_000_000) == 450_000
    # On a link that never lost (a busy assembly's loopback subscriber), as before: one late
    # answer does not stop the climb.
    estimate = DownlinkEstimate(initial=300_000)
    assert estimate.round(0.0, wanted=2_000_000) is None
    estimate.on_delay(0.15, 1.5, sent=1.35)
    assert estimate.round(2.0, wanted=2_000_000) == 450_000
    estimate.on_delay(0.15, 2.15, sent=2.0)
    estimate.on_delay(0.30, 2.6, sent=2.45)
    estimate.on_delay(0.16, 2.76, sent=2.6)
    assert estimate.round(3.0, wanted=2_000_000) == 900_000 and estimate.value(3.0) == 450_000, "held, and the start doubles on"


def test_no_probe_starts_while_his_pings_go_unanswered() -> None:
    """A ping not answered within its timeout (his link full, or his own uplink's queue) is no
    round trip to judge a probe against: no probe starts on it."""
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    assert estimate.round(0.0, wanted=900_000) is None
    estimate.on_delay(0.15, 0.5)
    estimate.on_delay(1.0, 2.5, sent=1.5)
    assert estimate.round(2.5, wanted=900_000) is None
    estimate.on_delay(0.16, 3.16, sent=3.0)
    assert estimate.round(3.2, wanted=900_000) == 450_000


def test_reports_of_nothing_lost_while_far_less_is_sent_do_not_raise_the_estimate() -> None:
    """An audio-only subscriber on a 300 kbit/s link is sent 150 kbit/s: nothing lost says nothing
    of what more would do. Raised by 8 % at each report, his estimate stood 40 % over his link
    within half a minute, and each probe (1.5 times it) queued faster than any round trip could
    tell (the lab's narrow case: 2-4 % of his audio lost)."""
    estimate = DownlinkEstimate(startup=False, initial=300_000)
    estimate.sending = 150_000
    for second in range(30):
        estimate.on_loss(0.0, float(second))
    assert estimate.value(30.0) == 300_000
    estimate.sending = 280_000
    estimate.on_loss(0.0, 31.0)
    assert estimate.value(31.0) == 324_000, "sent near it, nothing lost: it grows"


def test_no_probe_and_no_step_up_while_his_round_trips_show_a_standing_queue() -> None:
    """The lab's ``3g`` subscriber (400 kbit/s down, 200 up, 150 ms, 2 % lost; a camera and a
    voice, 330-420 kbit/s on the wire), as the SFU's log showed it: his own uplink's queue full
    (his microphone in it), the pings' answers waiting 300 ms there or dropped — the least round
    trip 451 ms and most pings unanswered, so no answered one ever rose over the least —, his
    REMB at 185-240 kbit/s. Nothing counted as a queue: the 403 kbit/s an early probe showed
    stayed his estimate, RED for his voice was added on top, and his link's queue dropped 129
    packets before a 35 % loss report made him audio-only. Now pings lost one after another are
    a queue: a REMB under what is sent beside it is congestion (his estimate falls to it, RED
    goes), nothing probes and nothing steps up. A queue of round trips that stood (four answered
    in a row over 1.5 s, each 100 ms over the least) is one too; not one late answer."""
    sending = 400_000.0
    wanted = 430_000.0

    def meeting_round(estimate: DownlinkEstimate, now: float) -> float | None:
        # As ``Participant._allocate`` does: a REMB under 85 % of what is sent calls congested().
        estimate.sending = sending
        if estimate.remb is not None and estimate.remb < 0.85 * sending:
            estimate.congested(now)
        return estimate.round(now, wanted)

    estimate = DownlinkEstimate(startup=False, initial=300_000, delay_since=0.0)
    estimate.proven = estimate.loss_based = 403_000  # what the early probe showed
    estimate.on_delay(0.475, 0.5, sent=0.0)
    estimate.on_delay(0.451, 1.0, sent=0.55)
    for tick in range(3, 30):  # his pings go unanswered, his REMB says ~190 kbit/s
        now = tick * 0.5
        if tick % 2:
            estimate.on_delay(estimate.ping_timeout, now, sent=now - 1.0)
        estimate.on_remb(190_000, now)
        assert meeting_round(estimate, now) is None and estimate.padding(now) is None, f"a probe at {now} s"
    assert estimate.standing_queue(14.5)
    assert estimate.value(14.5) == 190_000, "his REMB beside a queue: congestion"
    assert allocate(estimate.value(14.5), [AudioDemand(key="v", rank=(0,), rate=140_000, plain=83_000)], []).red is False
    # Answered again, back at their least: no queue; probes come back after the usual calm.
    for tick in range(30, 40):
        now = tick * 0.5
        estimate.on_delay(0.16, now, sent=now - 0.16)
        estimate.on_remb(190_000, now)
    assert not estimate.standing_queue(19.5)

    # Round trips that stand 300 ms over their least, REMB under what is sent: no probe, and an
    # estimate that probes had raised does not step up over what is sent.
    estimate = DownlinkEstimate(startup=False, initial=300_000, delay_since=0.0)
    estimate.on_delay(0.15, 0.15, sent=0.0)
    estimate.on_remb(350_000, 0.15)  # under what is sent, over 85 % of it: congested() is not called
    estimate.proven = estimate.loss_based = 600_000
    estimate.sending = sending
    for tick in range(1, 9):
        now = tick * 0.5
        estimate.on_delay(0.45, now, sent=now - 0.45)
        estimate.on_remb(350_000, now)
        if estimate.standing_queue(now):
            assert estimate.value(now) <= sending, "no step-up on a standing queue"
            assert meeting_round(estimate, now) is None
    assert estimate.standing_queue(4.0) and estimate.probes == 0
    # One late answer is not a queue: a probe starts.
    estimate = DownlinkEstimate(startup=False, initial=300_000, delay_since=0.0)
    estimate.on_delay(0.15, 0.15, sent=0.0)
    assert estimate.round(0.2, wanted) is None
    estimate.on_delay(0.45, 2.0, sent=1.55)
    estimate.on_remb(350_000, 2.0)
    estimate.on_delay(0.16, 2.4, sent=2.24)
    assert not estimate.standing_queue(2.5) and meeting_round(estimate, 2.5) is not None


def test_a_publishers_remb_does_not_climb_over_a_camera_that_sends_almost_nothing() -> None:
    """The REMB a video publisher is sent climbs 8 % a second while his uplink loses under 2 %,
    so that his browser leaves its 300 kbit/s start and starts its top layer. For a camera
    turned off as a disabled track (black frames, 5 kbit/s: the lab's 3G subscriber's page) it
    climbed 136 -> 342 kbit/s in 15 s on his 200 kbit/s uplink, which his browser may pad and
    probe up to: his uplink dropped 1,000-1,900 packets a run, his NACKs, reports and ping
    answers queued 300 ms in it. A camera sending under 50 kbit/s is held at 1.5 times what
    arrives, 100 kbit/s at least; a camera that sends climbs as before, also after being off."""
    from signaling.sfu.allocation import publisher_remb

    remb = None
    for _ in range(30):
        remb = publisher_remb(remb, arriving=5_000, loss=0.0, cap=2_500_000)
    assert remb == 100_000
    arriving = 120_000.0  # turned on again: his browser starts under the REMB and climbs with it
    for _ in range(30):
        remb = publisher_remb(remb, arriving=arriving, loss=0.0, cap=2_500_000)
        arriving = min(0.95 * remb, 1_850_000)
    assert remb == 2_500_000
    assert publisher_remb(2_500_000, arriving=1_000_000, loss=0.2, cap=2_500_000) == 900_000, "loss: what arrives less half"
    assert publisher_remb(2_000_000, arriving=1_000_000, loss=0.05, cap=2_500_000) == 2_000_000, "held in between"
    assert publisher_remb(None, arriving=5_000, loss=0.0, cap=2_500_000, camera=False) == 2_500_000, "a still screen may burst"


def test_no_red_for_his_voices_while_his_link_is_full_and_for_a_while_after() -> None:
    """The lab's ``3g`` subscriber: a 250 kbit/s camera and an 85 kbit/s voice on a 400 kbit/s
    link. With RED (another 60 kbit/s) the link was full: its queue dropped video, every drop a
    NACK and a retransmission into the same queue (232 kB of retransmissions in a 40 s run, a
    third of the video), the picture's jitter buffer at 0.6-1 s and the lip sync behind it.
    Redundancy against loss is no help on a link whose loss is our own sending: while a queue
    stands, and ``red_queue_hold`` seconds after it last stood, his voices go as plain Opus."""
    estimate = DownlinkEstimate(startup=False, initial=300_000, delay_since=0.0)
    estimate.sending = 400_000
    estimate.on_delay(0.15, 0.15, sent=0.0)
    estimate.on_remb(350_000, 0.15)
    assert estimate.red_allowed(0.2)
    voices = [AudioDemand(key="v", rank=(0,), rate=140_000, plain=85_000)]
    for tick in range(1, 9):  # his round trips stand 300 ms over their least
        now = tick * 0.5
        estimate.on_delay(0.45, now, sent=now - 0.45)
        estimate.on_remb(350_000, now)
        estimate.red_allowed(now)
    assert estimate.standing_queue(4.0) and not estimate.red_allowed(4.0)
    plain = allocate(600_000, voices, [], red_allowed=False)
    assert not plain.red and plain.cost == 85_000
    assert allocate(600_000, voices, []).red, "a link with room takes RED"
    for tick in range(9, 60):  # answered at their least again: the queue is gone
        now = tick * 0.5
        estimate.on_delay(0.16, now, sent=now - 0.16)
        estimate.on_remb(450_000, now)
        assert not estimate.standing_queue(now)
        assert estimate.red_allowed(now) is (now - 4.0 > estimate.red_queue_hold), f"at {now} s"


def test_red_only_where_the_voices_and_the_first_video_leave_room_on_his_link() -> None:
    """The lab's ``3g`` subscriber once more: after a probe held at 398 kbit/s on his 400 kbit/s
    link, his voice with RED (100 kbit/s on the wire) and the 262 kbit/s camera came to 362
    kbit/s, "under" the estimate; with RTCP, pings and retransmissions the link was full and his
    queue stood again. RED's redundancy is a luxury: it goes only where the voices with
    it and the first video's lowest layer leave ``RED_ROOM`` of the estimate free — judged on the
    estimate, not on the loss-based figure that keeps the first video (which creeps far over
    the link when nothing is lost)."""
    voice = [AudioDemand(key="v", rank=(0,), rate=100_000, plain=50_000)]
    camera = [video("cam", 0, layers=(262_000,))]
    full = allocate(397_608, voice, camera, loss_budget=700_000)
    assert full.layers == {"cam": 0} and not full.red and full.cost == 312_000
    assert allocate(600_000, voice, camera).red, "a link with room takes RED"


def test_no_probe_while_he_is_sent_all_he_wants() -> None:
    """His camera is kept on the loss-based figure while his REMB says less (the first video
    answers to loss only): everything he wants arrives already. A probe could only pad a full
    link (the lab's ``3g`` subscriber was padded five times a run, 22 packets each, into a
    standing queue): none starts. One starts as before when more is wanted than is sent."""
    estimate = DownlinkEstimate(startup=False, initial=300_000, delay_since=0.0)
    estimate.on_delay(0.16, 0.2, sent=0.04)
    estimate.on_remb(200_000, 0.2)
    estimate.sending = 340_000
    for tick in range(1, 40):
        now = tick * 0.5
        estimate.on_delay(0.17, now, sent=now - 0.17)
        estimate.on_remb(200_000, now)
        assert estimate.round(now, wanted=312_000) is None, f"a probe at {now} s"
    assert estimate.probes == 0
    assert estimate.round(20.0, wanted=900_000) is not None, "a wider want probes"


def test_probes_look_for_video_not_for_reds_redundancy_beside_a_video() -> None:
    """What probes look for: beside a video, the voices as plain Opus (RED takes the room his
    REMB shows, never padding); a listener with no video, his voices with RED."""
    voice = [AudioDemand(key="v", rank=(0,), rate=100_000, plain=50_000)]
    camera = [video("cam", 0, layers=(150_000, 500_000))]
    assert probe_wanted(voice, camera) == 550_000
    assert probe_wanted(voice, []) == 100_000
