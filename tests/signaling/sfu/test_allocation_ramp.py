"""How fast a subscriber's estimate climbs from its 300 kbit/s guess, on a simulated link.

The link is a bottleneck of ``capacity`` bit/s with a queue (its delay is on every round trip,
what overflows it is lost), driven by what the allocator spends and the probes' padding; the
estimate sees it as the SFU does: a round trip each allocation round (every 0.1 s during a
probe), a receiver report each second. Rounds are counted, not timed.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from signaling.sfu.allocation import AudioDemand, DownlinkEstimate, VideoDemand, allocate

CAMERAS = 4
LAYERS = (150_000.0, 500_000.0)
VOICES = [AudioDemand(key=f"voice{i}", rank=(i,), rate=40_000.0) for i in range(7)]
VIDEOS = [VideoDemand(key=f"camera{i}", rank=(4, -float(i)), layers=LAYERS) for i in range(CAMERAS)]
#: Every camera at its top layer beside the voices: what he wants.
WANTED = allocate(float("inf"), VOICES, VIDEOS).cost
#: An allocation round (s), as ``SfuConfig.allocation_interval``; 0.1 s while probing.
ROUND = 0.5
TICK = 0.1


@dataclass
class Link:
    capacity: float
    rtt: float
    #: The most the bottleneck queues (s of its capacity); what overflows is lost.
    buffer: float = 0.5
    #: Added to every round trip after ``busy_from`` s: a busy server's event loop, not his link.
    busy: float = 0.0
    busy_from: float = 1.0
    queued: float = 0.0  # bits
    sent: float = 0.0
    lost: float = 0.0
    audio_lost: float = 0.0
    worst_delay: float = 0.0

    def carry(self, rate: float, audio: float, dt: float) -> None:
        self.queued = max(0.0, self.queued + (rate - self.capacity) * dt)
        overflow = max(0.0, self.queued - self.buffer * self.capacity)
        self.queued -= overflow
        self.sent += rate * dt
        self.lost += overflow
        self.audio_lost += overflow * audio / rate if rate else 0.0
        self.worst_delay = max(self.worst_delay, self.queued / self.capacity)

    def round_trip(self, now: float) -> float:
        return self.rtt + self.queued / self.capacity + (self.busy if now >= self.busy_from else 0.0)


def run(link: Link, seconds: float) -> tuple[DownlinkEstimate, list[tuple[float, float, bool, bool]]]:
    """The estimate and, per tick: (time, estimate, audio-only, the first voice forwarded)."""
    estimate = DownlinkEstimate(delay_since=0.0)
    trace = []
    now, next_round, next_report, reported = 0.0, 0.0, 1.0, (0.0, 0.0)
    decision = allocate(estimate.value(0.0), VOICES, VIDEOS, loss_budget=estimate.loss_value())
    probe: float | None = None
    while now < seconds:
        if now >= next_round - 1e-9:
            estimate.on_delay(link.round_trip(now), now + link.round_trip(now), sent=now)
            probe = estimate.round(now, WANTED)
            decision = allocate(estimate.value(now), VOICES, VIDEOS, loss_budget=estimate.loss_value())
            estimate.sending = decision.cost
            next_round = now + (TICK if estimate.probing else ROUND)
        audio = sum(v.rate for v in VOICES if decision.audio[v.key])
        link.carry(max(decision.cost, probe or 0.0), audio, TICK)
        now = round(now + TICK, 6)
        if now >= next_report - 1e-9:
            sent, lost = link.sent - reported[0], link.lost - reported[1]
            reported = (link.sent, link.lost)
            estimate.on_loss(lost / sent if sent else 0.0, now)
            next_report = now + 1.0
        first_voice = decision.audio[VOICES[0].key]
        trace.append((now, estimate.value(now), decision.audio_only, first_voice))
    return estimate, trace


def seconds_to(trace: list[tuple[float, float, bool, bool]], rate: float) -> float | None:
    return next((at for at, value, _, _ in trace if value >= rate), None)


def test_on_a_clean_link_the_estimate_reaches_four_cameras_within_seconds() -> None:
    link = Link(capacity=5_000_000, rtt=0.01)
    _, trace = run(link, 20.0)
    reached = seconds_to(trace, WANTED)
    assert reached is not None and reached <= 5.0, f"four cameras' rate ({WANTED:.0f}) reached at {reached} s"


def test_a_busy_server_loop_on_every_round_trip_does_not_fail_every_probe() -> None:
    """A round trip 150 ms longer than at the join, for good (the event loop of a 30-participant
    meeting, not his link): probes judged against the join's round trip all failed, and only the
    8 % steps of loss-free reports moved the estimate."""
    link = Link(capacity=5_000_000, rtt=0.01, busy=0.15, busy_from=0.3)
    estimate, trace = run(link, 20.0)
    reached = seconds_to(trace, WANTED)
    assert reached is not None and reached <= 6.0, f"reached at {reached} s, {estimate.probes_failed} probes failed"


def test_on_a_narrow_link_probes_back_off_and_audio_comes_first() -> None:
    """300 kbit/s, 150 ms: the first probe (the usual ×1.5, not the start's doubling: that one
    queued twice as long there) queues for a moment and fails,
    nothing overflows, the first voice is never paused; then probes back off."""
    link = Link(capacity=300_000, rtt=0.15)
    estimate, trace = run(link, 3.0)
    assert estimate.probes_failed == 1 and not estimate.startup
    assert link.lost == 0.0, "the start's probe never overflows his link's queue"
    assert link.worst_delay < 0.4, f"the queue reached {link.worst_delay:.2f} s"
    # What the probe tried was taken back (only loss-free reports' 8 % steps remain).
    assert trace[-1][1] < 1.5 * link.capacity, "at 3 s he is back near his link"
    assert all(first_voice for _, _, _, first_voice in trace), "the first voice is never paused"
    link = Link(capacity=300_000, rtt=0.15)
    estimate, trace = run(link, 30.0)
    assert all(first_voice for _, _, _, first_voice in trace)
    assert estimate.probes <= 8, "failed probes back off"


# ---------------------------------------------------------------- the lab's narrow link, in time
#
# ``run`` above hands each round trip to the estimate at once. Here, as in the SFU, a STUN ping
# waits for its answer before the next (every 0.5 s, every 0.1 s while a probe runs) and the
# answer comes back one round trip later, through the queue as it was when the ping left; the
# padding is what the SFU's pacer sends every 20 ms. The link is the lab's ``narrow`` one
# (bench/meeting_adapt.py): 300 kbit/s, 150 ms, a drop-tail queue of 300 ms, seven 76 kbit/s
# voices (Opus in RED on the wire) and seven 500 kbit/s cameras of one layer.

LAB_VOICES = [AudioDemand(key=f"voice{i}", rank=(i,), rate=76_000.0) for i in range(7)]
LAB_VIDEOS = [VideoDemand(key=f"camera{i}", rank=(4, -float(i)), layers=(500_000.0,)) for i in range(7)]
LAB_WANTED = allocate(float("inf"), LAB_VOICES, LAB_VIDEOS).cost
PAD_TICK = 0.02


@dataclass
class Timed:
    """What one subscriber's link did (``run_in_time``)."""

    estimate: DownlinkEstimate
    audio_sent: float = 0.0
    audio_lost: float = 0.0
    worst_queue: float = 0.0
    #: (time, estimate) at each allocation round.
    trace: list[tuple[float, float]] | None = None
    #: When a camera was first sent to him after ``rise`` (``None``: not within ``seconds``).
    camera_at: float | None = None


