"""What each subscriber can receive: his bandwidth estimate, and how it is spent.

Pure logic, no aiortc, no clock of its own (times are passed in), so every
rule is tested alone (``tests/signaling/sfu/test_allocation.py``);
:mod:`.meeting` feeds it and applies its answers to the subscriptions.

**The estimate** (:class:`DownlinkEstimate`) of one subscriber's downlink is
the smaller of two figures:

* what his browser says it can take: REMB (receiver estimated maximum
  bitrate, negotiated as ``goog-remb`` on every video m-line), a delay-based
  estimate; it is trusted for ``remb_ttl`` seconds. A REMB that falls (or
  stays under what is sent) is congestion only if our own round trips
  showed a queue within ``remb_queue_window`` (2 s) — or none are measured:
  on a lossy radio link Chromium's REMB dips under what arrives with no queue
  anywhere (the lab's 5 %-loss link: every few seconds), and each dip forgot
  what probes had shown and paused cameras. A queue is one that stood: four
  answered round trips in a row over ``queue_after`` (1.5 s) each queueing,
  or ``unanswered_queue`` (4) pings in a row not answered — one late answer
  is a loaded server loop's (at load 5-9, one in seven or so);
* a loss-based figure from his receiver reports: the packets lost over
  all the streams sent to him (each report's cumulative counters, summed
  until at least ``loss_packets`` were expected, so a paused stream's empty
  report weighs nothing; a reading just over ``high_loss`` is judged over more
  packets, up to ``loss_packets_max``, unless it is clearly over); above ``high_loss`` (10 %) lost, it drops to what
  was sent times ``1 - loss/2`` — if what was sent was near the estimate (or
  a probe ran): loss while far less is sent is a lossy link, not a full one; below ``low_loss`` (2 %) it grows by 8 %
  — likewise only if what was sent was near it: nothing lost while far less is
  sent says nothing of more (an audio-only subscriber's figure crept 8 % a
  report over his 300 kbit/s link, and each probe, 1.5 times it, queued
  faster than any round trip could tell); in between it holds. It starts at ``initial`` (300 kbit/s, a browser's
  own start rate: a phone on 3G must not be flooded before the first
  signals; probes and loss-free reports raise it within seconds on a wider
  link).

* a delay signal that judges probes: the round trip of a STUN binding
  request to his browser, every ``allocation_interval`` (every 0.1 s during
  a probe). While a probe runs, the first round trip more than
  ``delay_threshold`` (100 ms) above the last one answered before it (growth
  over his link and the server's loop as they are now: the least of the
  whole ``delay_window`` may date from a quiet loop at his join, and a
  30-participant meeting's loop, 150 ms longer for good, failed every probe
  on it), or ``probe_queue_limit`` (300 ms) above the
  window's least (a standing queue — his own uplink's, say — must not grow
  further), stops its padding at once (:meth:`DownlinkEstimate.padding`):
  on a 300 kbit/s link a probe's queue grows by 0.6 s a second, each round
  trip comes back later than the last, and waiting for a second one let it
  overflow the lab's 300 ms queue with his voices in it. The next round
  trip says: grown too — the probe is filling his link, it fails, before any
  packet is lost and long before his receiver reports (every 5 s for audio)
  would say so; back down — one late answer (a busy loop): the padding goes
  on, or, after the probe's end on a link that lost already (``cut``), no
  verdict (nothing taken back, no back-off, but no doubling next). A ping not answered within
  ``ping_timeout`` is no round trip: no probe starts while the last second's
  went unanswered, but it judges no probe either (a 5 %-loss link loses one
  ping in ten, and two in a probe failed it); a probe waits up to
  ``probe_answer_wait`` (2 s) after its padding for an answered round trip. Outside probes round trips only inform (his uplink and
  a busy server's event loop are on them too).

**No probe and no step up on a standing queue** (:meth:`DownlinkEstimate.standing_queue`):
while a queue stands (as above) and his REMB says less than is sent (with no
REMB: on a link whose loss cut him already), nothing pads his link and his
estimate is held at what is sent: on the lab's 3G link a probe padded a link
already carrying 390-420 kbit/s of its 400. What is resent to him
(``resending``, from his NACKs) counts in what is sent.

A REMB estimator only rises to about 1.5 times what it receives, so a
subscriber held at a low layer (or audio-only) could never show room for
more: **probe-up** — when he would receive more than his estimate allows and
more than he is sent already (:func:`probe_wanted`: beside videos, without RED's
redundancy — probes are for video, RED takes the room REMB shows),
after ``probe_after`` calm seconds (no congestion: loss under ``high_loss`` — a
lossy radio link is not a full one —, REMB not falling, no queueing), the SFU pads
his connection up to a target (``probe_step`` times the estimate, or
``probe_min_step`` more, at most a little above what he wants) with
padding-only RTX packets for ``probe_duration`` (short: what a link cannot
carry only queues for half a second, it does not overflow and take his
audio with it; the padding stops then, even while the probe waits for its
last round trip — it used to run on until the next allocation round judged
it, about a second in all); if neither loss nor a falling REMB said no, his link is
taken to carry the target (``proven``) and the allocator spends it — once a
round trip measured after the probe's end came back without delay (a probe
is never taken as held for lack of news, when round trips are measured); if one
did — during the probe, or within ``probe_verify`` seconds of spending it —
the probe failed and the next waits twice as long (up to ``max_probe_wait``). A tap
on "try video again" probes at once. **While he is audio-only for his link** (the
allocator's state, :meth:`DownlinkEstimate.round`'s ``audio_only``) the wait is at most
``audio_only_probe_wait`` (2 s) and, once a probe held, the next comes at once and doubles:
nothing but a probe tells him his link rose (no video, no REMB), and the 8 s back-off with
three steps of 1.5 to a camera took 10 s in the lab's ``recover``. **At the start** (``startup``, until
the first congestion: a failed probe, a loss cut, a falling REMB) the first
probe is the usual one (step and wait), and once one held the next come at
once after half a calm second and double the estimate (``startup_step``), as a browser's own initial exponential probing: a
clean link carries four cameras within about 2 s of the first round trip
instead of 1.5 times per 1.6 s (about 9 s, and minutes when probes failed);
on a narrow link the first probe fails as before (a doubling one queued
there twice as long: 2.3 % of the voice lost in the lab), and the steady
rules above take over.

**The allocation** (:func:`allocate`) spends the estimate by priority:
audio first: the ``audio_slots`` (3) first-ranked voices (the active
speaker, then whoever spoke last) while they fit in 70 % of the estimate
(headers, RTCP and bursts need the rest; the first always); the others while all the audio
stays within ``audio_share`` of the estimate (silent microphones with DTX
cost almost nothing, so on a usable link everybody is heard; on a narrow
one, the loudest few are heard cleanly instead of everyone through loss);
RED's redundancy is dropped (the primary Opus is sent) when the slots'
audio with RED would take more than that share, or would leave no room for
the first video's lowest layer, or take with it more than ``RED_ROOM`` (85 %)
of the estimate (RED is a luxury: a link filled to the brim queues); then videos in priority order
(a masterclass's presenters' — see :func:`video_rank` —, pinned, screen share,
the active speaker, then by recent speech), each its
lowest layer while it fits, the others paused; then, in the same order, each
one up layer by layer while it fits (only the first ``full_quality`` videos
may take the top layer: small tiles need no 720p).

**The first video's lowest layer answers to loss only** (as Jitsi's
videobridge oversends the on-stage video): it is kept while it fits beside
the voices in the loss-based figure, even when REMB says less. A browser's
REMB rises only to about 1.5 times what arrives and starts from what the
first second brought, and over TURN/TCP or TLS the queueing of the TCP path
looks like congestion to its delay detector: on REMB alone a subscriber
would go audio-only at the first dip and, receiving only audio, his REMB
could never show room for video again (probes judged by that same REMB fail
over such a path) — a relayed participant who never sees anyone. For the
same reason a failed probe only takes back what it added to the loss-based
figure. Before any loss cut it, that figure is a guess, and the layer is held
back by it only past one probe step (:meth:`DownlinkEstimate.loss_value`): a
single-layer camera far over the guess waits for a probe instead of flooding a
narrow link at the join. When not even that layer fits beside the voices in the
loss-based figure (the link loses over 10 %), the subscriber is **audio only (his
connection)**, and stays so until it leaves a clear margin
(``resume_margin``) or he asks to try video again
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
    (lower first, :func:`video_rank`): presenters', pinned, screen, active speaker, recent speech.
    ``steady``: the same rates smoothed over a few seconds (empty: ``layers``), by which
    :func:`allocate` judges whether the first video fits at all — a second's rate swings with
    the keyframes.
    """

    key: Hashable
    rank: tuple[float, ...]
    layers: tuple[float | None, ...]
    steady: tuple[float | None, ...] = ()


