"""Lip sync: one msid stream per publisher, and sender reports that keep his NTP↔RTP mapping."""

from __future__ import annotations

import types

import pytest
from aiortc import rtcrtpsender
from aiortc.rtp import RtcpSrPacket

from signaling.sfu import Sfu, TrackSource

from .peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all, join

pytestmark = pytest.mark.timeout(120)

SKEW = 1000.0  # the publishers' wall clocks are 1000 s ahead of the server's


def skew_publisher_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc senders (the publishers: the server's never run aiortc's loop) stamp their reports skewed."""
    real = rtcrtpsender.clock
    skewed = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real) if not name.startswith("__")})
    skewed.current_ntp_time = lambda: real.current_ntp_time() + int(SKEW * (1 << 32))
    monkeypatch.setattr(rtcrtpsender, "clock", skewed)


def record_sender_reports(client: ClientPeer, mid: str) -> list[tuple[int, int]]:
    """(NTP, RTP) of every sender report ``client`` receives for the track on ``mid``."""
    receiver = next(t.receiver for t in client.pc.getTransceivers() if t.mid == mid)
    reports: list[tuple[int, int]] = []
    real = receiver._handle_rtcp_packet

    async def handle(packet) -> None:
        if isinstance(packet, RtcpSrPacket):
            reports.append((packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp))
        await real(packet)

    receiver._handle_rtcp_packet = handle
    return reports


def record_publisher_reports(forwarder) -> list[tuple[int, int]]:
    """Every (NTP, RTP) the publisher's reports gave the server for ``forwarder``'s track."""
    reports: list[tuple[int, int]] = []
    real = forwarder.on_sender_report

    def on_sender_report(ntp: int, rtp: int) -> None:
        reports.append((ntp, rtp))
        real(ntp, rtp)

    forwarder.on_sender_report = on_sender_report
    return reports


def closest_error(forwarded: tuple[int, int], published: list[tuple[int, int]], ts_offset: int, rate: int) -> float:
    """The forwarded report against the publisher report it was derived from (the closest one).

    Two reports of one publisher differ by his own jitter (aiortc stamps a report
    with a packet's send time), so only the one in force when ours was written counts.
    """
    return min((mapping_error(forwarded, p, ts_offset, rate) for p in published), key=abs)


def mapping_error(forwarded: tuple[int, int], published: tuple[int, int], ts_offset: int, rate: int) -> float:
    """Seconds between the forwarded report's NTP time and the publisher's for the same RTP instant."""
    (ntp, rtp), (pub_ntp, pub_rtp) = forwarded, published
    ticks = (rtp - ts_offset - pub_rtp) & 0xFFFFFFFF
    if ticks >= 1 << 31:
        ticks -= 1 << 32
    return (ntp - pub_ntp) / (1 << 32) - ticks / rate


async def test_one_stream_per_publisher_and_reports_in_the_publishers_clock(
    sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    skew_publisher_clocks(monkeypatch)
    meeting = sfu.meeting("guild-lipsync")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    karim = ClientPeer("karim")
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE), await join(meeting, karim)]
    video_mid = karim.mid_for("amina", TrackSource.CAMERA)
    audio_mid = karim.mid_for("amina", TrackSource.MICROPHONE)

    offer = meeting.participant("karim").peer_connection.localDescription.sdp
    msids = [line.split()[0] for line in offer.splitlines() if line.startswith("a=msid:")]
    assert len(msids) == 2 and msids[0] == msids[1] == "a=msid:hirfa-amina", msids
    reports = {mid: record_sender_reports(karim, mid) for mid in (video_mid, audio_mid)}
    tracks = {t.kind: t for t in meeting.participant("karim").subscription_tracks()}
    forwarders = {f.kind.value: f for f in meeting.participant("amina").forwarders()}
    published = {kind: record_publisher_reports(f) for kind, f in forwarders.items()}
    await wait_until(lambda: all(published.values()), timeout=30, what="amina's sender reports")
    for r in reports.values():
        r.clear()  # from now on, derived from a recorded report
    await wait_until(lambda: all(len(r) >= 2 for r in reports.values()), timeout=30, what="sender reports at karim")

    for mid, kind in ((video_mid, "video"), (audio_mid, "audio")):
        forwarder = forwarders[kind]
        offset = tracks[kind]._ts_offset
        assert offset is not None
        error = closest_error(reports[mid][-1], published[kind], offset, forwarder.clock_rate)
        assert abs(error) < 0.001, f"{kind} report off the publisher's mapping by {error:.3f} s"

    # amina leaves; yasmine's camera takes the same m-line: reports follow yasmine's clock.
    await meeting.leave("amina")
    await sessions[1].settle()
    yasmine = ClientPeer("yasmine", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions.append(await join(meeting, yasmine, TrackSource.CAMERA))
    await sessions[1].settle()
    assert karim.mid_for("yasmine", TrackSource.CAMERA) == video_mid
    (forwarder,) = meeting.participant("yasmine").forwarders()
    yasmine_reports = record_publisher_reports(forwarder)
    await wait_until(lambda: yasmine_reports, timeout=30, what="yasmine's first report")
    seen = len(reports[video_mid])
    await wait_until(lambda: len(reports[video_mid]) >= seen + 2, timeout=30, what="reports after the switch")
    (track,) = [t for t in meeting.participant("karim").subscription_tracks() if t.kind == "video"]
    assert track._ts_offset is not None
    error = closest_error(reports[video_mid][-1], yasmine_reports, track._ts_offset, 90000)
    assert abs(error) < 0.001, f"after the switch the report is off yasmine's mapping by {error:.3f} s"
    await sessions[0].client.close()
    await close_all(sfu, sessions[1:])