def run_in_time(
    capacity: float,
    rtt: float,
    seconds: float,
    *,
    buffer: float = 0.3,
    uplink: tuple[float, float, float] | None = None,
    spikes: tuple[float, ...] = (),
    count_from: float = 5.0,
    late: float = 0.0,
    seed: int = 0,
    rise: tuple[float, float] | None = None,
    debug: list | None = None,
) -> Timed:
    """His estimate and link over ``seconds`` after his join (see above). ``uplink``: (from, to,
    seconds) his own uplink's queue on every round trip meanwhile (his camera filling it, as in
    the lab); ``spikes``: times at which the server's loop answers one ping 150 ms late;
    ``late``: the mean (s) of a loaded loop's lateness on every ping (exponential); ``rise``:
    (at, capacity) his link rises to ``capacity`` at ``at`` s (the lab's ``recover``), and
    ``camera_at`` says when a camera was first sent to him after it. The rounds pass his
    audio-only state on, as ``Participant._allocate`` does. Audio lost is counted from
    ``count_from`` (the bench's window)."""
    estimate = DownlinkEstimate(delay_since=0.0)
    timed = Timed(estimate, trace=[])
    queued = 0.0  # bits
    now = 0.0
    next_round = 0.0
    next_report, reported_sent, reported_lost = 1.0, 0.0, 0.0
    sent_total = lost_total = 0.0
    ping: tuple[float, float] | None = None  # (sent, back)
    next_ping = 0.0
    decision = allocate(estimate.value(0.0), LAB_VOICES, LAB_VIDEOS, loss_budget=estimate.loss_value())
    pending_spikes = list(spikes)
    rng = random.Random(seed)
    while now < seconds:
        if rise is not None and now >= rise[0] - 1e-9:
            capacity = rise[1]
        if now >= next_round - 1e-9:
            estimate.round(now, LAB_WANTED, audio_only=decision.audio_only)
            decision = allocate(
                estimate.value(now), LAB_VOICES, LAB_VIDEOS, audio_only=decision.audio_only,
                loss_budget=estimate.loss_value(),
            )
            if rise is not None and now >= rise[0] and timed.camera_at is None and not decision.audio_only:
                timed.camera_at = now
            estimate.sending = decision.cost
            next_round = now + ROUND
            assert timed.trace is not None
            timed.trace.append((now, estimate.value(now)))
        if ping is None and now >= next_ping - 1e-9:
            extra = uplink[2] if uplink and uplink[0] <= now < uplink[1] else 0.0
            if pending_spikes and now >= pending_spikes[0]:
                extra += 0.15
                pending_spikes.pop(0)
            if late:
                extra += rng.expovariate(1 / late)
            ping = (now, now + min(1.0, rtt + queued / capacity + extra))
        if ping is not None and now >= ping[1] - 1e-9:
            estimate.on_delay(ping[1] - ping[0], now, sent=ping[0])
            next_ping = ping[0] + (0.1 if estimate.probing else ROUND)
            ping = None
        padding = estimate.padding(now)  # the SFU's pacer asks at each of its ticks
        audio = sum(v.rate for v in LAB_VOICES if decision.audio[v.key])
        rate = max(decision.cost, padding or 0.0)
        queued = max(0.0, queued + (rate - capacity) * PAD_TICK)
        overflow = max(0.0, queued - buffer * capacity)
        queued -= overflow
        sent_total += rate * PAD_TICK
        lost_total += overflow
        if now >= count_from:
            timed.audio_sent += audio * PAD_TICK
            timed.audio_lost += overflow * audio / rate if rate else 0.0
            timed.worst_queue = max(timed.worst_queue, queued / capacity)
        now = round(now + PAD_TICK, 6)
        if now >= next_report - 1e-9:
            sent, lost = sent_total - reported_sent, lost_total - reported_lost
            reported_sent, reported_lost = sent_total, lost_total
            estimate.on_loss(lost / sent if sent else 0.0, now)
            # A browser reports every second about video, every 5 s about audio alone.
            next_report = now + (1.0 if any(layer is not None for layer in decision.layers.values()) else 5.0)
        if debug is not None and (overflow or now % 0.5 < 1e-6):
            debug.append((now, round(estimate.value(now)), padding, estimate.probing, round(queued / capacity, 3),
                          round(overflow), decision.audio_only))
    return timed


