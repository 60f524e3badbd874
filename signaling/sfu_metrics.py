"""The Prometheus gauges of one SFU worker, read from its engine at scrape time.

Labelled with the worker's id, so that a dashboard shows each worker. The
bitrate is the forwarded RTP payload (headers and SRTP tags not counted),
averaged since the previous scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from signaling.sfu import Sfu

Row = tuple[str, str, dict[str, str], float]


def sfu_metric_rows(sfu: Sfu, *, worker_id: str, addresses: int) -> Callable[[], list[Row]]:
    """A row function for `hub.metrics.FunctionCollector` over `sfu`."""
    last: dict[str, float] = {}

    def rows() -> list[Row]:
        meetings = sfu.meetings()
        participants = 0
        streams = 0
        forwarded_bytes = 0
        for meeting in meetings:
            for participant in meeting.participants():
                participants += 1
                for track in participant.subscription_tracks():
                    forwarded_bytes += track.bytes_forwarded
                    if track.sending and track.source is not None:
                        streams += 1
        now = time.monotonic()
        bitrate = 0.0
        if "at" in last and now > last["at"] and forwarded_bytes >= last["sum"]:
            bitrate = (forwarded_bytes - last["sum"]) * 8 / (now - last["at"])
        last.update(at=now, sum=float(forwarded_bytes))
        labels = {"worker": worker_id}
        pipes = sfu.pipe_endpoint_now()
        return [
            ("hirfa_sfu_meetings", "Meetings open on this SFU worker", labels, len(meetings)),
            ("hirfa_sfu_participants", "Participants connected to this SFU worker", labels, participants),
            ("hirfa_sfu_forwarded_streams", "Subscriptions forwarding media now", labels, streams),
            ("hirfa_sfu_forward_bits_per_second", "Forwarded payload bitrate since the last scrape", labels, bitrate),
            # One ICE socket per participant (bundled) and announced address.
            ("hirfa_sfu_ports_in_use", "UDP ports held for media", labels, participants * addresses),
            # Forged, altered or foreign pipe datagrams since the worker started (signaling/sfu/pipe.py).
            (
                "hirfa_sfu_pipe_datagrams_refused",
                "Pipe datagrams refused: their tag did not hold",
                labels,
                pipes.datagrams_refused if pipes is not None else 0,
            ),
            # A meeting spread over workers: the tracks piped out and in, and the remote tracks
            # dropped for want of an announce (pipe.TRACK_TIMEOUT, SILENCE_TIMEOUT: their worker died).
            ("hirfa_sfu_pipe_tracks_out", "Local tracks piped to other workers", labels,
             len(pipes.piped()) if pipes is not None else 0),
            ("hirfa_sfu_pipe_tracks_in", "Remote tracks piped in from other workers", labels,
             len(pipes.remote_tracks()) if pipes is not None else 0),
            ("hirfa_sfu_pipe_tracks_timed_out", "Remote tracks dropped: not announced in time", labels,
             pipes.tracks_timed_out if pipes is not None else 0),
            ("hirfa_sfu_pipe_datagrams_dropped", "Pipe datagrams dropped on arrival (unknown track, malformed)", labels,
             pipes.datagrams_dropped if pipes is not None else 0),
            # Media that waited in a socket past the bound while the loop was busy: dropped unread.
            (
                "hirfa_sfu_stale_media_dropped",
                "Media datagrams dropped unread: they waited too long in a media socket",
                labels,
                sfu.stale_media_dropped(),
            ),
        ]

    return rows