#: Priority classes of a video for the allocator (lower first).
PRESENTER, PINNED, SCREEN, SPEAKER, OTHER = range(5)


def video_rank(
    *, presenter: bool, pinned: bool, screen: bool, speaker: bool, hands: bool = False, spoke: float = 0.0
) -> tuple[float, ...]:
    """Where one video comes in a subscriber's allocation (lower first).

    A masterclass's presenter's videos come first, right after the audio, before any other
    camera: what the class is for goes on when the link narrows (the pinned presenter's
    first; of one presenter, his hands' camera and his screen before his face: his voice is
    heard anyway). Then the pinned video, a screen share, the active speaker's camera, then
    the others by most recent speech (``spoke``, a monotonic time).
    """
    if presenter:
        shown = 0 if hands else 1 if screen else 2
        return (PRESENTER, 0 if pinned else 1, shown, -spoke)
    if pinned:
        kind = PINNED
    elif screen:
        kind = SCREEN
    elif speaker:
        kind = SPEAKER
    else:
        kind = OTHER
    return (kind, 0, 0, -spoke)


@dataclass(frozen=True, slots=True)
class AudioDemand:
    """One audio subscription: ``rate`` as sent to him (bit/s, RED included if he takes it),
    ``plain`` without RED's redundancy (``None``: no RED), ``rank`` (lower first) the order in
    which voices are kept: the active speaker, then by recent speech."""

    key: Hashable
    rank: tuple[float, ...]
    rate: float
    plain: float | None = None


@dataclass(frozen=True, slots=True)
class Allocation:
    """A layer per video (``None``: paused), whether each audio is forwarded, whether RED is
    sent, and whether the subscriber is audio-only."""

    layers: dict[Hashable, int | None]
    audio_only: bool
    #: Bits per second the choice costs (audio included).
    cost: float
    audio: dict[Hashable, bool] = field(default_factory=dict)
    red: bool = True


def allocate_audio(
    budget: float, audios: Sequence[AudioDemand], *, slots: int = 3, share: float = 0.5, red_allowed: bool = True
) -> tuple[dict[Hashable, bool], bool, float]:
    """Which voices to forward, whether with RED, and what they cost (see the module doc)."""
    ordered = sorted(audios, key=lambda a: a.rank)
    room = share * budget
    red = not any(a.plain is not None for a in ordered) or (
        red_allowed and sum(a.rate for a in ordered[:slots]) <= room
    )
    chosen: dict[Hashable, bool] = {}
    spent = 0.0
    for position, audio in enumerate(ordered):
        rate = audio.rate if red or audio.plain is None else audio.plain
        # The first voice always; the next slots while all of it fits in the link; the rest in
        # the audio's share of it.
        keep = position == 0 or spent + rate <= (0.7 * budget if position < slots else room)
        chosen[audio.key] = keep
        if keep:
            spent += rate
    return chosen, red, spent