def test_on_the_labs_narrow_link_no_probe_overflows_his_queue() -> None:
    """The lab's narrow case: after the first seconds (the first camera tried, then audio only),
    probes go on every few seconds and each must stop before the 300 ms queue overflows — his
    voices are in it. Also while his own camera fills his uplink (round trips 300 ms longer, some
    pings lost): a probe judged against such a round trip saw no growth and ran on a full queue."""
    for uplink in (None, (10.0, 19.0, 0.3)):
        timed = run_in_time(300_000, 0.15, 40.0, uplink=uplink)
        lost = timed.audio_lost / timed.audio_sent
        assert lost < 0.002, f"uplink {uplink}: {100 * lost:.2f} % of his audio lost, queue {timed.worst_queue:.2f} s"
        assert timed.estimate.probes >= 3, "probes went on"


def test_on_the_labs_narrow_link_he_is_audio_only_from_his_first_round() -> None:
    """The lab's ``narrow`` join: a 500 kbit/s camera on his 300 kbit/s link is not sent before a
    probe showed room for it, so he is audio-only from his first allocation round and nothing of
    his voices is lost from the start: the camera sent on the guess overflowed his link's queue
    until loss said so (in the lab, audio-only 1.9-4.2 s after his join). His probes then fail
    as before (each queues for a moment, never past the 300 ms queue)."""
    debug: list = []
    timed = run_in_time(300_000, 0.15, 20.0, count_from=0.0, debug=debug)
    rounds = [entry for entry in debug if entry[0] % 0.5 < 1e-6]
    assert rounds and all(audio_only for *_, audio_only in rounds), "audio only from the first round"
    assert timed.audio_lost == 0.0, f"{timed.audio_lost:.0f} bits of his voices lost"
    assert timed.worst_queue < 0.3, f"the queue reached {timed.worst_queue:.2f} s"
    assert timed.estimate.probes >= 3 and timed.estimate.probes_failed >= 2


