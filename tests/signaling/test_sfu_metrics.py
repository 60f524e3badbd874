"""The SFU worker's gauges (signaling/sfu_metrics.py)."""

from __future__ import annotations

from signaling.sfu import Sfu, SfuConfig
from signaling.sfu.pipe import ANNOUNCE, TAG_SIZE, VERSION, Datagram
from signaling.sfu_metrics import sfu_metric_rows
from tests.parallel import worker_port


async def test_the_pipe_datagrams_refused_are_a_gauge_of_the_worker() -> None:
    sfu = Sfu(SfuConfig(port_min=worker_port(46900), port_max=worker_port(46919)))
    try:
        rows = sfu_metric_rows(sfu, worker_id="w1", addresses=1)
        refused = {name: value for name, _help, _labels, value in rows()}["hirfa_sfu_pipe_datagrams_refused"]
        assert refused == 0  # no pipe yet
        endpoint = await sfu.pipe_endpoint()
        meeting = sfu.meeting("assembly")
        mallory = ("127.0.0.1", 9)
        meeting.pipe_from(endpoint, mallory, key=bytes(32))
        forged = ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, 1, 0) + b"assembly\0mallory" + bytes(TAG_SIZE)
        endpoint.datagram_received(forged, mallory)
        refused = {name: value for name, _help, _labels, value in rows()}["hirfa_sfu_pipe_datagrams_refused"]
        assert refused == 1
    finally:
        await sfu.close()


async def test_the_stale_media_dropped_are_a_gauge_of_the_worker(monkeypatch) -> None:
    from signaling.sfu.aiortc_hooks import ice

    sfu = Sfu(SfuConfig(port_min=worker_port(46920), port_max=worker_port(46939)))
    try:
        rows = sfu_metric_rows(sfu, worker_id="w1", addresses=1)
        monkeypatch.setattr(ice, "_stale_media_dropped", 7)
        dropped = {name: value for name, _help, _labels, value in rows()}["hirfa_sfu_stale_media_dropped"]
        assert dropped == 7
    finally:
        await sfu.close()


async def test_a_remote_track_not_announced_in_time_is_counted_when_dropped() -> None:
    from signaling.sfu.pipe import SILENCE_TIMEOUT, tag

    sfu = Sfu(SfuConfig(port_min=worker_port(46940), port_max=worker_port(46959)))
    try:
        rows = sfu_metric_rows(sfu, worker_id="w1", addresses=1)
        gauges = {name: value for name, _help, _labels, value in rows()}
        assert (gauges["hirfa_sfu_pipe_tracks_in"], gauges["hirfa_sfu_pipe_tracks_timed_out"]) == (0, 0)
        endpoint = await sfu.pipe_endpoint()
        meeting = sfu.meeting("assembly")
        karim = ("127.0.0.1", 9)
        meeting.pipe_from(endpoint, karim, key=bytes(32))
        announce = ANNOUNCE.pack(VERSION, Datagram.ANNOUNCE, 1, 0) + b"assembly\0karim"
        endpoint.datagram_received(announce + tag(bytes(32), announce), karim)
        assert {name: value for name, _help, _labels, value in rows()}["hirfa_sfu_pipe_tracks_in"] == 1
        (track,) = endpoint.remote_tracks()
        endpoint.tick(track.heard + SILENCE_TIMEOUT + 0.1)
        gauges = {name: value for name, _help, _labels, value in rows()}
        assert (gauges["hirfa_sfu_pipe_tracks_in"], gauges["hirfa_sfu_pipe_tracks_timed_out"]) == (0, 1)
    finally:
        await sfu.close()
