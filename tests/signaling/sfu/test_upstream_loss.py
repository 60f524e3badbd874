"""Loss before the SFU is not the subscriber's: his estimate reads only what his own link lost.

The forwarder keeps the publisher's sequence numbers (shifted per subscription), so a packet
lost on the publisher's uplink, or dropped by the SFU itself, is a gap at every subscriber,
whose receiver reports count it lost. Each subscription counts the sequence numbers it skipped
(:meth:`.ForwardTrack.downlink_lost`) and his reports are read without them.
"""

from __future__ import annotations

import random

from aiortc.rtp import RtpPacket

from signaling.sfu import MediaKind
from signaling.sfu.allocation import DownlinkEstimate, VideoDemand, allocate
from signaling.sfu.forwarding import ForwardTrack

from .test_units import FakeSource, FakeWriter

CAMERA = VideoDemand("amina's camera", (0.0,), (150_000.0,))
VOICE = 40_000.0


def opus(seq: int) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq & 0xFFFF, timestamp=(960 * seq) & 0xFFFFFFFF)
    packet.payload = b"opus"
    return packet


class Subscriber:
    """A clean or lossy downlink after one subscription: receives what the track sends, except
    what ``lost_here`` picks, and reports on it as a receiver report does (extended highest
    sequence number, cumulative packets lost since the first packet received)."""

    def __init__(self) -> None:
        self.base: int | None = None
        self.highest = 0
        self.received = 0

    def receive(self, seq: int) -> None:
        if self.base is None:
            self.base = self.highest = seq
        else:
            ahead = (seq - self.highest) & 0xFFFF
            if ahead < 0x8000:
                self.highest += ahead
        self.received += 1

    def report(self) -> tuple[int, int]:
        assert self.base is not None
        return self.highest, self.highest - self.base + 1 - self.received


def meeting(*, lost_upstream, lost_here, packets: int = 3000) -> tuple[DownlinkEstimate, ForwardTrack]:
    """Amina publishes ``packets`` packets (one per 20 ms; those ``lost_upstream`` picks never reach
    the SFU); Yacine's estimate reads his receiver report every 100 packets, as it is sent near it."""
    track, source, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=100_000), FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    estimate, yacine = DownlinkEstimate(), Subscriber()
    delivered = 0
    for seq in range(60_000, 60_000 + packets):  # his sequence numbers wrap on the way
        now = seq * 0.02
        if not lost_upstream(seq):
            track.forward(opus(seq), True)
        for _, out_seq, _, _ in writer.sent[delivered:]:
            if not lost_here(out_seq):
                yacine.receive(out_seq)
        delivered = len(writer.sent)
        if seq % 100 == 99 and yacine.base is not None:
            estimate.sending = estimate.value(now)
            highest, lost = yacine.report()
            estimate.on_report(1234, highest, track.downlink_lost(highest, lost), now)
    return estimate, track


def radio(fraction: float, seed: int):
    """A radio link losing ``fraction`` of its packets at random (the same ones each run)."""
    rng = random.Random(seed)
    return lambda seq: rng.random() < fraction


def shows_his_camera(estimate: DownlinkEstimate, now: float = 60.0) -> bool:
    chosen = allocate(estimate.value(now), VOICE, [CAMERA], loss_budget=estimate.loss_value())
    return chosen.layers[CAMERA.key] == 0


def test_a_publisher_losing_a_tenth_of_his_uplink_leaves_a_clean_subscriber_estimate_whole() -> None:
    uplink, dropped = radio(0.10, seed=3), []

    def lost_upstream(seq: int) -> bool:
        if uplink(seq):
            dropped.append(seq)
            return True
        return False

    estimate, track = meeting(lost_upstream=lost_upstream, lost_here=lambda seq: False)
    assert estimate.loss < 0.02 and not estimate.cut
    assert estimate.loss_based > estimate.initial, "nothing lost on his link: his figure grows"
    assert shows_his_camera(estimate)
    assert 250 < track.seqs_skipped == len(dropped)


def test_loss_on_the_subscriber_own_link_still_cuts_his_estimate_and_pauses_his_video() -> None:
    estimate, _ = meeting(lost_upstream=lambda seq: False, lost_here=radio(0.2, seed=5))
    assert 0.12 < estimate.loss < 0.28 and estimate.cut
    assert not shows_his_camera(estimate)
    both, _ = meeting(lost_upstream=radio(0.1, seed=3), lost_here=radio(0.2, seed=5))
    assert 0.12 < both.loss < 0.28, "his own link's fifth, not the publisher's tenth on top"
    assert both.cut and not shows_his_camera(both)


def test_a_gap_filled_by_a_late_packet_is_not_skipped() -> None:
    track, source, writer = ForwardTrack(MediaKind.AUDIO, max_backlog=100_000), FakeSource(), FakeWriter()
    track.attach(source)  # type: ignore[arg-type]
    track.start_sending(writer)  # type: ignore[arg-type]
    for seq in (10, 11, 14, 15):
        track.forward(opus(seq), True)
    first = writer.seqs()[0]
    assert track.seqs_skipped == 2
    assert track.downlink_lost(first + 5, 2) == 0, "12 and 13 never left the SFU"
    assert track.downlink_lost(first + 1, 0) == 0, "nor are they counted before the report's highest"
    track.forward(opus(13), True)  # the publisher's retransmission, forwarded in place
    assert track.seqs_skipped == 1
    assert track.downlink_lost(first + 5, 2) == 1, "13 was sent: his link lost it if he lacks it"