def test_on_a_clean_link_a_camera_over_the_guess_comes_after_the_first_probes() -> None:
    """What holding such a camera back costs on a link that carries it: it waits for the start's
    probes (the first after 2 calm seconds, then doubling), about 4 s simulated, not 0.5."""
    debug: list = []
    run_in_time(5_000_000, 0.02, 10.0, debug=debug)
    shown = next((at for at, *_, audio_only in debug if not audio_only), None)
    assert shown is not None and shown <= 4.5, f"the first camera at {shown} s"


def test_a_busy_loops_late_answers_do_not_slow_the_climb() -> None:
    """A probe's padding now stops at the first late round trip; on a clean link a busy server
    loop's late answer (one ping in three or four 150 ms late) must not stop the climb: the next
    clean round trip lets the padding go on."""
    for spikes in ((), tuple(1.3 * n for n in range(1, 40)), tuple(3.7 * n for n in range(1, 15))):
        timed = run_in_time(5_000_000, 0.02, 20.0, spikes=spikes)
        assert timed.trace is not None
        reached = next((at for at, value in timed.trace if value >= LAB_WANTED), None)
        assert reached is not None and reached <= 5.0, f"{len(spikes)} late answers: reached at {reached} s"
        assert timed.estimate.probes_failed == 0


def test_a_loaded_loops_late_answers_do_not_stall_the_climb() -> None:
    """Every ping answered late by a loaded loop (100 ms on average, exponential; the assembly at
    30 on a machine at load 13): a clean link's climb to 2.5 Mbit/s still comes in seconds. Voiding
    a probe on one late answer after its end, as on a link that lost, took 20-31 s here (56 s to
    four cameras in the lab's assembly)."""
    reached = []
    for seed in range(6):
        timed = run_in_time(5_000_000, 0.02, 40.0, late=0.1, seed=seed)
        assert timed.trace is not None
        reached.append(next((at for at, value in timed.trace if value >= 2_500_000), 40.0))
    assert statistics.median(reached) <= 15.0, reached


# ---------------------------------------------------------------- the lab's lossy radio link
#
# The lab's ``lossy`` profile: no rate limit, 100 ms round trip, 5 % of the packets lost each way,
# nothing ever queued. What Chromium says there: its REMB dips now and then below what arrives
# (its estimator reads the losses' gaps as delay) with no queue anywhere; one STUN ping in ten is
# not answered (lost on the way out or back: the SFU sends it once); its receiver reports count 5 %
# lost per stream, each judged over the second's packets of that stream.

