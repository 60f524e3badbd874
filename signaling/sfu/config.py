"""Configuration of an SFU instance (plain values; the Django side fills them in)."""

from __future__ import annotations

from dataclasses import dataclass

from .types import VideoCodec


@dataclass(frozen=True, slots=True)
class SfuConfig:
    """Everything an SFU needs to know about its network and its limits.

    ``announced_addresses`` are the addresses written into the ICE host
    candidates (a server behind NAT announces its public address; tests
    announce 127.0.0.1); sockets bind to ``bind_address`` with ports in
    ``port_min``..``port_max``.
    """

    announced_addresses: tuple[str, ...] = ("127.0.0.1",)
    bind_address: str = "127.0.0.1"
    port_min: int = 40000
    port_max: int = 40999
    default_video_codec: VideoCodec = VideoCodec.VP8
    #: At most one keyframe request per published video track in this time (s).
    keyframe_interval: float = 0.5
    #: A keyframe request is pending until the keyframe arrives or this time (s) passes;
    #: meanwhile every other request for that track is absorbed.
    keyframe_timeout: float = 1.0
    #: A packet lost upstream is NACKed about once per round trip, at most this many times...
    nack_max_retries: int = 10
    #: ...and for at most this long (s); then it is given up and a keyframe is asked for.
    nack_max_age: float = 1.5
    #: Bytes a subscriber's socket may hold unsent before his video is dropped
    #: (it then waits for a keyframe; audio only past twice this); about 4 s of 1 Mbps video.
    send_backlog_bytes: int = 512 * 1024
    #: Retransmissions answering one subscription's NACKs, at most per second.
    max_resends_per_second: int = 400
    max_tracks_per_participant: int = 4
    #: RIDs of the simulcast layers asked for on a camera's publish m-line, lowest first
    #: (a browser's page sets their sizes and rates); fewer than two: no simulcast.
    simulcast_rids: tuple[str, ...] = ("l", "m", "h")
    #: How often (s) each subscriber's estimate is spent again (layers, pauses, audio-only);
    #: 0: never (every subscription gets the lowest layer and nothing is paused; tests).
    allocation_interval: float = 0.5
    #: The REMB sent to a video publisher while his uplink loses nothing (bit/s): his browser
    #: then rises to its own caps; on loss it is brought down to what arrives.
    publisher_max_bitrate: int = 2_500_000
    #: Slots: with both above 0, each subscriber gets this many audio and video m-lines at
    #: his first offer, and never more; the SFU switches sources into them (the loudest
    #: voices, the last-N videos), so others' joins, leaves and publications need no
    #: renegotiation. 0: one m-line per published track (every change renegotiates).
    audio_slots: int = 0
    video_slots: int = 0
    #: Where this process's pipes to other SFU workers bind (`.pipe`; plain UDP: a loopback or
    #: private address, never a public one) and their port (0: any free one).
    pipe_address: str = "127.0.0.1"
    pipe_port: int = 0

    def __post_init__(self) -> None:
        if not self.announced_addresses:
            raise ValueError("announced_addresses must name at least one address")
        if not 0 < self.port_min <= self.port_max <= 65535:
            raise ValueError(f"bad UDP port range {self.port_min}-{self.port_max}")
        if self.audio_slots < 0 or self.video_slots < 0 or (self.audio_slots > 0) != (self.video_slots > 0):
            raise ValueError(f"slots must both be 0 or both above 0, not {self.audio_slots}/{self.video_slots}")
