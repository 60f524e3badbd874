"""bench/sfu.py's simulcast publisher (the ``simulcast_cpu`` case of bench/meeting_adapt.py) really
sends two RID layers the SFU takes as such, at a tiny size: no figure is checked here."""

from __future__ import annotations

import pytest

from bench import sfu
from signaling.sfu.simulcast import RID_URI, simulcast_answer, simulcast_offer
from tests.parallel import worker_port

pytestmark = pytest.mark.timeout(120)

ANSWER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "a=mid:0", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendonly", "a=rtpmap:97 VP8/90000", "a=rtpmap:98 rtx/90000", "a=fmtp:98 apt=97",
    "a=ssrc-group:FID 1 2", "a=ssrc:1 cname:x", "a=ssrc:2 cname:x", "",
])


def test_the_answer_sends_two_rid_layers_and_no_ssrc() -> None:
    offer = simulcast_offer(ANSWER.replace("a=sendonly", "a=recvonly"), {"0": ("l", "m", "h")})
    sdp, pt, ids = sfu._simulcast_answer(ANSWER, offer, "0")
    accepted = simulcast_answer(sdp)
    assert accepted.rids == {"0": sfu.SIMULCAST_RIDS} and accepted.rid_extension == ids["rid"]
    assert pt == 97 and ids["mid"] == 1 and f"a=extmap:{ids['rid']} {RID_URI}" in offer
    assert "a=ssrc" not in sdp and sdp.endswith("\r\n")


def test_the_fanout_with_a_simulcast_publisher_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIRFA_BENCH_PORT_BASE", str(worker_port(43500)))  # the spawned server and peers read it
    result = sfu.measure("sfu", publishers=1, subscribers=1, seconds=1.0, loop_frames=sfu.encode_loop(160, 90, 100_000),
                         simulcast=True)
    assert result["ready"] == 1 and result["streams_seen"] == 1, result
    assert set(result["layers"]) <= {"0", "1", "None"} and sum(result["layers"].values()) == 1, result