#: RED's redundancy goes only where the voices with it and the first video's lowest layer
#: take at most this share of the estimate (:func:`allocate`).
RED_ROOM = 0.85


def allocate(
    budget: float,
    audio: float | Sequence[AudioDemand],
    videos: Sequence[VideoDemand],
    *,
    audio_only: bool = False,
    resume_margin: float = 1.3,
    full_quality: int = 2,
    audio_slots: int = 3,
    audio_share: float = 0.5,
    loss_budget: float | None = None,
    red_allowed: bool = True,
) -> Allocation:
    """Spend ``budget`` (bit/s) on audio first and ``videos``, by priority.

    ``audio`` is either the audio subscriptions (:class:`AudioDemand`, chosen
    by :func:`allocate_audio`) or a rate (bit/s) always spent.
    ``loss_budget`` (bit/s, the loss-based figure; ``None``: ``budget``) is
    what the first video's lowest layer must fit in beside the audio, even
    when ``budget`` is smaller; ``audio_only`` is the subscriber's current
    state: leaving it needs that layer times ``resume_margin`` to fit.
    ``red_allowed`` false: his voices go without RED's redundancy whatever fits
    (:meth:`DownlinkEstimate.red_allowed`).
    """
    plain_spent = None
    if isinstance(audio, (int, float)):
        voices: dict[Hashable, bool] = {}
        red, spent = True, float(audio)
    else:
        voices, red, spent = allocate_audio(
            budget, audio, slots=audio_slots, share=audio_share, red_allowed=red_allowed
        )
        if red:
            plain_spent = sum(a.rate if a.plain is None else a.plain for a in audio if voices.get(a.key))
    ordered = sorted(videos, key=lambda v: v.rank)
    chosen: dict[Hashable, int | None] = {v.key: None for v in ordered}
    available = [[i for i, rate in enumerate(v.layers) if rate is not None] for v in ordered]
    candidates = [(v, layers) for v, layers in zip(ordered, available, strict=True) if layers]
    if not candidates:
        return Allocation(chosen, False, spent, voices, red)
    first, first_layers = candidates[0]
    lowest = first.layers[first_layers[0]] or 0.0
    # Whether it fits at all is judged on its steady rate: a quiet second of a 500 kbit/s camera
    # (250 kbit/s) fitted a narrow link's starting guess, a keyframe's second of a 3G camera not.
    steady = first.steady[first_layers[0]] if first_layers[0] < len(first.steady) else None
    needed = (steady or lowest) * (resume_margin if audio_only else 1.0)
    floor = budget if loss_budget is None else max(budget, loss_budget)
    if plain_spent is not None and floor - plain_spent >= needed and (
        floor - spent < needed or spent + needed > RED_ROOM * budget
    ):
        # The first video before RED's redundancy: his voices go as plain Opus rather than
        # making him audio-only (on a 3G link a voice with RED beside the camera is over 400
        # kbit/s), and rather than fill his link to the brim: its RTCP, pings, retransmissions
        # and a frame's bursts need the rest.
        red, spent = False, plain_spent
    if floor - spent < needed:
        return Allocation(chosen, True, spent, voices, red)
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
    return Allocation(chosen, False, spent, voices, red)


def probe_wanted(audio: Sequence[AudioDemand], videos: Sequence[VideoDemand]) -> float:
    """What a subscriber would receive with no limit, as probes look for it (bit/s). Beside
    videos, RED's redundancy is not counted: probes are for video; RED takes the room his REMB
    shows over what arrives (about half as much again on a link with room), never padding —
    on a 3G link, probes for a voice's RED kept filling a link that carried his camera and voice."""
    return allocate(float("inf"), audio, videos, red_allowed=not videos).cost


def resume_cost(audio: Sequence[AudioDemand], videos: Sequence[VideoDemand], *, resume_margin: float = 1.3) -> float:
    """What leaving audio-only takes (bit/s): the voices as plain Opus and the first video's
    lowest layer times ``resume_margin`` (:func:`allocate`). An audio-only subscriber's probes
    must reach it: capped at what he would receive with no limit (a 3G link's camera and voice
    in RED, 388 kbit/s, and 10 % more), no probe could show the 434 kbit/s that leaving it took
    there, and a 2 %-loss link never gives the loss-free reports that raise the figure."""
    plain = sum(a.rate if a.plain is None else a.plain for a in audio)
    lowest = [
        (v.rank, next(rate for rate in v.layers if rate is not None)) for v in videos
        if any(rate is not None for rate in v.layers)
    ]
    return plain + (min(lowest)[1] * resume_margin if lowest else 0.0)


#: A camera sending less than this (bit/s of payload) is off (a disabled track's black frames)
#: or nearly so: its publisher's REMB does not climb (:func:`publisher_remb`).
QUIET_CAMERA = 50_000
#: The least REMB a video publisher is sent (bit/s).
PUBLISHER_REMB_FLOOR = 100_000


