"""What each subscriber can receive: his bandwidth estimate, and how it is spent.

Pure logic, no aiortc, no clock of its own (times are passed in), so every
rule is tested alone (``tests/signaling/sfu/test_allocation.py``);
:mod:`.meeting` feeds it and applies its answers to the subscriptions.

**The estimate** (:class:`DownlinkEstimate`) of one subscriber's downlink is
the smaller of two figures:

* what his browser says it can take: REMB (receiver estimated maximum
  bitrate, negotiated as ``goog-remb`` on every video m-line), a delay-based
  estimate; it is trusted for ``remb_ttl`` seconds;
* a loss-based figure from his receiver reports: above ``high_loss`` (10 %)
  lost, it drops to what was sent times ``1 - loss/2``; below ``low_loss``
  (2 %) it grows by 8 % a report; in between it holds.

A REMB estimator only rises to about 1.5 times what it receives, so a
subscriber held at a low layer (or audio-only) could never show room for
more: **probe-up** — when he would receive more than his estimate allows,
after ``probe_after`` calm seconds (no loss, REMB not falling), the SFU pads
his connection up to a target (twice the estimate, or 300 kbit/s more, at
most a little above what he wants) with padding-only RTX packets for
``probe_duration``; if neither loss nor a falling REMB said no, his link is
taken to carry the target (``proven``) and the allocator spends it; if one
did, the probe stops at once and the next waits twice as long (up to a
minute). A tap on "try video again" probes at once.

**The allocation** (:func:`allocate`) spends the estimate by priority:
audio first, always (it is never paused); then videos in priority order
(pinned, screen share, the active speaker, then by recent speech), each its
lowest layer while it fits, the others paused; then, in the same order, each
one up layer by layer while it fits (only the first ``full_quality`` videos
may take the top layer: small tiles need no 720p).

**The first video's lowest layer answers to loss only** (as Jitsi's
videobridge oversends the on-stage video): it is kept while it fits in the
loss-based figure, even when REMB says less. A browser's REMB rises only to
about 1.5 times what arrives and starts from what the first second brought,
and over TURN/TCP or TLS the queueing of the TCP path looks like congestion
to its delay detector: on REMB alone a subscriber would go audio-only at the
first dip and, receiving only audio, his REMB could never show room for
video again (probes judged by that same REMB fail over such a path) — a
relayed participant who never sees anyone. When not even that layer fits
beside the audio in the loss-based figure (the link loses over 10 %), the
subscriber is **audio only (his connection)**, and stays so until it leaves
a clear margin (``resume_margin``) or he asks to try video again
(:meth:`DownlinkEstimate.retry`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class VideoDemand:
    """One video subscription as the allocator sees it.

    ``layers`` holds each layer's measured rate (bit/s), lowest first, ``None``
    for a layer the publisher does not send now; ``rank`` orders the videos
    (lower first): pinned, screen, active speaker, recent speech.
    """

    key: Hashable
    rank: tuple[int, float]
    layers: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class Allocation:
    """A layer per video (``None``: paused), and whether the subscriber is audio-only."""

    layers: dict[Hashable, int | None]
    audio_only: bool
    #: Bits per second the choice costs (audio included).
    cost: float


def allocate(
    budget: float,
    audio: float,
    videos: Sequence[VideoDemand],
    *,
    audio_only: bool = False,
    resume_margin: float = 1.3,
    full_quality: int = 2,
    loss_budget: float | None = None,
) -> Allocation:
    """Spend ``budget`` (bit/s) on ``audio`` (bit/s, always) and ``videos``, by priority.

    ``loss_budget`` (bit/s, the loss-based figure; ``None``: ``budget``) is
    what the first video's lowest layer must fit in beside the audio, even
    when ``budget`` is smaller; ``audio_only`` is the subscriber's current
    state: leaving it needs that layer times ``resume_margin`` to fit.
    """
    ordered = sorted(videos, key=lambda v: v.rank)
    chosen: dict[Hashable, int | None] = {v.key: None for v in ordered}
    spent = audio
    available = [[i for i, rate in enumerate(v.layers) if rate is not None] for v in ordered]
    candidates = [(v, layers) for v, layers in zip(ordered, available, strict=True) if layers]
    if not candidates:
        return Allocation(chosen, False, spent)
    first, first_layers = candidates[0]
    lowest = first.layers[first_layers[0]] or 0.0
    needed = lowest * (resume_margin if audio_only else 1.0)
    floor = budget if loss_budget is None else max(budget, loss_budget)
    if floor - spent < needed:
        return Allocation(chosen, True, spent)
    chosen[first.key] = first_layers[0]
    spent += lowest
    for video, layers in candidates[1:]:  # the lowest layer of each other, while it fits
        rate = video.layers[layers[0]] or 0.0
        if spent + rate <= budget:
            chosen[video.key] = layers[0]
            spent += rate
    for position, (video, layers) in enumerate(candidates):  # then up, in the same order
        current = chosen[video.key]
        if current is None:
            continue
        top = layers if position < full_quality else [i for i in layers if i < len(video.layers) - 1] or layers[:1]
        for layer in top:
            if layer <= current:
                continue
            extra = (video.layers[layer] or 0.0) - (video.layers[current] or 0.0)
            if spent + extra > budget:
                break
            spent += extra
            current = chosen[video.key] = layer
    return Allocation(chosen, False, spent)


@dataclass(slots=True)
class DownlinkEstimate:
    """One subscriber's downlink, from his REMB and receiver reports, with probes (see the module doc)."""

    initial: float = 800_000.0
    floor: float = 60_000.0
    ceiling: float = 20_000_000.0
    remb_ttl: float = 5.0
    high_loss: float = 0.10
    low_loss: float = 0.02
    #: Calm seconds before a probe (plus a back-off after failed ones).
    probe_after: float = 2.0
    #: How long a probe's padding runs before it is judged.
    probe_duration: float = 1.0
    remb: float | None = None
    remb_at: float | None = None
    loss_based: float = field(default=0.0)
    loss: float = 0.0
    #: What was sent to him lately (bit/s), set by the caller each round.
    sending: float = 0.0
    #: A rate a probe showed his link carries (bit/s), until REMB or loss say otherwise.
    proven: float = 0.0
    #: The probe in flight: its target (bit/s) and start; ``None`` when none.
    probe_target: float | None = None
    probe_started: float = 0.0
    probes: int = 0
    probes_failed: int = 0
    _calm_since: float | None = None
    _probe_wait: float = 0.0
    _retry: bool = False

    def __post_init__(self) -> None:
        if not self.loss_based:
            self.loss_based = self.initial

    def on_remb(self, bitrate: float, now: float) -> None:
        previous = self.remb if self.remb_at is not None and now - self.remb_at <= self.remb_ttl else None
        if previous is not None and bitrate < 0.9 * previous:
            self._congested(now)  # a REMB that falls: his estimator saw the delay grow
        self.remb, self.remb_at = float(bitrate), now

    def on_loss(self, fraction: float, now: float) -> None:
        """One receiver report's fraction lost (0..1) about a stream sent to him."""
        self.loss = fraction
        if fraction > self.high_loss:
            base = self.sending or self.loss_based
            self.loss_based = max(self.floor, base * (1 - fraction / 2))
            self._congested(now)
        elif fraction < self.low_loss:
            self.loss_based = min(self.ceiling, self.loss_based * 1.08)

    def value(self, now: float) -> float:
        """The estimate (bit/s) now."""
        delay_based = None
        if self.remb is not None and self.remb_at is not None and now - self.remb_at <= self.remb_ttl:
            delay_based = max(self.remb, self.proven)
        estimate = self.loss_based if delay_based is None else min(self.loss_based, delay_based)
        return max(self.floor, estimate)

    def loss_value(self) -> float:
        """The loss-based figure alone (bit/s): what the first video's lowest layer answers to."""
        return max(self.floor, self.loss_based)

    def retry(self) -> None:
        """The subscriber asked to try video again: the next round probes at once."""
        self._retry = True
        self._probe_wait = 0.0

    def congested(self, now: float) -> None:
        """The caller saw REMB below what is sent: forget what probes showed."""
        self._congested(now)

    def round(self, now: float, wanted: float) -> float | None:
        """One allocation round: judge the probe in flight; answer a probe target (bit/s) to pad
        up to from now on, or ``None`` (no probe). ``wanted`` is what the subscriber would
        receive with no limit."""
        if self._calm_since is None:
            self._calm_since = now
        if self.probe_target is not None:
            if now - self.probe_started < self.probe_duration:
                return self.probe_target
            # It held (a failure ends it at once): his link carries the target.
            self.proven = max(self.proven, self.probe_target)
            self.loss_based = max(self.loss_based, self.probe_target)
            self.probe_target = None
            self._probe_wait = 0.0
            self._calm_since = now - self.probe_after / 2  # climb on without a full wait
        estimate = self.value(now)
        if wanted <= estimate * 1.05:
            self._retry = False
            return None
        calm = self.loss < self.low_loss and now - self._calm_since >= self.probe_after + self._probe_wait
        if not (calm or self._retry):
            return None
        self._retry = False
        self.probe_target = min(wanted * 1.1, max(estimate * 2, estimate + 300_000.0), self.ceiling)
        self.probe_started = now
        self.probes += 1
        return self.probe_target

    @property
    def probing(self) -> bool:
        return self.probe_target is not None

    def _congested(self, now: float) -> None:
        self._calm_since = now
        self.proven = 0.0
        if self.probe_target is not None:
            self.probe_target = None
            self.probes_failed += 1
            self._probe_wait = min(60.0, max(2.0, self._probe_wait * 2))


def layer_name(layer: int | None, count: int) -> str:
    """"low" / "medium" / "high" for a layer of ``count``, "paused" for ``None``."""
    if layer is None:
        return "paused"
    if count <= 1:
        return "high"
    return ("low", "medium", "high")[min(2, math.floor(layer * 2 / (count - 1)))] if count > 2 else ("low", "high")[layer]