RADIO_VOICES = [AudioDemand(key="speaker", rank=(0,), rate=76_000.0)] + [
    AudioDemand(key=f"silent{i}", rank=(1, i), rate=6_000.0) for i in range(3)
]
RADIO_CAMERAS = [VideoDemand(key=f"camera{i}", rank=(4, -float(i)), layers=(500_000.0,)) for i in range(4)]
RADIO_WANTED = allocate(float("inf"), RADIO_VOICES, RADIO_CAMERAS).cost
#: A packet's size on the wire (bits), for the receiver reports' counts.
PACKET = 1_000 * 8


def run_radio(
    seconds: float, *, seed: int, loss: float = 0.05, rtt: float = 0.1, late: float = 0.0
) -> tuple[DownlinkEstimate, list]:
    """His estimate on the lossy radio link; per allocation round: (time, estimate, cameras paused).
    ``late``: the mean (s) of a loaded loop's lateness on every ping's answer (exponential)."""
    rng = random.Random(seed)
    loop = random.Random(seed + 1000)
    estimate = DownlinkEstimate(delay_since=0.0)
    trace: list[tuple[float, float, int]] = []
    decision = allocate(estimate.value(0.0), RADIO_VOICES, RADIO_CAMERAS, loss_budget=estimate.loss_value())
    now, next_round, next_report = 0.0, 0.0, 1.0
    ping: tuple[float, float, float] | None = None  # (sent, back, what the SFU's ping reports)
    next_ping = 0.0
    # Per stream: packets sent (the extended highest sequence number) and lost, cumulative.
    counters: dict[int, list[float]] = {}
    arrived = 0.0  # bits that reached him since the last REMB
    remb: float | None = None
    while now < seconds:
        if now >= next_round - 1e-9:
            remb_now = estimate.remb if estimate.remb_at is not None and now - estimate.remb_at <= 5.0 else None
            if remb_now is not None and estimate.sending and remb_now < 0.85 * estimate.sending:
                estimate.congested(now)  # as the SFU's allocation round does (``meeting._allocate``)
            estimate.round(now, RADIO_WANTED)
            decision = allocate(estimate.value(now), RADIO_VOICES, RADIO_CAMERAS, loss_budget=estimate.loss_value())
            estimate.sending = decision.cost
            paused = sum(layer is None for layer in decision.layers.values())
            trace.append((now, estimate.value(now), paused))
            next_round = now + ROUND
        if ping is None and now >= next_ping - 1e-9:
            answered = rng.random() >= loss and rng.random() >= loss
            back = rtt + rng.uniform(-0.005, 0.005) if answered else estimate.ping_timeout
            if answered and late:
                back = min(estimate.ping_timeout, back + loop.expovariate(1 / late))
            ping = (now, now + back, back)
        if ping is not None and now >= ping[1] - 1e-9:
            estimate.on_delay(ping[2], now, sent=ping[0])
            next_ping = ping[0] + (0.1 if estimate.probing else ROUND)
            ping = None
        rate = max(decision.cost, estimate.padding(now) or 0.0)
        arrived += rate * (1 - loss) * PAD_TICK
        for ssrc, (key, stream_rate) in enumerate(
            [(v.key, v.rate) for v in RADIO_VOICES] + [(c.key, c.layers[0] or 0.0) for c in RADIO_CAMERAS]
        ):
            on = decision.audio[key] if key in decision.audio else decision.layers[key] is not None
            if on:
                packets = stream_rate * PAD_TICK / PACKET
                sent_lost = counters.setdefault(ssrc, [0.0, 0.0])
                sent_lost[0] += packets
                sent_lost[1] += sum(rng.random() < loss for _ in range(int(packets) + (rng.random() < packets % 1)))
        now = round(now + PAD_TICK, 6)
        if now >= next_report - 1e-9:
            for ssrc, (sent, lost) in counters.items():
                estimate.on_report(ssrc, int(sent), int(lost), now)
            # His REMB: about 1.5 times what arrives, climbing 8 % a second, and one second in four
            # a dip under what arrives (the gaps of lost packets read as delay), no queue anywhere.
            received = arrived
            arrived = 0.0
            if rng.random() < 0.25:
                remb = 0.8 * received
            else:
                remb = min(1.5 * received, 1.08 * remb) if remb is not None else received
            estimate.on_remb(max(remb, 50_000.0), now)
            next_report = now + 1.0
    return estimate, trace


