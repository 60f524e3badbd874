"""How fast a subscriber's estimate climbs from its 300 kbit/s guess, on a simulated link.

The link is a bottleneck of ``capacity`` bit/s with a queue (its delay is on every round trip,
what overflows it is lost), driven by what the allocator spends and the probes' padding; the
estimate sees it as the SFU does: a round trip each allocation round (every 0.1 s during a
probe), a receiver report each second. Rounds are counted, not timed.
"""

from __future__ import annotations

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