def publisher_remb(previous: int | None, *, arriving: float, loss: float, cap: int, camera: bool = True) -> int:
    """The REMB (bit/s) to send a video publisher, each second: ``cap`` (his browser's own caps
    rule) while his uplink loses under 2 %, climbing 8 % a second from ``previous`` (or 1.5
    times what arrives, if more) so that his browser leaves its start rate and starts its top
    layer; what arrives less half the loss when it loses over 10 %; held in between. A camera
    that sends almost nothing (``arriving`` under :data:`QUIET_CAMERA`, measured: over 0) is
    held at 1.5 times what arrives, :data:`PUBLISHER_REMB_FLOOR` at least: a camera turned off
    as a disabled track (black frames, 5 kbit/s) saw its REMB climb to 342 kbit/s on a 200
    kbit/s 3G uplink, which his browser may pad and probe up to (the lab's 3G subscriber's
    uplink dropped 1,000-1,900 packets a run; his NACKs, reports and ping answers waited 300 ms
    in its queue). Not a screen share: a still slide sends little and must burst when it
    changes."""
    if loss > 0.10 and arriving:
        return max(PUBLISHER_REMB_FLOOR, int(arriving * (1 - loss / 2)))
    if camera and 0 < arriving < QUIET_CAMERA:
        return max(PUBLISHER_REMB_FLOOR, int(arriving * 1.5))
    held = previous or cap
    if loss < 0.02:
        return min(cap, max(int(held * 1.08), int(arriving * 1.5)))
    return held


#: A subscriber's worst stream loss (smoothed, :meth:`DownlinkEstimate.stream_loss`) from which
#: the SFU builds RED for him from a publisher's plain Opus, carrying the packet before
#: (distance 1), and from which the two before (distance 2). Under it his link keeps the
#: bandwidth; a level is left only under half its threshold, so it does not flap.
RED_FROM = 0.01
RED_TWO_FROM = 0.12


def red_distance(loss: float, current: int = 0) -> int:
    """How many earlier packets go with each Opus packet as RED redundancy on a link losing ``loss``
    (0..1) of what is sent, given the ``current`` distance (see :data:`RED_FROM`)."""
    if loss >= RED_TWO_FROM or (current >= 2 and loss >= RED_TWO_FROM / 2):
        return 2
    if loss >= RED_FROM or (current >= 1 and loss >= RED_FROM / 2):
        return 1
    return 0