def test_on_a_lossy_radio_link_the_cameras_are_not_paused() -> None:
    """The lab's ``lossy`` link (5 % lost each way, no queue): once the four cameras are on, none
    is paused again. Chromium's REMB there dips below what arrives with no queue anywhere, and a
    cut on each dip (forgetting what probes had shown) paused cameras every few seconds (each
    resume a keyframe, each pause a freeze); unanswered pings failed the probes that would have
    brought them back, and a 5 % reading of 10 % over one stream's second cut the estimate."""
    for seed in range(8):
        estimate, trace = run_radio(60.0, seed=seed)
        assert estimate.probes_failed <= 1, f"seed {seed}: {estimate.probes_failed} probes failed on a link with room"
        on = next((at for at, _, paused in trace if paused == 0), None)
        assert on is not None and on <= 15.0, f"seed {seed}: every camera on at {on} s"
        pauses = [(at, round(value)) for at, value, paused in trace if at >= on and paused]
        assert not pauses, f"seed {seed}: cameras paused after {on} s at {pauses[:5]} ({len(pauses)} rounds)"
        assert min(value for at, value, _ in trace if at >= on) >= RADIO_WANTED * 0.95


def test_on_a_lossy_radio_link_a_loaded_loops_late_answers_do_not_pause_the_cameras() -> None:
    """The same link, the server's loop answering every ping late by 50 ms on average
    (exponential: one answer in seven more than 100 ms late), as on the lab's machine at load
    5-9. One late answer counted as a queue for 2 s, and a REMB dip within them (one second in
    four on that link) as congestion: what probes had shown was forgotten and cameras paused —
    in the lab a camera paused and came back 6 s later (a 6 s freeze). A falling REMB is
    congestion only beside a queue that stood: four answered round trips in a row over 1.5 s."""
    total_paused = 0
    for seed in range(8):
        _, trace = run_radio(60.0, seed=seed, late=0.05)
        on = next((at for at, _, paused in trace if paused == 0), None)
        # (Probes still fail now and then on two late answers in a row: the climb takes longer.)
        assert on is not None and on <= 40.0, f"seed {seed}: every camera on at {on} s"
        total_paused += sum(1 for at, _, paused in trace if at >= on and paused)
    assert total_paused <= 20, f"{total_paused} rounds with a camera paused in 8 minutes"


def test_an_audio_only_subscribers_link_that_rises_brings_a_camera_within_seconds() -> None:
    """The lab's ``recover``: the narrow link's subscriber, audio-only for his link after his
    first probes failed, sees it rise to 2 Mbit/s. Nothing but a probe can tell him (no video,
    no REMB, nothing lost, the same round trip), and after three failed probes the next waited
    up to 10 s (``max_probe_wait`` 8 s and ``probe_after`` 2 s), then three held probes of 1.5
    times each, about 2 s apiece, came before a camera: 6.75-17.25 s from the rise over the rises
    below (median 10.75), and 10.02, 10.27 and 9.71 s to a decoded camera in the lab. His voices
    must not pay for probing more often: under 0.2 % of them lost before the rise."""
    took = []
    for quarter in range(0, 81, 2):
        at = 10.0 + 0.25 * quarter
        timed = run_in_time(300_000, 0.15, at + 20.0, rise=(at, 2_000_000))
        took.append(20.0 if timed.camera_at is None else timed.camera_at - at)
        narrow = run_in_time(300_000, 0.15, at)
        lost = narrow.audio_lost / narrow.audio_sent
        assert lost < 0.002, f"rise at {at} s: {100 * lost:.2f} % of his audio lost before it"
    assert max(took) < 9.0, f"from the rise to a camera: worst {max(took):.2f} s, median {statistics.median(took):.2f} s"