@dataclass(slots=True)
class DownlinkEstimate:
    """One subscriber's downlink, from his REMB and receiver reports, with probes (see the module doc)."""

    initial: float = 300_000.0
    floor: float = 60_000.0
    ceiling: float = 20_000_000.0
    remb_ttl: float = 5.0
    high_loss: float = 0.10
    low_loss: float = 0.02
    #: Packets that must have been expected (over all streams) before reports are judged.
    loss_packets: int = 20
    #: Loss over ``high_loss`` in fewer packets than this is judged only when it is clearly over
    #: it (two standard deviations of a link losing ``high_loss``); less clear, the packets
    #: count on until this many: a 5 % radio link reads 10 % in one 20-packet sample of 13.
    #: (400: at 200 a 5 % link still read over 10 % now and then — one in a few hundred
    #: judgements, each one a cut that paused a camera on the lab's ``lossy`` link.)
    loss_packets_max: int = 400
    #: Calm seconds before a probe (plus a back-off after failed ones).
    probe_after: float = 2.0
    #: How long a probe's padding runs before it is judged.
    probe_duration: float = 0.5
    #: A probe's target: this times the estimate, or ``probe_min_step`` more (bit/s).
    probe_step: float = 1.5
    probe_min_step: float = 150_000.0
    #: The start (until the first congestion: a failed probe, loss that cut the estimate, a
    #: falling REMB): probes at ``startup_step`` times the estimate after ``startup_after`` calm
    #: seconds, the next at once when one held — a clean link is found in a few probes.
    startup: bool = True
    startup_step: float = 2.0
    startup_after: float = 0.5
    #: A probe is judged against the last round trip answered within this many seconds before it
    #: started (his link and the server's loop as they are now: what the probe adds is growth
    #: over it), not against the least of the whole ``delay_window``; a ping that timed out is no
    #: round trip (nor is it a base: no probe starts on it).
    probe_base_window: float = 1.0
    #: A round trip this much (s) above the window's least also stops a probe (a standing queue
    #: must not grow further).
    probe_queue_limit: float = 0.3
    #: What a ping that was not answered reports (``aiortc_hooks.stun_round_trip``'s timeout).
    ping_timeout: float = 1.0
    #: A falling REMB is congestion only if a round trip showed queueing this recently (s): on a
    #: lossy radio link Chromium's REMB dips with no queue anywhere.
    remb_queue_window: float = 2.0
    #: How long (s) after its padding's end a probe waits for a round trip measured after it
    #: (a ping not answered takes ``ping_timeout`` to say so, and the next one a round trip).
    probe_answer_wait: float = 2.0
    #: The longest wait (s) after failed probes (they double it): a failed probe only queues
    #: for half a second, and round trips on a busy server fail some that would have held.
    max_probe_wait: float = 8.0
    #: Congestion this soon (s) after a probe held counts as the probe failing.
    probe_verify: float = 3.0
    #: The longest wait (s) after failed probes while he is audio-only for his link (``round``'s
    #: ``audio_only``): he has the most to gain from a probe, and one that fails costs him a
    #: short queue on a link that carries only voices.
    audio_only_probe_wait: float = 2.0
    #: Round trips answered for this long (s), every one queueing, are a queue (for a falling
    #: REMB, :meth:`queued_lately`): one late answer is a loaded loop's.
    queue_after: float = 1.5
    #: Round trips in a row that must queue (over ``queue_after`` s) to be a queue.
    queued_rounds: int = 4
    #: This many pings in a row not answered are a queue too (one in ten is lost on a 5 %-loss
    #: link, four in a row one time in ten thousand).
    unanswered_queue: int = 4
    #: A standing queue on his link (:meth:`standing_queue`): every round trip answered for this
    #: long (s) queueing, while his REMB says less than is sent. No probe then, and no step up.
    standing_after: float = 1.5
    #: RED's redundancy stays off this long (s) after a queue last stood on his link
    #: (:meth:`red_allowed`): back on at once, it would fill the link again.
    red_queue_hold: float = 15.0
    #: A round trip this much (s) above the least of the last ``delay_window`` s is queueing.
    delay_threshold: float = 0.1
    delay_window: float = 30.0
    remb: float | None = None
    remb_at: float | None = None
    loss_based: float = field(default=0.0)
    loss: float = 0.0
    #: What was sent to him lately (bit/s), set by the caller each round: the rates of what he
    #: is forwarded and what is resent to him (``resending``).
    sending: float = 0.0
    #: Bits per second resent to him (retransmissions answering his NACKs), over the last second
    #: or more (:meth:`on_resent`).
    resending: float = 0.0
    _resent_mark: tuple[float, float] | None = None
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
    _held_at: float | None = None
    _held_wait: float = 0.0
    #: The loss-based figure when the probe in flight (or the last one held) started.
    _loss_before_probe: float = 0.0
    #: Per SSRC: (extended highest sequence number, cumulative packets lost) of his last report.
    _reports: dict[int, tuple[int, int]] = field(default_factory=dict)
    _expected: int = 0
    _lost: int = 0
    _delays: list[tuple[float, float]] = field(default_factory=list)
    _queueing: bool = False
    #: When an answered round trip last showed queueing (``None``: never).
    _queued_at: float | None = None
    #: Since when every answered round trip showed queueing (``None``: the last did not).
    _queueing_since: float | None = None
    _queueing_count: int = 0
    #: When :meth:`red_allowed` last saw a standing queue (``None``: never).
    _queue_stood_at: float | None = None
    #: Pings not answered in a row (none since the last answered one).
    _unanswered_run: int = 0
    #: The round trip a probe in flight is judged against, and whether one came back above it
    #: (its padding stopped then; the next round trip says whether it failed).
    _probe_base: float | None = None
    _probe_queueing: bool = False
    #: Whether the last probe held (at the start, the next then doubles).
    _held_last: bool = False
    #: Whether he is audio-only for his link (the allocator's state, passed to :meth:`round`).
    _audio_only: bool = False
    #: When the last round trip measured was sent (``None``: never; probes are then judged by time).
    delay_at: float | None = None
    #: When round trips began to be measured (``None``: they are not); no probe starts before
    #: the first comes back, for ``delay_wait`` seconds at most.
    delay_since: float | None = None
    delay_wait: float = 10.0
    #: The loss-based figure and what probes had shown when his link went silent (:meth:`outage`).
    _before_outage: tuple[float, float] | None = None
    #: Per SSRC: (smoothed fraction lost or ``None`` before the first judgement, when judged,
    #: the (highest sequence number, cumulative lost) it was judged at), for :meth:`stream_loss`.
    _stream_losses: dict[int, tuple[float | None, float, tuple[int, int] | None]] = field(default_factory=dict)
    #: Reports older than this (s) say nothing about his link now.
    stream_loss_ttl: float = 15.0
    #: Whether loss ever cut the loss-based figure (what was sent near his estimate lost over
    #: ``high_loss``): until then that figure is a guess (``initial``, then its steps up).
    cut: bool = False
    #: Packets a stream must have been expected since its last judgement before it is judged
    #: again (fewer are noise: the worst of a dozen streams' 20-packet samples on a 5 % link
    #: read 10 % and more in the lab).
    stream_loss_packets: int = 100

    def __post_init__(self) -> None:
        if not self.loss_based:
            self.loss_based = self.initial

    def on_resent(self, total_bits: float, now: float) -> None:
        """The bits resent to him so far (cumulative): ``resending`` is their rate since the
        last reading at least a second old."""
        mark = self._resent_mark
        if mark is None or total_bits < mark[1]:
            self._resent_mark, self.resending = (now, total_bits), 0.0
        elif now - mark[0] >= 1.0:
            self.resending = (total_bits - mark[1]) / (now - mark[0])
            self._resent_mark = (now, total_bits)

    def fresh_remb(self, now: float) -> float | None:
        """His last REMB (bit/s) if it is at most ``remb_ttl`` s old, else ``None``."""
        if self.remb is not None and self.remb_at is not None and now - self.remb_at <= self.remb_ttl:
            return self.remb
        return None

    def on_remb(self, bitrate: float, now: float) -> None:
        previous = self.fresh_remb(now)
        if previous is not None and bitrate < 0.9 * previous:
            self.remb_fell(now)
        self.remb, self.remb_at = float(bitrate), now

    def remb_fell(self, now: float) -> None:
        """His REMB fell (or is below what is sent): congestion if our own round trips showed
        queueing lately (or none are measured: his REMB is then the only delay signal), else
        nothing. On the lab's 5 %-loss link Chromium's REMB dipped below what arrived every few
        seconds with no queue anywhere (its estimator reads the gaps of lost packets as delay);
        each dip forgot what probes had shown, cut the estimate to it and paused cameras."""
        if self.delay_at is None or self.queued_lately(now):
            self._congested(now)

    def on_loss(self, fraction: float, now: float) -> None:
        """One receiver report's fraction lost (0..1) about a stream sent to him."""
        self.loss = fraction
        if fraction > self.high_loss:
            if self.probe_target is None and self.sending and self.sending < 0.7 * self.value(now):
                return  # far less than his estimate was sent: a lossy link, not a full one
            base = self.sending or self.loss_based
            self.loss_based = max(self.floor, min(self.loss_based, base * (1 - fraction / 2)))
            self.cut = True
            self._congested(now)
        elif fraction < self.low_loss:
            if self.probe_target is None and self.sending and self.sending < 0.7 * self.value(now):
                return  # far less than his estimate was sent: nothing lost says nothing of more
            self.loss_based = min(self.ceiling, self.loss_based * 1.08)

    def on_report(self, ssrc: int, highest: int, lost: int, now: float) -> None:
        """One receiver report block about a stream sent to him: its extended highest sequence
        number and cumulative packets lost. The loss is judged over all his streams together,
        once ``loss_packets`` were expected (:meth:`on_loss`)."""
        previous = self._reports.get(ssrc)
        self._reports[ssrc] = (highest, lost)
        self._judge_stream(ssrc, highest, lost, now)
        if previous is None:
            return
        expected = highest - previous[0]
        if not 0 <= expected < 0x8000:
            return  # a restart or a report older than the last: start again from this one
        self._expected += expected
        self._lost += lost - previous[1]
        if self._expected >= self.loss_packets:
            n, fraction = self._expected, min(1.0, max(0.0, self._lost / self._expected))
            margin = 2 * math.sqrt(self.high_loss * (1 - self.high_loss) / n)
            if self.high_loss < fraction < self.high_loss + margin and n < self.loss_packets_max:
                return  # maybe a lossy link's noise: judge it over more packets
            self._expected = self._lost = 0
            self.on_loss(fraction, now)

    def _judge_stream(self, ssrc: int, highest: int, lost: int, now: float) -> None:
        """This stream's loss since its last judged report, once ``stream_loss_packets`` were expected."""
        smoothed, at, anchor = self._stream_losses.get(ssrc, (None, now, None))
        if anchor is None:
            anchor = (highest, lost)
        expected = highest - anchor[0]
        if not 0 <= expected < 0x8000:
            self._stream_losses[ssrc] = (smoothed, at, (highest, lost))
            return
        if expected < self.stream_loss_packets:
            self._stream_losses[ssrc] = (smoothed, at, anchor)
            return
        fraction = min(1.0, max(0.0, (lost - anchor[1]) / expected))
        if smoothed is not None and now - at <= self.stream_loss_ttl:
            fraction = 0.7 * smoothed + 0.3 * fraction
        self._stream_losses[ssrc] = (fraction, now, (highest, lost))

    def stream_loss(self, now: float) -> float:
        """The worst loss (0..1, smoothed over his last reports) of the streams sent to him that
        reported lately. Not the loss over all streams: his video's losses are mostly repaired by
        retransmissions before his reports count them, his audio's are not — this is the loss
        that RED (:func:`red_distance`) must cover."""
        return max(
            (loss for loss, at, _ in self._stream_losses.values()
             if loss is not None and now - at <= self.stream_loss_ttl),
            default=0.0,
        )

    def on_delay(self, rtt: float, now: float, *, sent: float | None = None) -> None:
        """One round trip (s) to his browser, measured now (the request left at ``sent``).

        A ping not answered (``rtt`` at ``ping_timeout``) is kept (no probe starts on it) but
        judges nothing: on a lossy link one ping in ten is lost, and two in a probe failed it."""
        unanswered = rtt >= self.ping_timeout
        delays = [(at, value) for at, value in self._delays if now - at <= self.delay_window]
        base = min((value for _, value in delays), default=rtt)
        delays.append((now, rtt))
        self._delays = delays
        if unanswered:
            # Pings lost one after another: his link (or his own uplink, which carries the
            # answers) overflows — the lab's 3G subscriber's answers stood 300 ms in his uplink's
            # full queue, most were dropped, and no answered one ever rose over their least.
            self._unanswered_run += 1
            if self._unanswered_run >= self.unanswered_queue:
                self._queued_at = now
            return
        self._unanswered_run = 0
        queueing = rtt - min(base, rtt) > self.delay_threshold
        if queueing:
            if self._queueing_since is None:
                self._queueing_since, self._queueing_count = now, 0
            self._queueing_count += 1
            if self._queueing_count >= self.queued_rounds and now - self._queueing_since >= self.queue_after:
                self._queued_at = now
        else:
            self._queueing_since = None
        if self.probe_target is not None:
            # Judged against the round trips just before the probe: the least of the whole window
            # may date from a quiet loop at his join (a 30-participant meeting's loop added 150 ms
            # for good, and every probe failed on it).
            probe_base = base if self._probe_base is None else self._probe_base
            # Nor does any probe run on a queue already ``probe_queue_limit`` above the window's
            # least (a narrow link's standing queue: growth over it would overflow it).
            grew = rtt - probe_base > self.delay_threshold or rtt - min(base, rtt) > self.probe_queue_limit
            if grew and self._probe_queueing:
                self._congested(now)  # the probe filled his link
            elif grew:
                # The padding stops at once (:meth:`padding`): on a 300 kbit/s link a probe's
                # queue grows by 0.6 s a second, and waiting for a second round trip (each one
                # slower than the last) let it overflow the lab's 300 ms queue with his voices in it.
                self._probe_queueing = True
            elif self._probe_queueing and (now < self.probe_started + self.probe_duration or not self._narrow):
                # One late answer (a busy loop), not his link: pad on, or judge it as before. A
                # link that lost already (``cut``), or whose first video waits for a probe, gets
                # no verdict after the probe's end instead (:attr:`_narrow`): on the lab's narrow
                # link the queue a probe left drained before the next answer, and taking that as
                # held let the next probes overflow it. (Voiding on every link stalled a clean
                # link's climb behind a loaded loop's late answers: 20-31 s to 2.5 Mbit/s
                # simulated; the lab's assembly at load 13 took 56 s to four cameras.)
                self._probe_queueing = False
            elif self._probe_queueing:
                self._void(now)
        # Outside probes the round trip only informs: his own uplink is on it too, and so is a
        # busy server's event loop (in the lab at load 15, round trips rose with nothing queued,
        # and cutting on them brought a 5 %-loss link's estimate down to the floor).
        self._queueing = queueing
        self.delay_at = sent if sent is not None else now

    @property
    def _narrow(self) -> bool:
        """Whether his link is known not to carry what he wants: loss cut it (``cut``), or he is
        audio-only for it (his first video waits for a probe, :meth:`loss_value`) and no probe
        held since. A probe stopped by a grown round trip is then not taken as held on the next
        one, after its end: the queue it left may have drained meanwhile. (Before any loss, the
        lab's narrow subscriber, audio-only from his first round, saw his first probe taken as
        held on such an answer, and the doubling one after it overflowed his link's queue: 2 %
        of his voices lost, simulated.)"""
        return self.cut or (self._audio_only and not self.proven)

    def padding(self, now: float) -> float | None:
        """What to pad his connection up to now (bit/s), or ``None``: the probe's target during
        its ``probe_duration``, until a round trip came back grown. The probe is judged after
        that (:meth:`round`), with no padding: what it queued is still in his link's queue for
        the round trips sent then, and his voices are in that queue too."""
        if self.probe_target is None or self._probe_queueing or now >= self.probe_started + self.probe_duration:
            return None
        if self.standing_queue(now):
            return None
        return self.probe_target

    def standing_queue(self, now: float) -> bool:
        """Whether a queue stands on his link: every round trip answered for ``standing_after`` s
        was queueing (``delay_threshold`` over the least), and his REMB says less than is sent
        (with no REMB: on a link whose loss cut the estimate already). Not a busy server's loop,
        which lengthens round trips too but leaves his REMB over what arrives. Then nothing
        probes and his estimate does not rise over what is sent: on the lab's 3G link (a camera
        and a voice, ~353 kbit/s on a 400 kbit/s link) probes padded it up to 427 kbit/s every
        few seconds and his voice was dropped in his link's queue."""
        since = self._queueing_since
        stood = since is not None and now - since >= self.standing_after and self._queueing_count >= self.queued_rounds
        if not stood and self._unanswered_run < self.unanswered_queue:
            return False
        remb = self.fresh_remb(now)
        if remb is not None:
            return bool(self.sending) and remb < self.sending
        return self.cut

    def red_allowed(self, now: float) -> bool:
        """Whether his voices may take RED's redundancy: not while a queue stands on his link
        (:meth:`standing_queue`), nor ``red_queue_hold`` s after it last did. Redundancy against
        loss does not help a link whose loss is what we send: on the lab's 3G link (a 250 kbit/s
        camera and an 85 kbit/s voice in 400 kbit/s) RED's 60 kbit/s filled its queue, and each
        packet it dropped was a NACK and a retransmission into the same queue."""
        if self.standing_queue(now):
            self._queue_stood_at = now
        return self._queue_stood_at is None or now - self._queue_stood_at > self.red_queue_hold

    def round_trips(self, now: float, window: float = 1.0) -> str:
        """The round trips (ms) measured within ``window`` s and the least of ``delay_window``, for logs."""
        recent = [f"{1000 * rtt:.0f}" for at, rtt in self._delays if now - at <= window]
        least = min((rtt for _, rtt in self._delays), default=None)
        return f"{'/'.join(recent) or '-'} (least {'-' if least is None else f'{1000 * least:.0f}'})"

    @property
    def queueing(self) -> bool:
        """Whether the last round trip was well above his link's own."""
        return self._queueing

    def outage(self) -> None:
        """His link went silent (a tunnel, a network change): what it swallows meanwhile says
        nothing of its capacity. The figures of before are kept for :meth:`restored`."""
        if self._before_outage is None:
            self._before_outage = (self.loss_based, self.proven)

    def restored(self, now: float) -> None:
        """He is heard again (on the same network or a new one, after an ICE restart): the
        figures of before the outage, judged afresh from here — his next receiver reports
        are the baseline (the first after an outage count every packet it swallowed, which
        cut a returning phone's estimate to the floor), no REMB or probe of before."""
        if self._before_outage is None:
            return
        self.loss_based, self.proven = self._before_outage
        self._before_outage = None
        self._reports.clear()
        self._stream_losses = {ssrc: (loss, at, None) for ssrc, (loss, at, _) in self._stream_losses.items()}
        self._expected = self._lost = 0
        self.remb = self.remb_at = None
        self.probe_target = None
        self.loss = 0.0
        self._queueing = False
        self._calm_since = now

    def forget_stream(self, ssrc: int) -> None:
        self._reports.pop(ssrc, None)

    def value(self, now: float) -> float:
        """The estimate (bit/s) now."""
        remb = self.fresh_remb(now)
        delay_based = None if remb is None else max(remb, self.proven)
        estimate = self.loss_based if delay_based is None else min(self.loss_based, delay_based)
        if self.sending and estimate > self.sending and self.standing_queue(now):
            estimate = self.sending  # no step up on a full link
        return max(self.floor, estimate)

    def loss_value(self) -> float:
        """The loss-based figure alone (bit/s): what the first video's lowest layer answers to.

        Until loss has cut it, it is a guess (``initial``, then what probes and loss-free
        reports raised it to), and that layer is held back by the guess only past one probe
        step (``probe_step`` times it: what the next probe would try anyway). (A 250 kbit/s
        camera and a voice, 353 kbit/s, on a 400 kbit/s 3G link losing 2 %: on the 300 kbit/s
        guess itself he was audio-only from the start, and leaving that took the figure's 8 %
        steps up to the camera times ``resume_margin`` beside the voice — tens of seconds
        without video, once a whole lab run. But a single-layer 500 kbit/s camera sent on that
        guess to the lab's ``narrow`` subscriber, 300 kbit/s, was a probe that never stopped:
        he was made audio-only only once its first keyframe had crossed his link and his
        receiver reports said so, 1.9-4.2 s after his join, most of it his connection's set-up.
        Now such a camera waits for a probe, and he is audio-only from his first round.)"""
        if not self.cut:
            return max(self.floor, self.loss_based * self.probe_step)
        return max(self.floor, self.loss_based)

    def retry(self) -> None:
        """The subscriber asked to try video again: the next round probes at once."""
        self._retry = True
        self._probe_wait = 0.0

    def congested(self, now: float) -> None:
        """The caller saw REMB below what is sent: forget what probes showed — if round trips
        showed queueing lately (:meth:`remb_fell`)."""
        self.remb_fell(now)

    def queued_lately(self, now: float) -> bool:
        """Whether an answered round trip showed queueing within ``remb_queue_window`` s."""
        return self._queued_at is not None and now - self._queued_at <= self.remb_queue_window

    def round(self, now: float, wanted: float, *, audio_only: bool = False) -> float | None:
        """One allocation round: judge the probe in flight; answer a probe target (bit/s) to pad
        up to from now on, or ``None`` (no probe). ``wanted`` is what the subscriber would
        receive with no limit."""
        self._audio_only = audio_only
        if self._calm_since is None:
            self._calm_since = now
        if self.probe_target is not None:
            ended = self.probe_started + self.probe_duration
            if now < ended:
                return self.probe_target
            waiting = self._probe_queueing or (self.delay_at is not None and self.delay_at < ended - 0.1)
            if waiting and now < ended + self.probe_answer_wait:
                return self.probe_target  # its round trip (or the one after a late one) is not back yet
            if waiting:
                self._congested(now)  # no round trip came back from under the probe
                return None
            # It held (a failure ends it at once): his link carries the target.
            self.proven = max(self.proven, self.probe_target)
            self.loss_based = max(self.loss_based, self.probe_target)
            self.probe_target = None
            self._held_last = True
            self._held_at, self._held_wait, self._probe_wait = now, self._probe_wait, 0.0
            # Climb on without a full wait (at the start, and while he is audio-only, at once).
            if self.startup:
                self._calm_since = now - self.startup_after
            elif audio_only:
                self._calm_since = now - self.probe_after
            else:
                self._calm_since = now - self.probe_after / 2
        if self._held_at is not None and now - self._held_at >= self.probe_verify:
            self._held_at = None  # what the last probe showed was spent, and held
        estimate = self.value(now)
        # Nothing to probe for once all he wants fits, or is sent already (a first video kept
        # on the loss-based figure above his REMB): padding would only fill his link.
        if wanted <= max(estimate, self.sending) * 1.05:
            self._retry = False
            return None
        if self.delay_since is not None and self.delay_at is None and now - self.delay_since < self.delay_wait:
            return None  # round trips will be measured: no probe is judged blind (unless none ever come)
        recent = [rtt for at, rtt in self._delays if at >= now - self.probe_base_window]
        answered = [rtt for rtt in recent if rtt < self.ping_timeout]
        if recent and not answered:
            return None  # his last pings were not answered: no probe on a link that may be full
        if self.standing_queue(now):
            self._calm_since = now  # the queue must drain first, then the usual calm
            return None
        # Calm: no congestion for a while. Loss under ``high_loss`` is a lossy radio link, not
        # congestion (a 5 %-loss link must still let him climb).
        after = self.startup_after if self.startup and self.probes else self.probe_after
        wait = min(self._probe_wait, self.audio_only_probe_wait) if audio_only else self._probe_wait
        calm = self.loss <= self.high_loss and now - self._calm_since >= after + wait
        if not (calm or self._retry):
            return None
        self._retry = False
        # The first probe is the usual step (on a narrow link it fails as before, and a doubling
        # one queued twice as much there); once one held, the start doubles, and so does an
        # audio-only subscriber's climb (his link rose: three steps of 1.5 to a camera took ~6 s).
        factor = self.startup_step if (self.startup or audio_only) and self._held_last else self.probe_step
        step = max(estimate * factor, estimate + self.probe_min_step)
        self.probe_target = min(wanted * 1.1, step, self.ceiling)
        self._loss_before_probe = self.loss_based
        self._probe_base = answered[-1] if answered else None
        self._probe_queueing = False
        self.probe_started = now
        self.probes += 1
        return self.probe_target

    @property
    def probing(self) -> bool:
        return self.probe_target is not None

    def _void(self, now: float) -> None:
        """The probe in flight stopped on one late round trip that the next did not confirm: no
        verdict (a busy loop's hiccup, or a short queue drained meanwhile): nothing is taken back
        and the wait does not double, but the next probe is the usual step, not the start's
        doubling (a doubling probe on a narrow link overflows its queue before any round trip
        can say so). Nor is the start's quick probing kept for a subscriber whose first video
        waits for a probe (audio-only for his link, nothing proven): on the lab's narrow link its
        next probe came half a second later, each queueing up to 300 ms with his voices in it."""
        self.probe_target = None
        self._probe_queueing = False
        self._held_last = False
        if self._audio_only and not self.proven:
            self.startup = False
        self._calm_since = now - (0.0 if self.startup else self.probe_after / 2)

    def _congested(self, now: float) -> None:
        self._calm_since = now
        self._probe_queueing = False
        self._held_last = False
        self.startup = False
        self.proven = 0.0
        if self.probe_target is not None:
            wait = self._probe_wait
        elif self._held_at is not None and now - self._held_at < self.probe_verify:
            wait = self._held_wait  # the probe seemed to hold, but spending it did not
        else:
            return
        self.probe_target = self._held_at = None
        # Only what the probe added goes: a REMB that dips under the padding (over TCP it does)
        # says nothing about loss, and the first video's lowest layer answers to loss only.
        self.loss_based = min(self.loss_based, self._loss_before_probe)
        self.probes_failed += 1
        self._probe_wait = min(self.max_probe_wait, max(2.0, wait * 2))


def layer_name(layer: int | None, count: int) -> str:
    """"low" / "medium" / "high" for a layer of ``count``, "paused" for ``None``."""
    if layer is None:
        return "paused"
    if count <= 1:
        return "high"
    return ("low", "medium", "high")[min(2, math.floor(layer * 2 / (count - 1)))] if count > 2 else ("low", "high")[layer]
